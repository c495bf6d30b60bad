"""``dockercourse release``: write student copies of the master notebooks, or check they are current.

    dockercourse release [--out DIR] [--check] [--root DIR] [-q] [notebooks ...]

The work is :mod:`dockercourse.grading.release`; see docs/grading.md. ``--check`` writes
nothing and exits 1 when the copies in the out folder are stale (a folder without any
notebook passes: nothing is checked in).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dockercourse.errors import CourseError, UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "release",
        help="write student copies (solutions removed)",
        description="Write student copies of the master notebooks "
        "(solutions removed, exercise outputs cleared).",
    )
    p.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="master notebooks (default: the course's notebooks/NN_*.ipynb)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for the copies (default: <course>/student)")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the copies in --out are stale"
    )
    p.add_argument("--root", type=Path, default=None, help="the course folder (default: found automatically)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and problems")
    p.set_defaults(run=run)


def run(args) -> int:
    import nbformat

    from dockercourse.checks import course_root
    from dockercourse.core.notebooks import masters
    from dockercourse.grading.release import lint, release, stale

    try:
        root = (args.root or course_root()).resolve()
    except FileNotFoundError as e:
        raise CourseError(str(e)) from None
    nbs = list(args.notebooks) or masters(root)
    out = args.out if args.out is not None else root / "student"
    if not nbs:
        raise UsageError(f"no notebooks/NN_*.ipynb in {root}")
    for p in nbs:
        if not p.is_file():
            raise UsageError(f"no such notebook: {p}")
    for p in nbs:
        for w in lint(nbformat.read(p, as_version=4), p, root):
            print(f"warning: {w}", file=sys.stderr)
    if args.check:
        return _report_stale(out, stale(nbs, out), args.quiet)
    for dest in release(nbs, out):
        if not args.quiet:
            print(f"wrote {dest}")
    return 0


def _report_stale(out: Path, problems: list[str], quiet: bool) -> int:
    """``--check``: 1 with the problems on stderr, else 0 (and what was found, unless quiet)."""
    for msg in problems:
        print(f"stale: {msg}", file=sys.stderr)
    if problems:
        return 1
    if not quiet:
        present = out.is_dir() and any(out.glob("*.ipynb"))
        print(f"student copies in {out}: " + ("up to date" if present else "none checked in"))
    return 0
