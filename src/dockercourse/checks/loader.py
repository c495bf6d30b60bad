"""Finding the course folder and loading a chapter's checks (``checks/NN_slug.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dockercourse import config
from dockercourse.checks import api
from dockercourse.checks.api import Exercise
from dockercourse.core.namespace import chapter_number


def course_root(start: Path | None = None) -> Path:
    """The course folder (the one holding ``checks/`` and ``notebooks/``).

    ``DOCKERCOURSE_ROOT`` wins; then the source checkout this package lives in;
    then the current folder and its parents.
    """
    env = config.get("DOCKERCOURSE_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    if (here / "checks").is_dir():
        return here
    p = (start or Path.cwd()).resolve()
    for cand in [p, *p.parents]:
        if (cand / "checks").is_dir():
            return cand
    raise FileNotFoundError(
        "cannot find the course's checks/ folder; set DOCKERCOURSE_ROOT to the course folder"
    )


def checks_file(chapter: str, root: Path | None = None) -> Path:
    root = root or course_root()
    num = chapter_number(chapter)
    found = sorted((root / "checks").glob(f"{num}_*.py"))
    if not found:
        raise FileNotFoundError(f"no checks file for chapter {num} in {root / 'checks'}")
    return found[0]


def load_exercises(chapter: str, root: Path | None = None) -> dict[str, Exercise]:
    """Load ``checks/NN_*.py`` afresh and return its exercises by id, in file order."""
    path = checks_file(chapter, root)
    spec = importlib.util.spec_from_file_location(f"dockercourse_checks_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    api._collecting = {}  # @exercise records each declaration here
    try:
        spec.loader.exec_module(mod)
        return dict(api._collecting)
    finally:
        api._collecting = None
