"""Student copies of the chapter notebooks: solutions removed, exercise outputs cleared.

    dockercourse release [--out DIR] [--check] [notebooks ...]

For every master notebook (default: ``notebooks/NN_*.ipynb`` of the course) the
student copy is the same notebook with

* every cell whose ``metadata.dockercourse.part == "solution"`` removed;
* the outputs and execution counts of ``answer`` and ``check`` cells cleared;
* ``metadata.dockercourse.chapter`` stamped (from the master's metadata, or
  from its ``NN_`` file name), so the grader knows the chapter of a submission;
* everything else (prose, live cells and their committed outputs, cell ids,
  metadata) left exactly as it is.

The copy is a pure function of the master, so it is byte-for-byte reproducible:
``--check`` rewrites nothing and exits 1 when a copy in the out folder differs
from what ``release`` would write now (or is missing, or has no master). When
the out folder holds no notebook at all, ``--check`` passes: nothing is checked in.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from dockercourse.checks import course_root, load_exercises
from dockercourse.core.namespace import chapter_number

#: The key of the course's cell and notebook metadata.
META = "dockercourse"
PARTS = ("task", "answer", "solution", "check")


# --------------------------------------------------------------------------- cells


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


def chapter_of(nb, path: Path | str | None = None) -> str | None:
    """The chapter of a notebook: ``metadata.dockercourse.chapter``, else its ``NN_`` file name."""
    md = nb.get("metadata") if isinstance(nb, dict) else None
    d = md.get(META) if isinstance(md, dict) else None
    if isinstance(d, dict) and d.get("chapter") not in (None, ""):
        try:
            return chapter_number(str(d["chapter"]))
        except ValueError:
            pass
    if path is not None:
        m = re.match(r"^(\d{2})_", Path(path).name)
        if m:
            return m.group(1)
    return None


# --------------------------------------------------------------------------- the copy


#: The call whose output summarises the exercises (see dockercourse.notebook.course.Course.progress).
PROGRESS_CALL = "course.progress()"


def student_copy(master, chapter: str | None = None):
    """The student copy of a master notebook (the master is not modified)."""
    nb = copy.deepcopy(master)
    chapter = chapter or chapter_of(master)
    cells = []
    for cell in nb.cells:
        ex, part = cell_part(cell)
        if part == "solution":
            continue
        # Exercise cells, and the chapter's progress summary (its committed output is the
        # master's "all passing", which would mislead a learner), start empty.
        reports_progress = cell.get("cell_type") == "code" and PROGRESS_CALL in "".join(cell.get("source", ""))
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
        if part == "solution" and not (cell.get("metadata", {}).get("jupyter", {}) or {}).get("source_hidden"):
            problems.append(f"{where}: cell {i}: solution of {ex} lacks metadata.jupyter.source_hidden = true")
        if part == "check" and ex not in cell.get("source", ""):
            problems.append(f"{where}: cell {i}: the check cell of {ex} does not name {ex}")
    for ex, parts in found.items():
        missing = [p for p in PARTS if p not in parts]
        if missing:
            problems.append(f"{where}: exercise {ex} has no {', '.join(missing)} cell")
        order = [parts[p] for p in PARTS if p in parts]
        if order != sorted(order):
            problems.append(f"{where}: the cells of exercise {ex} are not in the order task, answer, solution, check")
    chapter = chapter_of(master, path)
    if chapter and root is not None:
        try:
            declared = load_exercises(chapter, root)
        except FileNotFoundError:
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


def masters(root: Path | None = None) -> list[Path]:
    """The course's master notebooks: ``notebooks/NN_*.ipynb``."""
    root = root or course_root()
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.is_file())


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dockercourse release",
                                 description="Write student copies of the master notebooks "
                                             "(solutions removed, exercise outputs cleared).")
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="master notebooks (default: the course's notebooks/NN_*.ipynb)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the copies (default: <course>/student)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 when the copies in --out are stale")
    ap.add_argument("--root", type=Path, default=None, help="the course folder (default: found automatically)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    root = (a.root or course_root()).resolve()
    nbs = list(a.notebooks) or masters(root)
    out = a.out if a.out is not None else root / "student"
    if not nbs:
        print(f"dockercourse release: no notebooks/NN_*.ipynb in {root}", file=sys.stderr)
        return 2
    for p in nbs:
        if not p.is_file():
            print(f"dockercourse release: no such notebook: {p}", file=sys.stderr)
            return 2
    for p in nbs:
        for w in lint(nbformat.read(p, as_version=4), p, root):
            print(f"warning: {w}", file=sys.stderr)
    if a.check:
        problems = stale(nbs, out)
        for msg in problems:
            print(f"stale: {msg}", file=sys.stderr)
        if problems:
            return 1
        if not a.quiet:
            present = out.is_dir() and any(out.glob("*.ipynb"))
            print(f"student copies in {out}: " + ("up to date" if present else "none checked in"))
        return 0
    for dest in release(nbs, out):
        if not a.quiet:
            print(f"wrote {dest}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
