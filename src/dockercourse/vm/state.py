"""The state of VM engines: :class:`VMEngine`, the per-VM state directory and what reads it.

A running VM engine's state is in ``state_root()/<name>/`` (mode 0700): ``state.json``
(pid, port, DOCKER_HOST, accel, boot time, the forwarder's pid), ``console.log``,
``qemu.log``, ``tmp/`` (qemu's overlay), ``monitor.sock``, ``portfwd.log`` and
``forwards.json``. Processes are recognised by their command lines, not only their pids.

API: :func:`status`, :func:`reap_stale`, :func:`find_by_docker_host`, :func:`describe`
(for ``doctor``), :func:`wait_ready` (for a notebook's setup cell).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockercourse import config
from dockercourse.vm.boot import Boot
from dockercourse.vm.seed import ping

logger = logging.getLogger(__name__)

#: the forwarder of published ports (``python -m`` this module), see :mod:`.portfwd`
PORTFWD_MODULE = "dockercourse.vm.portfwd"


@dataclass
class VMEngine:
    """A running VM engine."""

    docker_host: str
    pid: int
    port: int
    state_dir: str
    accel: str
    memory_mb: int
    boot_seconds: float = 0.0
    name: str = "default"
    images: list = field(default_factory=list)
    started: float = 0.0
    portfwd_pid: int = 0
    flavor: str = "docker"
    engine: str = ""  # what runs in the guest ("Docker 28.5.2 (the course's Debian packages: ...)")
    shares: list = field(default_factory=list)  # host folders mounted in the guest at the same paths
    tls_dir: str = ""  # the client's certificate and key when the API is on mutual TLS (see tls.py)
    _boot: Boot | None = field(default=None, repr=False, compare=False)
    _portfwd: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def client(self, timeout: int = 300):
        """A ``docker.DockerClient`` for this engine."""
        import docker

        if self.tls_dir:
            from dockercourse.core.engine import client_for
            from dockercourse.vm.tls import docker_tls

            return client_for(self.docker_host, timeout=timeout, tls=docker_tls(self.tls_dir))
        return docker.DockerClient(base_url=self.docker_host, version="auto", timeout=timeout)

    def env(self) -> dict[str, str]:
        """Environment variables that point docker (CLI and docker-py) at this engine."""
        if self.tls_dir:
            from dockercourse.vm.tls import env as tls_env

            return {"DOCKER_HOST": self.docker_host, **tls_env(self.tls_dir)}
        return {"DOCKER_HOST": self.docker_host}

    def rss_bytes(self) -> int:
        return rss(self.pid)


# --------------------------------------------------------------------------- paths and processes


def state_root() -> Path:
    """Per-user state directory (``DOCKERCOURSE_VM_STATE`` overrides it)."""
    p = config.path("DOCKERCOURSE_VM_STATE")
    if p is None:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        p = Path(base) / "dockercourse" / "vm"
    p.mkdir(parents=True, exist_ok=True)
    return p


def named_dir(name: str) -> Path:
    """The state directory of VM engine ``name``."""
    return state_root() / name


def cleanup_state(sd: Path) -> None:
    if sd.exists():
        shutil.rmtree(sd, ignore_errors=True)


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:  # gone: no memory
        return 0
    return 0


def _cmdline(pid: int) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone (or not ours to read): not the process we look for
        return None


def is_our_qemu(pid: int, sd: Path) -> bool:
    """True when ``pid`` is the qemu of the VM whose state directory is ``sd``."""
    cmd = _cmdline(pid)
    return bool(cmd) and b"qemu" in cmd[0] and any(str(sd).encode() in a for a in cmd)


def is_our_portfwd(pid: int, sd: Path) -> bool:
    """True when ``pid`` is the port forwarder of the VM whose state directory is ``sd``."""
    cmd = _cmdline(pid)
    return cmd is not None and PORTFWD_MODULE.encode() in cmd and str(sd).encode() in cmd


def write_state(eng: VMEngine, sd: Path, *, monitor: bool) -> None:
    d = {k: getattr(eng, k) for k in VMEngine.__dataclass_fields__ if not k.startswith("_")}
    d["monitor"] = monitor
    tmp = sd / ".state.json.tmp"
    tmp.write_text(json.dumps(d, indent=1))
    os.replace(tmp, sd / "state.json")


def saved_pid(sd: Path, key: str) -> int:
    """``state.json``'s ``key`` (a pid) as an int; 0 when there is no (readable) state."""
    try:
        return int(json.loads((sd / "state.json").read_text()).get(key) or 0)
    except (OSError, ValueError):
        return 0


# --------------------------------------------------------------------------- reading the state


def status(*, name: str = "default", state_dir: Path | None = None) -> dict | None:
    """The state of VM engine ``name`` (None when there is none): its saved fields plus
    ``running`` (qemu alive), ``answers`` (API ping) and ``rss_bytes``."""
    sd = Path(state_dir) if state_dir else named_dir(name)
    try:
        st = json.loads((sd / "state.json").read_text())
    except (OSError, ValueError):
        return None
    pid = int(st.get("pid", 0))
    st["running"] = pid > 0 and is_our_qemu(pid, sd)
    st["answers"] = st["running"] and ping(int(st["port"]), tls_dir=st.get("tls_dir") or None)
    st["rss_bytes"] = rss(pid) if st["running"] else 0
    fpid = int(st.get("portfwd_pid") or 0)
    st["portfwd_running"] = bool(st["running"] and fpid and is_our_portfwd(fpid, sd))
    fw = read_forwards(sd) if st["portfwd_running"] else None
    st["forwards"] = (fw or {}).get("forwards", [])
    st["forwards_failed"] = (fw or {}).get("failed", [])
    return st


def read_forwards(sd: Path) -> dict | None:
    """The forwarder's current state (``forwards``, ``failed``), or None."""
    from dockercourse.vm.portfwd import read_state

    return read_state(sd)


def reap_stale() -> list[str]:
    """Remove state directories of throwaway VMs (``w-*``) whose qemu is gone (a worker
    that crashed); returns their names. Running VMs are left alone."""
    gone = []
    try:
        dirs = [d for d in state_root().iterdir() if d.is_dir() and d.name.startswith("w-")]
    except OSError as e:
        logger.debug("no state directories to reap (%s)", e)
        return gone
    for d in dirs:
        try:
            pid = int(json.loads((d / "state.json").read_text()).get("pid", 0))
        except (OSError, ValueError):
            # no state yet: a VM booting right now, or one that died booting; judge by age
            try:
                if time.time() - d.stat().st_mtime < 900:
                    continue
            except OSError:  # removed meanwhile
                continue
            pid = 0
        if pid and is_our_qemu(pid, d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        gone.append(d.name)
    return gone


# --------------------------------------------------------------------------- for setup cells and doctor


def find_by_docker_host(docker_host: str | None = None) -> dict | None:
    """The state of the VM engine whose DOCKER_HOST is ``docker_host`` (default: the
    environment's), or None when it is not one of this user's VM engines."""
    docker_host = docker_host or os.environ.get("DOCKER_HOST", "")
    if not docker_host.startswith("tcp://127.0.0.1:"):
        return None
    try:
        root = state_root()
        dirs = [d for d in root.iterdir() if d.is_dir()]
    except OSError as e:
        logger.debug("no VM engine state to look in (%s)", e)
        return None
    for d in dirs:
        st = status(state_dir=d)
        if st and st.get("docker_host") == docker_host:
            return st
    return None


def describe(docker_host: str | None = None) -> str | None:
    """One line for ``doctor``: "VM (emulated, TCG): Docker 28.5.2, booted in 35 s, qemu RSS 500 MB, ...",
    or None when DOCKER_HOST is not a VM engine of this user."""
    st = find_by_docker_host(docker_host)
    if st is None:
        return None
    kind = (
        "VM (KVM)"
        if st.get("accel") == "kvm"
        else "VM (emulated, TCG: containers start in seconds, not milliseconds)"
    )
    what = (st.get("engine") or "").split(" (", 1)[0]
    return (
        f"{kind}: {what + ', ' if what else ''}booted in {st.get('boot_seconds')} s, "
        f"{st.get('memory_mb')} MB guest, "
        f"qemu RSS {st.get('rss_bytes', 0) / 2**20:.0f} MB, "
        f"{'answering' if st.get('answers') else 'not answering'}"
    )


def _phase() -> str:
    """What the VM engine's boot is doing: the last line of its log (``binder/start``'s)."""
    log = config.path("DOCKERCOURSE_VM_UP_LOG") or state_root().parent / "vm-up.log"
    try:
        last = [ln for ln in log.read_text().splitlines() if ln.strip()][-1]
    except (OSError, IndexError):  # no log (yet), or an empty one
        return "starting"
    return last.replace("vm: ", "")[:70]


def wait_ready(docker_host: str | None = None, timeout: float = 900, progress=None) -> bool:
    """Wait until the engine at ``docker_host`` (default DOCKER_HOST) answers /_ping.

    For a notebook's setup cell on Binder, where ``binder/start`` boots the VM in the
    background: prints one updating progress line (``progress(text)`` if given, else
    ``\\r`` on stdout). Returns True when it answers, False on timeout. Returns at once
    for engines that are not on 127.0.0.1 TCP.
    """
    docker_host = docker_host or os.environ.get("DOCKER_HOST", "")
    if not docker_host.startswith("tcp://127.0.0.1:"):
        return True
    port = int(docker_host.rsplit(":", 1)[1])
    tls_dir = os.environ.get("DOCKER_CERT_PATH") if os.environ.get("DOCKER_TLS_VERIFY") else None
    t0 = time.monotonic()
    shown = False
    while True:
        if ping(port, 1, tls_dir):
            if shown:
                msg = f"VM engine ready after {time.monotonic() - t0:.0f} s"
                progress(msg) if progress else print("\r" + msg + " " * 20, flush=True)
            return True
        waited = time.monotonic() - t0
        if waited > timeout:
            return False
        msg = f"waiting for the VM engine ({waited:.0f} s): {_phase()}"
        if progress:
            progress(msg)
        else:
            sys.stdout.write("\r" + msg[:100].ljust(100))
            sys.stdout.flush()
        shown = True
        time.sleep(2)
