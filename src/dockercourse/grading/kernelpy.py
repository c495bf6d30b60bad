"""The Python the throwaway users' kernels run (see :mod:`dockercourse.grading.sandbox`)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dockercourse.errors import CourseError
from dockercourse.grading.users import _run, state_root

log = logging.getLogger(__name__)


def _as_nobody(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        user="nobody",
        group="nogroup" if _group_exists("nogroup") else None,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )


_PROBE = "import sys, os, docker, ipykernel, nbformat, matplotlib, dockercourse; os.listdir(sys.argv[1])"


def readable_by_others(path: Path) -> bool:
    """Whether an unprivileged user (``nobody``) can read ``path`` (as root only)."""
    test = shutil.which("test") or "/usr/bin/test"
    try:
        return _as_nobody([test, "-r", str(path)]).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def kernel_python(root: Path) -> str:
    """The Python the throwaway users' kernels run: the grader's own when an unprivileged user can
    run it with the course's packages; else (e.g. a Python under /root, mode 700) a venv of the
    system's ``python3`` under /var/lib/dockercourse/sandbox-python/, with the grader's versions of
    the course's dependencies and a copy of the toolkit (made once per version of the toolkit).
    Raises when the course folder itself is not readable to other users."""
    if os.geteuid() != 0:
        return sys.executable
    test = shutil.which("test") or "/usr/bin/test"
    if _as_nobody([test, "-r", str(root), "-a", "-x", str(root)]).returncode != 0:
        raise CourseError(
            f"the kernels run as an unprivileged user, who cannot read the course at {root}: put the "
            "course where other users can read it (folders of mode 755), or grade with "
            "--engine host --trust-submissions"
        )
    try:
        if _as_nobody([sys.executable, "-c", _PROBE, str(root)]).returncode == 0:
            return sys.executable
    except (OSError, subprocess.SubprocessError) as e:  # cannot even start it (a folder of mode 700)
        log.info("the grader's Python is not usable by other users: %s", e)
    return str(_grading_venv())


def _toolkit_key() -> tuple[str, Path]:
    import hashlib
    from importlib import metadata

    import dockercourse

    pkg = Path(dockercourse.__file__).resolve().parent
    h = hashlib.sha256()
    for name in sorted(metadata.requires("dockercourse") or []):
        h.update(name.encode())
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            h.update(str(f.relative_to(pkg)).encode() + f.read_bytes())
    return h.hexdigest()[:12], pkg


def _unused_for(stamp: Path, days: float) -> bool:
    try:
        return time.time() - stamp.stat().st_mtime > days * 86400
    except OSError:
        return True  # never completed


def _grading_venv() -> Path:
    """See :func:`kernel_python`: the venv's python, built when missing."""
    from importlib import metadata

    key, pkg = _toolkit_key()
    home = state_root().parent / "sandbox-python"
    venv = home / key
    py = venv / "bin" / "python"
    if (venv / ".complete").exists():
        os.utime(venv / ".complete")  # in use: see the pruning below
        return py
    base = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()), None)
    if base is None:
        raise CourseError("no system python3 for the grading kernels (apt-get install python3-venv)")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():  # another process made it meanwhile
            return py
        shutil.rmtree(venv, ignore_errors=True)
        pins = []
        for req in metadata.requires("dockercourse") or []:
            if "extra ==" in req:
                continue
            name = req.split(";")[0].strip()
            for sep in "<>=!~[ ":
                name = name.split(sep)[0]
            try:
                pins.append(f"{name}=={metadata.version(name)}")
            except metadata.PackageNotFoundError:
                pins.append(req.split(";")[0].strip())
        log.warning("making the grading kernels' Python (once per toolkit version): %s", venv)
        _run([base, "-m", "venv", str(venv)])
        _run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", *pins])
        site = next(venv.glob("lib/python3*/site-packages"))
        shutil.copytree(pkg, site / "dockercourse", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for d, _dirs, files in os.walk(venv):
            os.chmod(d, 0o755)
            for f in files:
                p = Path(d) / f
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.stat().st_mode & 0o100 else 0))
        (venv / ".complete").touch()
        for old in home.iterdir():  # earlier toolkit versions' venvs, unused for a week (a batch of
            if old.is_dir() and old != venv and _unused_for(old / ".complete", days=7):  # another
                shutil.rmtree(old, ignore_errors=True)  # checkout may be using one right now)
    return py


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
