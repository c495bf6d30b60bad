"""Grading behind a boundary: each worker gets a throwaway unprivileged user, and (tier
``rootless``) a rootless Docker engine of that user's own.

Why: a submission is code. Graded with the host's engine it could bind-mount ``/``, start a
privileged container or remove every container on the machine; graded in a kernel that runs
as the grader (root), it could simply ``open("/etc/shadow")``. So, when the grader is root:

* every submission gets a system user ``dcg-<hex>`` with a home under
  ``/var/lib/dockercourse/sandbox/<user>/`` and subordinate ids of its own
  (``/etc/subuid``, ``/etc/subgid``); its notebook kernel runs as that user;
* tier ``rootless`` starts ``dockerd-rootless.sh`` (rootlesskit + slirp4netns, the course's
  Docker 28.5 packages or the system's) as that user, with the data root in its home and
  the socket in its private run folder; the worker's ``DOCKER_HOST`` points at it meanwhile. A
  container's root is the throwaway user on the host: a bind mount of ``/`` reads what any
  unprivileged user may read, and the host's engine socket (``root:docker``, mode 660) is out
  of reach, as are other workers' engines (each socket is in a folder of mode 700);
* tier ``vm`` keeps one qemu engine per worker (:mod:`dockercourse.vm.engine`: a boot costs
  tens of seconds without KVM) and adds the kernel's user per submission.

Images come through the host's course mirror (``10.0.2.2:PORT`` is the host's loopback seen from
slirp4netns, as in the VM), else are copied from the host's engine.

When the submission is graded, everything goes: the engine (and whatever runs as the user or
in its subordinate ids), its data, the files the user left in /tmp, the ``/dev/net/tun`` ACL
entry (only where that device is not open to all users, as it is on a stock Debian), the user.
A worker that was killed leaves the folder with its pid: the end of the batch, or the next
grading run (:func:`reap_stale`), removes what it left.
"""

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
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dockercourse.errors import CourseError

log = logging.getLogger(__name__)

USER_PREFIX = "dcg-"
#: subordinate id ranges of the throwaway users start here (above what useradd hands out by default)
SUBID_BASE = 1_800_000_000
SUBID_COUNT = 65536
SUBID_SLOTS = 4096
TUN = Path("/dev/net/tun")
#: Debian 12 packages the rootless tier needs (``./course setup`` installs them)
APT_PACKAGES = "rootlesskit slirp4netns uidmap acl"
START_TIMEOUT = 60.0


def state_root() -> Path:
    from dockercourse.engines.packages import SYSTEM_HOME

    return SYSTEM_HOME / "sandbox"


@dataclass
class Identity:
    """A worker's throwaway user, as the kernels it starts and the clean-up need it."""

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
        """``base`` with this user's home, name and run folder."""
        return dict(
            base,
            HOME=str(self.home),
            USER=self.name,
            LOGNAME=self.name,
            XDG_RUNTIME_DIR=str(self.dir / "run"),
            TMPDIR="/tmp",
        )

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "docker.sock"


#: this worker process's tier, the chapter's images and the Python its kernels run
#: (:func:`worker_init`); what went wrong booting its VM; the user of the submission being graded
_tier: str | None = None
_images: list[str] = []
_python: str | None = None
init_error: str | None = None
_current: Identity | None = None


def current() -> Identity | None:
    return _current


# --------------------------------------------------------------------------- what a tier needs


def _rootless_binaries() -> dict[str, str | None]:
    """Where ``dockerd-rootless.sh``, ``dockerd`` and ``containerd`` are: the course's Docker 28.5
    packages when unpacked, else the system's."""
    from dockercourse.engines.packages import pkg_root

    root = pkg_root("28.5")
    course = {
        "dockerd-rootless.sh": root / "usr/share/docker.io/contrib/dockerd-rootless.sh",
        "dockerd": root / "usr/sbin/dockerd",
        "containerd": root / "usr/bin/containerd",
    }
    if all(p.exists() for p in course.values()):
        return {k: str(v) for k, v in course.items()}
    return {k: shutil.which(k) for k in course}


def rootless_missing() -> list[str]:
    """What this machine lacks for the rootless tier, in words (empty: it can run)."""
    if os.geteuid() != 0:
        return ["root (the grader creates a throwaway user per worker)"]
    missing = [
        f"{b} ({pkg})"
        for b, pkg in (
            ("rootlesskit", "rootlesskit"),
            ("slirp4netns", "slirp4netns"),
            ("newuidmap", "uidmap"),
            ("newgidmap", "uidmap"),
            ("runc", "runc"),
            ("useradd", "passwd"),
        )
        if not shutil.which(b)
    ]
    if not _tun_open_to_all() and not shutil.which("setfacl"):
        missing.append("setfacl (acl), as /dev/net/tun is not open to other users here")
    if not TUN.exists():
        missing.append("/dev/net/tun")
    return missing


def ensure_rootless_binaries() -> None:
    """Make sure a ``dockerd-rootless.sh`` with its dockerd is there: else unpack the course's
    Docker 28.5 packages (from Debian's archive, as ``dockercourse engine up --engine 28`` does)."""
    if all(_rootless_binaries().values()):
        return
    from dockercourse.engines.packages import ensure_packages

    ensure_packages("28.5")
    missing = [k for k, v in _rootless_binaries().items() if not v]
    if missing:
        raise CourseError(f"no {', '.join(missing)} for a rootless engine, even after fetching docker.io 28")


def _tun_open_to_all() -> bool:
    try:
        return TUN.stat().st_mode & 0o006 == 0o006
    except OSError:
        return False


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


# --------------------------------------------------------------------------- the throwaway user


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
            time.sleep(0.2)
    for _ in range(20):
        pids = _pids_of(ident)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _pids_of(ident: Identity) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if _owned(p.stat().st_uid, ident):
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
    if ident is not None and _alive(ident.owner) and _start_time(ident.owner) == ident.owner_start:
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


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- the rootless engine


def _pdeathsig_fn():
    """A ``preexec_fn`` that makes the child get SIGTERM when the worker that started it dies
    (``prctl(PR_SET_PDEATHSIG)``); libc is loaded here, before the fork."""
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)


def start_rootless(ident: Identity, mirror_port: int | None) -> str:
    """Start the user's rootless dockerd; its ``DOCKER_HOST`` once it answers."""
    bins = _rootless_binaries()
    if not _tun_open_to_all():  # slirp4netns opens it as the user; only this user gets it
        with _locked():
            ident.tun_acl = True
            ident.save()  # first: a worker killed right after still has its entry removed
            _run(["setfacl", "-m", f"u:{ident.uid}:rw", str(TUN)])
    dirs = dict.fromkeys(str(Path(v).parent) for v in bins.values() if v)
    env = {
        "PATH": ":".join(
            [*dirs, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        ),
        "HOME": str(ident.home),
        "USER": ident.name,
        "XDG_RUNTIME_DIR": str(ident.dir / "run"),
        # the host's loopback (10.0.2.2 in slirp4netns) only when the course mirror is there to reach
        "DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK": "false" if mirror_port else "true",
    }
    cmd = [
        bins["dockerd-rootless.sh"],
        "--data-root",
        str(ident.home / "docker"),
        "--host",
        f"unix://{ident.socket}",
        "--userland-proxy=true",
    ]
    if mirror_port:
        cmd += [
            "--registry-mirror",
            f"http://10.0.2.2:{mirror_port}",
            "--insecure-registry",
            f"10.0.2.2:{mirror_port}",
        ]
    logf = open(ident.dir / "engine.log", "wb")  # noqa: SIM115 (the engine keeps writing to it)
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=str(ident.home),
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_pdeathsig_fn(),  # noqa: PLW1509 (no threads yet in a fresh worker)
        **ident.popen_kwargs(),
    )
    logf.close()
    ident.engine_pid = proc.pid
    ident.save()
    host = f"unix://{ident.socket}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if ident.socket.exists() and _ping(host):
            return host
        time.sleep(0.1)
    tail = (ident.dir / "engine.log").read_text(errors="replace").strip().splitlines()[-6:]
    raise CourseError("the rootless engine did not start: " + " | ".join(ln[-200:] for ln in tail))


def _ping(host: str) -> bool:
    import docker

    try:
        c = docker.DockerClient(base_url=host, timeout=5)
        try:
            return bool(c.ping())
        finally:
            c.close()
    except Exception:  # not answering yet (socket there, API not), whatever the error
        return False


# --------------------------------------------------------------------------- a worker's life


def worker_init(tier: str, images: list[str], vm_args: tuple = (), python: str | None = None) -> None:
    """``ProcessPoolExecutor`` initializer of an isolated tier: remember the tier, the chapter's
    images and the kernels' Python; boot the worker's VM (``vm``). A VM that does not boot is kept in
    :data:`init_error`: every submission this worker takes is then a grader error saying so (never
    graded on another engine). The rootless engine is made per submission, see :func:`boundary`."""
    global _tier, _images, _python, init_error
    _tier, _images, _python = tier, list(images), python
    if tier == "vm":
        try:
            from dockercourse.vm import engine as vm

            vm.worker_init(*vm_args)
        except Exception as e:  # reported with each submission of this worker, see worker_task
            init_error = f"{e.__class__.__name__}: {e}"
            log.warning("grading worker could not start its VM engine: %s", init_error)


class BoundaryError(CourseError):
    """A submission's user or engine could not be made: the submission is not graded (grader error)."""


@contextlib.contextmanager
def boundary():
    """One submission's boundary, in an isolated tier's worker (else nothing): a throwaway user that
    its kernel runs as (when the grader is root) and, tier ``rootless``, a fresh rootless engine of
    that user's with the chapter's images, which ``DOCKER_HOST`` names meanwhile. Everything of it
    is removed afterwards, so nothing one submission did (a container left running, an image
    re-tagged, a process in the background) can reach the next one graded by the same worker."""
    global _current
    if _tier is None:
        yield
        return
    from dockercourse.grading import namespaces

    saved = os.environ.get("DOCKER_HOST")
    ident = None
    try:
        try:
            if os.geteuid() == 0:
                ident = _current = create_user(subids=_tier == "rootless")
            if _tier == "rootless":
                if ident is None:
                    raise CourseError("the rootless tier needs root (a throwaway user per submission)")
                os.environ["DOCKER_HOST"] = _rootless_with_images(ident)
            namespaces.reset_client()
        except Exception as e:
            raise BoundaryError(f"{e.__class__.__name__}: {e}") from e
        yield
    finally:
        _current = None
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved
        namespaces.reset_client()
        if ident is not None:
            problems = remove_user(ident)
            if problems:
                log.warning("cleaning up grading user %s: %s", ident.name, "; ".join(problems))


def _rootless_with_images(ident: Identity) -> str:
    """Start ``ident``'s rootless engine and put the chapter's images in it; its ``DOCKER_HOST``."""
    import docker

    from dockercourse.vm.seed import find_mirror_port, load_images

    port = find_mirror_port()
    host = start_rootless(ident, port)
    client = docker.DockerClient(base_url=host, timeout=300)
    try:
        got = load_images(client, _images, mirror=bool(port), log=lambda *_: None)
    finally:
        client.close()
    lost = [i for i in _images if i not in got]
    if lost:
        raise CourseError(
            f"the rootless engine could not get {', '.join(lost)}: no course mirror answered and the "
            "host's engine does not have them (run `dockercourse images` first)"
        )
    return host


def kernel_manager_class(ident: Identity):
    """A jupyter_client kernel manager whose connection file the user's kernel can read."""
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)
            if _python and cmd and Path(cmd[0]).name.startswith("python"):
                cmd = [_python, *cmd[1:]]  # a Python the user can run (see kernel_python)
            return cmd

        def write_connection_file(self, **kw) -> None:
            if not self.connection_file or Path(self.connection_file).parent != ident.home:
                self.connection_file = str(ident.home / f"kernel-{secrets.token_hex(6)}.json")
            super().write_connection_file(**kw)
            os.chown(self.connection_file, ident.uid, ident.gid)

    return SandboxKernelManager
