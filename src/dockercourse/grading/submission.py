"""Reading submissions: the files of a folder, their student ids, their notebooks, and when to check what.

A submission is any regular, non-hidden file of the folder; it is untrusted, so reading
it never raises: a file that is not a usable notebook says why instead. Its exercises are
checked at *check points* planned from the cells' ``metadata.dockercourse`` (never from
their position), see :func:`plan_checks`.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

from dockercourse.core.notebooks import cell_part, chapter_of
from dockercourse.errors import CourseError

log = logging.getLogger(__name__)

#: Largest file read as a submission.
MAX_BYTES = 50 * 1024 * 1024
#: Marker of the "after the last cell" check point.
END = -1


# --------------------------------------------------------------------------- a folder


def submissions(folder: Path) -> list[Path]:
    """The submitted files: every regular, non-hidden file directly in ``folder``."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith("~")
    )


def student_ids(files: list[Path]) -> dict[Path, str]:
    """Student id of each file: its stem, or its whole name when two files share a stem."""
    stems: dict[str, int] = {}
    for p in files:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: (p.stem if stems[p.stem] == 1 else p.name) for p in files}


def detect_chapter(files: list[Path]) -> str:
    """The chapter the submissions say they are (one only), else CourseError."""
    seen: dict[str, int] = {}
    for p in files:
        nb, _ = read_submission(p)
        ch = chapter_of(nb, None) if nb is not None else None
        if ch:
            seen[ch] = seen.get(ch, 0) + 1
    if len(seen) == 1:
        return next(iter(seen))
    if not seen:
        raise CourseError("no submission says its chapter (metadata.dockercourse.chapter); give --chapter")
    raise CourseError(
        "the submissions are of several chapters ("
        + ", ".join(f"{c}: {n}" for c, n in sorted(seen.items()))
        + "); give --chapter"
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- one file


def read_submission(path: Path):
    """``(notebook, None)`` or ``(None, why it is not a notebook)``."""
    import nbformat

    try:
        size = path.stat().st_size
    except OSError as e:
        return None, f"cannot read the file ({e.strerror})"
    if size > MAX_BYTES:
        return None, f"the file is {size // (1024 * 1024)} MB, more than a notebook can be"
    try:
        with quiet_nbformat():
            nb = nbformat.read(path, as_version=4)
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any failure to parse them means "not a notebook"
        # (JSON and Unicode errors, an unknown nbformat version, junk the upgrade code chokes on, ...)
        return None, f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return sane(nb)


def sane(nb):
    """``(nb, None)`` when ``nb`` has the shape the grader relies on, else ``(None, why not)``."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and isinstance(c.get("cell_type"), str) for c in cells
    ):
        return None, "it has no list of cells"
    for c in cells:
        if c.get("cell_type") == "code" and not isinstance(c.get("source"), str):
            return None, "a code cell has no source text"
    return nb, None


@contextmanager
def quiet_nbformat():
    """nbformat warns about every small schema deviation; a grader does not care."""
    traitlets = logging.getLogger("traitlets")
    level = traitlets.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traitlets.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            traitlets.setLevel(level)


# --------------------------------------------------------------------------- check points


def plan_checks(cells, exercise_ids) -> dict[str, list[tuple[int, str]]]:
    """Check points of each exercise: ``[(cell index or END, why), ...]`` in order.

    Cells are matched by ``metadata.dockercourse`` only. Cell numbers in the
    explanations are 1-based, as a learner counts them.
    """
    found = {e: {"check": [], "work": []} for e in exercise_ids}
    for i, cell in enumerate(cells):
        ex, part = cell_part(cell)
        if ex not in found:
            continue
        if part == "check":
            found[ex]["check"].append(i)
        elif part in ("answer", "solution"):
            found[ex]["work"].append(i)
    plan = {}
    for ex, f in found.items():
        work = max(f["work"]) if f["work"] else None
        points: dict[int, str] = {}
        for c in f["check"]:
            if work is not None and c < work:
                points.setdefault(
                    work, f"after cell {work + 1}, its answer (its check cell {c + 1} comes before it)"
                )
            else:
                points.setdefault(c, f"at its check cell (cell {c + 1})")
        if not f["check"]:
            if work is not None:
                points[work] = f"after cell {work + 1}, its answer (its check cell is missing)"
            points[END] = "at the end of the notebook (its check cell is missing)"
        plan[ex] = sorted(points.items(), key=lambda kv: (kv[0] == END, kv[0]))
    return plan


def checks_after(plan: dict[str, list[tuple[int, str]]]) -> dict[int, list[tuple[str, str]]]:
    """The plan by cell: ``{cell index: [(exercise id, why), ...]}`` (the END points left out)."""
    at: dict[int, list[tuple[str, str]]] = {}
    for ex_id, points in plan.items():
        for idx, why in points:
            if idx != END:
                at.setdefault(idx, []).append((ex_id, why))
    return at
