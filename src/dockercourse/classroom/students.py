"""The classroom's students: system users the course made, each with a home, subordinate ids for a
rootless engine, and a copy of the course in ``~/course``: the student copies of the notebooks (as
``dockercourse release`` writes them: no solutions), the lessons, and the checks their cells run.

Only users this module made are ever changed or removed: each has a folder under the classroom's
state root (``students/NAME/identity.json``); a user of the same name without one is somebody
else's, and the classroom refuses that name.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

from dockercourse.classroom import state_root
from dockercourse.errors import CourseError, UsageError
from dockercourse.grading.users import (
    SUBID_COUNT,
    Identity,
    _locked,
    _read,
    _run,
    free_subid,
    parse_subids,
    remove_user,
)

#: a student's name: a portable user name (useradd's default rule, lower case)
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
COMMENT = "dockercourse classroom student"
#: what each student gets a copy of, from the course folder (and the student copies of the notebooks)
COURSE_PARTS = ("lessons", "checks", "chapters.toml")
#: the subordinate ids of classroom students start here (the graders' throwaway users' start at 1.8e9)
SUBID_BASE = 1_600_000_000


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid student name: a lower-case letter, then up to 30 lower-case letters, "
            "digits, '-' or '_'"
        )
    return name


def foreign(names: list[str]) -> list[str]:
    """Those of ``names`` that are users of this machine the classroom did not make."""
    out = []
    for n in names:
        try:
            pwd.getpwnam(n)
        except KeyError:
            continue
        if not (folder(n) / "identity.json").is_file():
            out.append(n)
    return out


def folder(name: str) -> Path:
    return state_root() / "students" / name


def names() -> list[str]:
    """The students the classroom made, by name."""
    base = state_root() / "students"
    return sorted(p.name for p in base.glob("*") if (p / "identity.json").is_file()) if base.is_dir() else []


def load(name: str) -> Identity:
    try:
        return Identity.load(folder(name))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CourseError(f"{name} is not a student of this classroom ({e})") from e


def create(name: str, password: str, course: Path) -> Identity:
    """Make student ``name`` (or keep the one the classroom made before), set the password and put
    the course into ``~/course`` (files the student already has are kept: their work)."""
    check_name(name)
    with _locked():
        mine = (folder(name) / "identity.json").is_file()
        try:
            pwd.getpwnam(name)
            exists = True
        except KeyError:
            exists = False
        if exists and not mine:
            raise CourseError(
                f"a user named {name} exists on this machine and the classroom did not make it: "
                "choose other names (--names)"
            )
        if not exists:
            ident = _new_user(name)
        else:
            ident = load(name)
        _chpasswd(name, password)
    _copy_course(course, ident)
    return ident


def _new_user(name: str) -> Identity:
    taken = parse_subids(_read("/etc/subuid")) + parse_subids(_read("/etc/subgid"))
    start = free_subid(taken, base=SUBID_BASE)
    d = folder(name)
    d.parent.mkdir(parents=True, exist_ok=True)
    state_root().chmod(0o711)
    d.parent.chmod(0o711)
    d.mkdir(mode=0o711, exist_ok=True)
    home = Path("/home") / name
    _run(["useradd", "--create-home", "--home-dir", str(home), "--user-group", "--shell", "/bin/bash",
          "--comment", COMMENT, name])  # fmt: skip
    pw = pwd.getpwnam(name)
    ident = Identity(name, pw.pw_uid, pw.pw_gid, home, d, start, owner=0)
    ident.save()  # before anything else can fail: `down` finds it
    end = start + SUBID_COUNT - 1
    _run(["usermod", "--add-subuids", f"{start}-{end}", "--add-subgids", f"{start}-{end}", name])
    run = d / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    os.chown(run, ident.uid, ident.gid)
    return ident


def _chpasswd(name: str, password: str) -> None:
    r = subprocess.run(["chpasswd"], input=f"{name}:{password}\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise CourseError(f"chpasswd for {name} failed: {r.stderr.strip()[:300]}")


def _copy_course(course: Path, ident: Identity) -> None:
    import tempfile

    from dockercourse.core.notebooks import masters
    from dockercourse.grading.release import release

    dest = ident.home / "course"
    with tempfile.TemporaryDirectory() as tmp:
        for nb in release(masters(course), Path(tmp)):
            _copy_one(nb, dest / "notebooks" / nb.name)
    for part in COURSE_PARTS:
        src = course / part
        if src.is_dir():
            for f in src.rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                    _copy_one(f, dest / part / f.relative_to(src))
        elif src.is_file():
            _copy_one(src, dest / part)
    for d, _dirs, files in os.walk(dest):
        os.chown(d, ident.uid, ident.gid)
        for f in files:
            os.chown(os.path.join(d, f), ident.uid, ident.gid)


def _copy_one(src: Path, dst: Path) -> None:
    if dst.exists():
        return  # the student's (perhaps changed) copy
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def remove(name: str) -> list[str]:
    """Remove student ``name``: every process of theirs (server, kernels, engine, containers), their
    files in /tmp, the user, their subordinate ids, their home and the classroom's folder of them."""
    ident = load(name)
    problems = remove_user(ident)  # also removes the classroom's folder of the student (ident.dir)
    if ident.home.is_dir() and ident.home.stat().st_uid == ident.uid:
        shutil.rmtree(ident.home, ignore_errors=True)
    if ident.home.exists():
        problems.append(f"could not remove {ident.home}")
    return problems
