"""Student copies of the chapter notebooks: solutions removed, exercise outputs cleared.

For every master notebook (``notebooks/NN_*.ipynb`` of the course, see
:mod:`dockercourse.core.notebooks` for the cell format) the student copy is the same
notebook with

* every cell whose ``metadata.dockercourse.part == "solution"`` removed;
* the outputs and execution counts of ``answer`` and ``check`` cells cleared;
* ``metadata.dockercourse.chapter`` stamped (from the master's metadata, or
  from its ``NN_`` file name), so the grader knows the chapter of a submission;
* everything else (prose, live cells and their committed outputs, cell ids,
  metadata) left exactly as it is.

The copy is a pure function of the master, so it is byte-for-byte reproducible:
:func:`stale` says why the copies in a folder differ from what :func:`release` would
write now (or are missing, or have no master); a folder with no notebook at all is not
stale: nothing is checked in. The command is ``dockercourse release``
(:mod:`dockercourse.cli.release`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import nbformat

from dockercourse.checks import load_exercises
from dockercourse.core.notebooks import META, PARTS, cell_part, chapter_of

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the copy


#: The call whose output summarises the exercises (see dockercourse.notebook.course.Course.progress).
PROGRESS_CALL = "course.progress()"


def student_copy(master, chapter: str | None = None):
    """The student copy of a master notebook (the master is not modified)."""
    nb = copy.deepcopy(master)
    chapter = chapter or chapter_of(master)
    cells = []
    for cell in nb.cells:
        _, part = cell_part(cell)
        if part == "solution":
            continue
        # Exercise cells, and the chapter's progress summary (its committed output is the
        # master's "all passing", which would mislead a learner), start empty.
        reports_progress = cell.get("cell_type") == "code" and PROGRESS_CALL in "".join(
            cell.get("source", "")
        )
        if (part in ("answer", "check") or reports_progress) and cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            md = cell.get("metadata", {})
            md.pop("execution", None)  # nbclient's timing of the master's run
        cells.append(cell)
    nb.cells = cells
    if chapter:
        meta = nb.metadata.setdefault(META, {})
        if not isinstance(meta, dict):
            meta = nb.metadata[META] = {}
        meta["chapter"] = chapter
    return nb


def dumps(nb) -> str:
    """The text ``release`` writes for a notebook (nbformat's layout, final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def student_text(master_path: Path) -> str:
    """The exact text of the student copy of the master at ``master_path``."""
    master = nbformat.read(master_path, as_version=4)
    return dumps(student_copy(master, chapter_of(master, master_path)))


def lint(master, path: Path | None = None, root: Path | None = None) -> list[str]:
    """Problems of a master's exercise cells (warnings; ``release`` still writes the copy)."""
    where = path.name if path else "notebook"
    found: dict[str, dict[str, int]] = {}
    problems = []
    for i, cell in enumerate(master.cells):
        ex, part = cell_part(cell)
        if ex is None:
            continue
        if part not in PARTS:
            problems.append(f"{where}: cell {i}: unknown exercise part {part!r}")
            continue
        found.setdefault(ex, {}).setdefault(part, i)
        if part == "solution" and not (cell.get("metadata", {}).get("jupyter", {}) or {}).get(
            "source_hidden"
        ):
            problems.append(
                f"{where}: cell {i}: solution of {ex} lacks metadata.jupyter.source_hidden = true"
            )
        if part == "check" and ex not in cell.get("source", ""):
            problems.append(f"{where}: cell {i}: the check cell of {ex} does not name {ex}")
    for ex, parts in found.items():
        missing = [p for p in PARTS if p not in parts]
        if missing:
            problems.append(f"{where}: exercise {ex} has no {', '.join(missing)} cell")
        order = [parts[p] for p in PARTS if p in parts]
        if order != sorted(order):
            problems.append(
                f"{where}: the cells of exercise {ex} are not in the order task, answer, solution, check"
            )
    chapter = chapter_of(master, path)
    if chapter and root is not None:
        try:
            declared = load_exercises(chapter, root)
        except FileNotFoundError as e:  # a chapter without checks yet: nothing to compare with
            log.debug("lint of %s: %s", where, e)
            declared = None
        if declared is not None:
            for ex in found:
                if ex not in declared:
                    problems.append(f"{where}: exercise {ex} has no check in checks/{chapter}_*.py")
            for ex in declared:
                if ex not in found:
                    problems.append(f"{where}: checks/{chapter}_*.py declares {ex}, which the notebook lacks")
    return problems


# --------------------------------------------------------------------------- files


def release(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student copy of each master into ``out`` (same file name); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in notebooks:
        dest = out / p.name
        text = student_text(p)
        if not dest.exists() or dest.read_text(encoding="utf-8") != text:
            tmp = dest.with_name(dest.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(dest)
        written.append(dest)
    return written


def stale(notebooks: list[Path], out: Path) -> list[str]:
    """Why the student copies in ``out`` are stale (empty when current or none is checked in)."""
    present = sorted(out.glob("*.ipynb")) if out.is_dir() else []
    if not present:
        return []
    problems = []
    names = {p.name for p in notebooks}
    for p in notebooks:
        dest = out / p.name
        if not dest.exists():
            problems.append(f"{dest}: missing (run `dockercourse release`)")
        elif dest.read_text(encoding="utf-8") != student_text(p):
            problems.append(f"{dest}: differs from the student copy of {p} (run `dockercourse release`)")
    for q in present:
        if q.name not in names:
            problems.append(f"{q}: no master notebook of that name")
    return problems
