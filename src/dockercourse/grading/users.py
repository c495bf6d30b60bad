"""The throwaway users submissions are graded as (see :mod:`dockercourse.grading.sandbox`): made with
subordinate ids of their own, removed with everything that runs as them or is theirs in /tmp, and
reaped when the worker that made one was killed."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dockercourse.engines.procs import alive
from dockercourse.errors import CourseError

log = logging.getLogger(__name__)

USER_PREFIX = "dcg-"
#: subordinate id ranges of the throwaway users start here (above what useradd hands out by default)
SUBID_BASE = 1_800_000_000
SUBID_COUNT = 65536
SUBID_SLOTS = 4096
TUN = Path("/dev/net/tun")
#: the grader's environment variables a sandboxed kernel gets (and DOCKERCOURSE_*, LC_*)
KERNEL_ENV = {"PATH", "LANG", "LANGUAGE", "TERM", "TZ", "DOCKER_HOST", "DOCKER_API_VERSION", "MPLBACKEND"}


def state_root() -> Path:
    from dockercourse.engines.packages import SYSTEM_HOME

    return SYSTEM_HOME / "sandbox"


@dataclass
class Identity:
    """A submission's throwaway user, as its kernel and the clean-up need it."""

    name: str
    uid: int
    gid: int
    home: Path
    dir: Path
    subid: int  # first subordinate uid/gid
    owner: int  # pid of the worker process that owns it
    owner_start: str = ""  # its start time (/proc/PID/stat), so a reused pid is not taken for it
    tun_acl: bool = False
    engine_pid: int = 0

    def save(self) -> None:
        d = asdict(self) | {"home": str(self.home), "dir": str(self.dir)}
        (self.dir / "identity.json").write_text(json.dumps(d))

    @classmethod
    def load(cls, folder: Path) -> Identity:
        d = json.loads((folder / "identity.json").read_text())
        return cls(**(d | {"home": Path(d["home"]), "dir": Path(d["dir"])}))

    def popen_kwargs(self) -> dict:
        """``subprocess.Popen`` arguments that run a process as this user."""
        return dict(user=self.uid, group=self.gid, extra_groups=[])

    def env(self, base: dict) -> dict:
        """The kernel's environment: from ``base`` (the grader's) only what a kernel needs (the
        engine, the course's settings, locale, PATH: never the grader's tokens or keys), with this
        user's home, name and run folder."""
        keep = {k: v for k, v in base.items() if k in KERNEL_ENV or k.startswith(("DOCKERCOURSE_", "LC_"))}
        return dict(
            keep,
            HOME=str(self.home),
            USER=self.name,
            LOGNAME=self.name,
            XDG_RUNTIME_DIR=str(self.dir / "run"),
            TMPDIR="/tmp",
        )

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "docker.sock"


#: the rootless engines this process started, by user: waited for when they are stopped
_engines: dict[str, subprocess.Popen] = {}


@contextlib.contextmanager
def _locked():
    """One worker at a time edits /etc/passwd, /etc/subuid and the state folder."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def parse_subids(text: str) -> list[tuple[int, int]]:
    """``(start, count)`` of each well-formed ``name:start:count`` line of /etc/subuid or /etc/subgid."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def free_subid(taken: list[tuple[int, int]], base: int = SUBID_BASE, count: int = SUBID_COUNT) -> int:
    """The first range of ``count`` ids from ``base`` on (in steps of ``count``) overlapping none taken."""
    for k in range(SUBID_SLOTS):
        start = base + k * count
        if all(start + count <= s or s + n <= start for s, n in taken):
            return start
    raise CourseError("no free subordinate id range for a grading user (/etc/subuid is full)")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise CourseError(f"{' '.join(cmd[:2])} failed: {(r.stderr or r.stdout).strip()[:300]}")


def create_user(*, subids: bool, owner: int | None = None) -> Identity:
    """A new system user with a home of its own (and subordinate ids for a rootless engine)."""
    with _locked():
        name = f"{USER_PREFIX}{secrets.token_hex(4)}"
        folder = state_root() / name
        home = folder / "home"
        start = 0
        if subids:
            taken = parse_subids(_read("/etc/subuid")) + parse_subids(_read("/etc/subgid"))
            start = free_subid(taken)
        folder.mkdir(mode=0o711)
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "dockercourse grading worker (throwaway)",
                name,
            ]
        )
        pw = pwd.getpwnam(name)
        owner = owner or os.getpid()
        ident = Identity(name, pw.pw_uid, pw.pw_gid, home, folder, start, owner, _start_time(owner))
        ident.save()  # before anything else can fail: the clean-up finds it
        if subids:
            end = start + SUBID_COUNT - 1
            _run(["usermod", "--add-subuids", f"{start}-{end}", "--add-subgids", f"{start}-{end}", name])
        for d in (home, folder / "run"):
            d.mkdir(mode=0o700)
            os.chown(d, ident.uid, ident.gid)
    return ident


def remove_user(ident: Identity, *, lock: bool = True) -> list[str]:
    """Remove everything of ``ident``: its processes, files in /tmp, tun ACL, folder and user."""
    problems: list[str] = []
    _kill_all(ident)
    _remove_tmp_files(ident)
    with _locked() if lock else contextlib.nullcontext():
        if ident.tun_acl:  # under the lock: setfacl reads, changes and writes the whole ACL
            r = subprocess.run(["setfacl", "-x", f"u:{ident.uid}", str(TUN)], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"setfacl -x on {TUN}: {r.stderr.strip()}")
        try:
            pwd.getpwnam(ident.name)
            r = subprocess.run(["userdel", ident.name], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"userdel {ident.name}: {r.stderr.strip()}")
        except KeyError:
            pass  # already gone
        _drop_subids(ident.name)
        shutil.rmtree(ident.dir, ignore_errors=True)
        if ident.dir.exists():
            problems.append(f"could not remove {ident.dir}")
    return problems


def _drop_subids(name: str) -> None:
    """userdel removes the user's subordinate ids on current shadow; make sure on any."""
    for path in ("/etc/subuid", "/etc/subgid"):
        text = _read(path)
        keep = [ln for ln in text.splitlines() if not ln.startswith(name + ":")]
        if len(keep) != len(text.splitlines()):
            tmp = Path(path + ".dc-tmp")
            tmp.write_text("".join(ln + "\n" for ln in keep))
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            os.replace(tmp, path)


def _owned(uid: int, ident: Identity) -> bool:
    return uid == ident.uid or (ident.subid and ident.subid <= uid < ident.subid + SUBID_COUNT)


def _kill_all(ident: Identity) -> None:
    """SIGTERM the engine, then SIGKILL every process running as the user or one of its subordinate
    ids (its kernels, the engine, containers): all of them were started for this worker."""
    if ident.engine_pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ident.engine_pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pids_of(ident):
            time.sleep(0.1)
    proc = _engines.pop(ident.name, None)
    if proc is not None:  # reap it (a zombie would keep userdel from removing the user)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    for _ in range(20):
        pids = _pids_of(ident)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _pids_of(ident: Identity) -> list[int]:
    """Live processes of the user or its subordinate ids (not zombies: they are only waiting to be
    reaped by their parent)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if _owned(p.stat().st_uid, ident) and alive(int(p.name)):
                    pids.append(int(p.name))
            except OSError:
                continue  # ended meanwhile
    return pids


def _remove_tmp_files(ident: Identity) -> None:
    """What the user's kernels and containers left directly in /tmp (and /var/tmp, /dev/shm)."""
    for top in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")):
        try:
            entries = list(top.iterdir())
        except OSError:
            continue
        for p in entries:
            try:
                if not _owned(p.lstat().st_uid, ident):
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
            except OSError as e:
                log.info("could not remove %s: %s", p, e)


def reap_stale() -> list[str]:
    """Remove the users, engines and folders of grading workers that are gone (killed)."""
    removed: list[str] = []
    root = state_root()
    if not root.is_dir() or os.geteuid() != 0:
        return removed
    with _locked():  # no worker is half-way through making its user meanwhile
        for folder in sorted(root.glob(f"{USER_PREFIX}*")):
            _reap(folder, removed)
    return removed


def _reap(folder: Path, removed: list[str]) -> None:
    """Remove one worker's user and folder when the worker that made them is gone."""
    try:
        ident = Identity.load(folder)
    except (OSError, ValueError, TypeError, KeyError):
        ident = None
    if ident is not None and alive(ident.owner) and _start_time(ident.owner) == ident.owner_start:
        return
    if ident is None:  # a half-made one: its user, if any, by name
        try:
            pw = pwd.getpwnam(folder.name)
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
            return
        ident = Identity(folder.name, pw.pw_uid, pw.pw_gid, folder / "home", folder, 0, 0)
    remove_user(ident, lock=False)
    removed.append(ident.name)


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
