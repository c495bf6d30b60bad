"""The course's notebook format: which cell is which part of which exercise, and a notebook's chapter.

A master notebook is ``notebooks/NN_slug.ipynb``. Its exercise cells say what they are in
their metadata (never by position)::

    "metadata": {"dockercourse": {"exercise": "02.hello", "part": "answer"}}

with ``part`` one of :data:`PARTS`: ``task`` (what to do), ``answer`` (the learner's cell),
``solution`` (removed from student copies) and ``check`` (calls ``check("02.hello")``). The
notebook's own ``metadata.dockercourse.chapter`` names its chapter (``release`` stamps it into
every student copy, so the grader knows what a submission is).

``release`` (student copies, lint) and the grader (check points) read notebooks through these
functions only.
"""

from __future__ import annotations

import re
from pathlib import Path

from dockercourse.core.namespace import chapter_number

#: The key of the course's cell and notebook metadata.
META = "dockercourse"
#: The parts of an exercise, in the order its cells come in a master notebook.
PARTS = ("task", "answer", "solution", "check")


def cell_meta(cell) -> dict:
    """The ``metadata.dockercourse`` dict of a cell (``{}`` when missing or malformed)."""
    md = cell.get("metadata") if isinstance(cell, dict) else None
    d = md.get(META) if isinstance(md, dict) else None
    return d if isinstance(d, dict) else {}


def cell_part(cell) -> tuple[str | None, str | None]:
    """``(exercise id, part)`` of an exercise cell, ``(None, None)`` for any other cell."""
    d = cell_meta(cell)
    ex, part = d.get("exercise"), d.get("part")
    if not isinstance(ex, str) or not isinstance(part, str):
        return None, None
    return ex, part


def exercise_ids(cells) -> list[str]:
    """The exercise ids the cells name, each once, in the order they first appear."""
    seen: dict[str, None] = {}
    for cell in cells:
        ex, _ = cell_part(cell)
        if ex:
            seen.setdefault(ex)
    return list(seen)


def chapter_of(nb, path: Path | str | None = None) -> str | None:
    """The chapter of a notebook: ``metadata.dockercourse.chapter``, else its ``NN_`` file name."""
    md = nb.get("metadata") if isinstance(nb, dict) else None
    d = md.get(META) if isinstance(md, dict) else None
    if isinstance(d, dict) and d.get("chapter") not in (None, ""):
        try:
            return chapter_number(str(d["chapter"]))
        except ValueError:
            pass  # not a chapter number: fall back to the file name
    if path is not None:
        m = re.match(r"^(\d{2})_", Path(path).name)
        if m:
            return m.group(1)
    return None


def masters(root: Path | str) -> list[Path]:
    """The master notebooks of the course at ``root``: ``notebooks/NN_*.ipynb``, in order."""
    return sorted(p for p in (Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.is_file())
