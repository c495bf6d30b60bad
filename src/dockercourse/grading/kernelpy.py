"""The Python the throwaway users' kernels run (see :mod:`dockercourse.grading.sandbox`)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
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


#: the open lock file of the venv this process's batch uses (a shared flock: see _prune)
_in_use = None


def _hold(venv: Path) -> None:
    """Mark ``venv`` in use for as long as this process lives (a shared lock on ``venv/.in-use``)."""
    global _in_use
    f = open(venv / ".in-use", "a")  # noqa: SIM115 (held open on purpose until the process ends)
    fcntl.flock(f, fcntl.LOCK_SH)
    if _in_use is not None:
        _in_use.close()
    _in_use = f


def _prune(home: Path, keep: Path) -> None:
    """Remove the venvs of other toolkit versions that no running batch holds (see _hold)."""
    for old in home.iterdir():
        if not old.is_dir() or old == keep:
            continue
        try:
            with open(old / ".in-use", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a batch holds it
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue  # in use by another batch (or half removed): left for a later run


def _grading_venv() -> Path:
    """See :func:`kernel_python`: the venv's python, built when missing."""
    return shared_python("sandbox-python")


def shared_python(folder: str, extras: tuple[str, ...] = ()) -> Path:
    """The python of a venv other users can run, under /var/lib/dockercourse/``folder``/: the system's
    ``python3`` with this environment's versions of the toolkit's dependencies and of ``extras``
    (distribution names, e.g. ``jupyterlab``) and a copy of the toolkit; made once per toolkit version
    and set of extras, and held (so that pruning spares it) for as long as this process lives."""
    from importlib import metadata

    key, pkg = _toolkit_key()
    if extras:
        key += "-" + hashlib.sha256(" ".join(sorted(extras)).encode()).hexdigest()[:6]
    home = state_root().parent / folder
    venv = home / key
    py = venv / "bin" / "python"
    base = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()), None)
    if base is None:
        raise CourseError("no system python3 for the grading kernels (apt-get install python3-venv)")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pruning happens under it too: what is found here stays
        if (venv / ".complete").exists():
            _hold(venv)
            return py
        shutil.rmtree(venv, ignore_errors=True)
        pins = []
        for req in [*(metadata.requires("dockercourse") or []), *extras]:
            if "extra ==" in req:
                continue
            name = req.split(";")[0].strip()
            for sep in "<>=!~[ ":
                name = name.split(sep)[0]
            try:
                pins.append(f"{name}=={metadata.version(name)}")
            except metadata.PackageNotFoundError:
                pins.append(req.split(";")[0].strip())
        log.warning("making a Python other users can run (once per toolkit version): %s", venv)
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
        _hold(venv)
        _prune(home, venv)  # earlier toolkit versions' venvs (about 370 MB each)
    return py


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
