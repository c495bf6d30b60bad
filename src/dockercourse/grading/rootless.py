"""A rootless Docker engine of a throwaway user's own (see :mod:`dockercourse.grading.sandbox`):
``dockerd-rootless.sh`` (rootlesskit + slirp4netns) from the course's Docker 28.5 packages, the
course mirror at the host's address, and what this machine lacks to run one."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from dockercourse.engines.procs import ping
from dockercourse.errors import CourseError
from dockercourse.grading.users import TUN, Identity, _engines, _locked, _run, create_user, remove_user

log = logging.getLogger(__name__)

#: Debian 12 packages the rootless tier needs (``./course setup`` installs them)
APT_PACKAGES = "rootlesskit slirp4netns uidmap acl"
START_TIMEOUT = 60.0


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
        return ["root (the grader creates a throwaway user per submission)"]
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
    if mirror_port:  # at the host's address: see _mirror_at_loopback
        cmd += ["--registry-mirror", f"http://127.0.0.1:{mirror_port}"]
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
    _engines[ident.name] = proc
    ident.engine_pid = proc.pid
    ident.save()
    host = f"unix://{ident.socket}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if ident.socket.exists() and ping(host):
            if mirror_port:
                _mirror_at_loopback(ident, mirror_port)
            return host
        time.sleep(0.1)
    tail = (ident.dir / "engine.log").read_text(errors="replace").strip().splitlines()[-6:]
    raise CourseError("the rootless engine did not start: " + " | ".join(ln[-200:] for ln in tail))


def start_with_images(ident: Identity, images: list[str]) -> str:
    """Start ``ident``'s rootless engine and put ``images`` into it (through the course mirror, else
    copied from the host's engine); its ``DOCKER_HOST``. Raises when an image cannot be had."""
    import docker

    from dockercourse.vm.seed import find_mirror_port, load_images

    port = find_mirror_port()
    host = start_rootless(ident, port)
    client = docker.DockerClient(base_url=host, timeout=300)
    try:
        got = load_images(client, images, mirror=bool(port), log=lambda *_: None)
    finally:
        client.close()
    lost = [i for i in images if i not in got]
    if lost:
        raise CourseError(
            f"the rootless engine could not get {', '.join(lost)}: no course mirror answered and the "
            "host's engine does not have them (run `dockercourse images` first)"
        )
    return host


def _mirror_at_loopback(ident: Identity, port: int) -> None:
    """Make ``127.0.0.1:PORT`` in the engine's network namespace the host's course mirror (slirp4netns
    reaches the host's loopback as 10.0.2.2), as the VM engine does: the engine reports the mirror at
    the address a notebook on the host reaches too, and pulls work the same. Entered as root."""
    child = (ident.dir / "run" / "dockerd-rootless" / "child_pid").read_text().strip()
    ns = ["nsenter", "-t", child, "-n", "--"]
    _run([*ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"])
    dnat = ["-p", "tcp", "-d", "127.0.0.1/32", "--dport", str(port), "-j", "DNAT"]
    _run([*ns, "iptables", "-t", "nat", "-A", "OUTPUT", *dnat, "--to-destination", f"10.0.2.2:{port}"])


_limits: bool | None = None


def rootless_limits() -> bool:
    """Whether a rootless engine here enforces memory limits: asked of one (a throwaway user and
    engine, about 3 s, once per process). cgroup v1 hosts cannot; cgroup v2 ones only with the
    cgroup subtree delegated to the user."""
    global _limits
    if _limits is None:
        import docker

        ident = create_user(subids=True)
        try:
            c = docker.DockerClient(base_url=start_rootless(ident, None), timeout=30)
            try:
                _limits = c.info().get("CgroupDriver", "none") != "none" and bool(c.info().get("MemoryLimit"))
            finally:
                c.close()
        except (CourseError, OSError) as e:
            log.info("could not ask a rootless engine about limits: %s", e)
            _limits = False
        finally:
            remove_user(ident)
    return _limits
