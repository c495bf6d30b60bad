"""How one of the course's engines is started: its command, configuration, folders and prerequisites.

Standard library only (``scripts/engine-up`` runs before the course's environment exists).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dockercourse import config
from dockercourse.engines.packages import apt_install, dpkg_version, ensure_packages, package_versions
from dockercourse.engines.procs import alive, comm, listening, ping, port_free, read_pid
from dockercourse.engines.specs import (
    DEFAULT_SOCKET,
    EngineSpec,
    course_socket,
    engine_dir,
    exec_root,
    log,
    log_path,
    run_dir,
    state_dir,
)
from dockercourse.errors import EngineError


def mirror_port() -> int:
    """The loopback port of the course's registry mirror (chosen free once, remembered)."""
    f = state_dir() / "mirror-port"
    try:
        port = int(f.read_text().strip())
        if port_free(port):
            return port
        log(f"the mirror port 127.0.0.1:{port} is taken by another program; choosing another one")
    except (OSError, ValueError):
        pass
    for port in range(5501, 5600):
        if port_free(port):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"{port}\n")
            return port
    raise EngineError("no free loopback port in 5501-5599 for the course's registry mirror")


def _docker_group() -> str | None:
    import grp

    try:
        grp.getgrnam("docker")
        return "docker"
    except KeyError:
        return None


@dataclass
class Plan:
    """How one engine is started: its command, environment and where it lives."""

    spec: EngineSpec
    argv: list
    env: dict
    docker_host: str
    socket: str
    data_root: str
    exec_root: str
    pidfile: str
    log: str
    version: str = ""
    notes: list = field(default_factory=list)


def _base_env(extra_path: list[str]) -> dict:
    path = [*extra_path, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "HOME")}
    env["PATH"] = ":".join(path)
    return env


#: How long the course's own engines (Docker 26 and 28) keep BuildKit's records of finished builds. Each
#: record keeps the build's logs, trace and provenance as blobs (about 8 per build). BuildKit's default
#: keeps every record younger than 48 h, however many: the test suite's thousands of builds left 4,000
#: records and 30,000 blobs on this machine's engine, and on the containerd image store every removal
#: of an image or a container waits for a garbage collection over all of them (0.42 s per image there,
#: 0.04 s on a fresh engine). Here: the newest 50 records stay, older ones go after 10 minutes (BuildKit
#: looks every 2 minutes). An engine the learner runs keeps its own setting (docs/engines.md).
BUILD_HISTORY = {"maxAge": "10m", "maxEntries": 50}


def plan(spec: EngineSpec, data_root: str | None = None) -> Plan:
    """Prepare everything ``spec`` needs (packages, config) and say how to start it."""
    port = mirror_port()
    lg = log_path(spec.name)
    lg.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind == "system" and data_root is None:
        # The distribution's engine as the distribution runs it: default socket, data root and
        # /etc/docker/daemon.json; the course only adds its registry mirror.
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        args = [dockerd]
        if not _mirrors_in_daemon_json():
            args += ["--registry-mirror", f"http://127.0.0.1:{port}"]
        return Plan(
            spec,
            args,
            _base_env([]),
            "unix://" + DEFAULT_SOCKET,
            DEFAULT_SOCKET,
            "/var/lib/docker",
            "/var/run/docker",
            "/var/run/docker.pid",
            str(lg),
            version=dpkg_version("docker.io") or "",
        )
    sock = str(course_socket())
    xr = exec_root(spec.name)
    dr = Path(data_root) if data_root else engine_dir(spec.name) / "data"
    cfg = {
        "data-root": str(dr),
        "exec-root": str(xr),
        "pidfile": str(run_dir() / "dockerd.pid"),
        "hosts": [f"unix://{sock}"],
        "registry-mirrors": [f"http://127.0.0.1:{port}"],
    }
    if _docker_group():
        cfg["group"] = "docker"
    if spec.snapshotter is not None:
        cfg["features"] = {"containerd-snapshotter": spec.snapshotter}
    if spec.kind == "own":
        cfg["builder"] = {"history": BUILD_HISTORY}
    if own_netns():
        cfg["registry-mirrors"] = []  # the mirror listens on the host's loopback, not this namespace's
    if spec.kind == "system":
        path_extra: list[str] = []
        ver = dpkg_version("docker.io") or ""
    else:
        root = ensure_packages(spec.pkgset)
        path_extra = [str(root / "usr/sbin"), str(root / "usr/bin")]
        ver = package_versions(spec.pkgset).get("docker.io", "")
    ed = engine_dir(spec.name)
    ed.mkdir(parents=True, exist_ok=True)
    conf = ed / ("daemon.json" if data_root is None else "daemon-isolated.json")
    conf.write_text(json.dumps(cfg, indent=1) + "\n")
    dockerd = (
        (Path(path_extra[0]) / "dockerd")
        if path_extra
        else Path(shutil.which("dockerd") or "/usr/sbin/dockerd")
    )
    argv = [str(dockerd), "--config-file", str(conf)]
    if own_netns():
        # its docker0 bridge and iptables rules live in a network namespace of its own (unshare execs
        # dockerd, so the pid stays dockerd's); its socket is a file, reachable from the host
        argv = [shutil.which("unshare") or "/usr/bin/unshare", "--net", "--", *argv]
    return Plan(
        spec,
        argv,
        _base_env(path_extra),
        f"unix://{sock}",
        sock,
        str(dr),
        str(xr),
        cfg["pidfile"],
        str(lg),
        version=ver,
    )


def own_netns() -> bool:
    """``DOCKERCOURSE_ENGINE_NETNS=1`` (the test suite): dockerd in a network namespace of its own, so that
    its bridge and iptables rules cannot touch the host's and it can run beside the course's engine.
    (An engine started with ``"bridge": "none"`` instead would delete the host's docker0.)"""
    return config.flag("DOCKERCOURSE_ENGINE_NETNS")


def _mirrors_in_daemon_json() -> bool:
    try:
        return bool(json.loads(Path("/etc/docker/daemon.json").read_text()).get("registry-mirrors"))
    except (OSError, ValueError):
        return False


def host_prerequisites(spec: EngineSpec) -> None:
    if spec.kind == "system":
        if not shutil.which("dockerd") or not shutil.which("containerd"):
            if not shutil.which("apt-get"):
                raise EngineError(
                    "dockerd is not installed and there is no apt-get: install Docker for your "
                    "distribution (https://docs.docker.com/engine/install/)"
                )
            apt_install(["docker.io", "iptables"])
    else:
        apt_install(["runc", "iptables"])
        if _docker_group() is None and shutil.which("groupadd"):
            # the group docker.io's package creates (sysusers.d): who may use the engine's socket
            subprocess.run(["groupadd", "--system", "docker"], capture_output=True)
    if (
        shutil.which("iptables")
        and subprocess.run(["iptables", "-L", "-n"], capture_output=True).returncode != 0
    ):
        # iptables-nft does not work with every kernel; Debian's legacy backend does.
        if shutil.which("iptables-legacy"):
            subprocess.run(
                ["update-alternatives", "--set", "iptables", "/usr/sbin/iptables-legacy"], capture_output=True
            )


def _remove_stale_pidfile(path: Path, names: tuple[str, ...]) -> None:
    pid = read_pid(path)
    if pid is None:
        path.unlink(missing_ok=True)
        return
    if alive(pid) and comm(pid) in names:
        return
    log(f"removing the stale {path} (process {pid} is gone)")
    path.unlink(missing_ok=True)


def clear_stale(p: Plan) -> None:
    _remove_stale_pidfile(Path(p.pidfile), ("dockerd",))
    for cpid in (
        Path(p.exec_root) / "containerd" / "containerd.pid",
        Path("/var/run/docker/containerd/containerd.pid"),
    ):
        if cpid.exists():
            _remove_stale_pidfile(cpid, ("containerd", "docker-containerd"))
    if p.socket != DEFAULT_SOCKET and os.path.exists(p.socket) and not ping("unix://" + p.socket):
        if listening(p.socket):
            raise EngineError(
                f"another program listens on {p.socket} and it is not a Docker engine; stop it "
                "(or set DOCKERCOURSE_RUN_DIR to another folder), then run again"
            )
        os.unlink(p.socket)


def _netns_in_use() -> set[int]:
    """The network namespaces some process is in (their nsfs inode numbers)."""
    used = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                used.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            except OSError:
                continue
    return used


def clear_stale_netns() -> int:
    """Remove the network namespaces the course's own engines left behind when they were killed.

    Each container's namespace is bind-mounted under its engine's exec root (``x/NAME/netns/``).
    A killed engine leaves them mounted with their container addresses on the shared ``docker0``
    bridge; the next engine's container with the same address (and, on Docker 20.10, the same MAC
    address) then gets the stale one's traffic: connection refused. Only folders of the course's
    engines, only when that engine's containerd is gone, only namespaces no process is in.
    """
    base = run_dir() / "x"
    if not base.is_dir():
        return 0
    in_use = _netns_in_use()
    removed = 0
    for xr in sorted(p for p in base.iterdir() if p.is_dir()):
        cpid = read_pid(xr / "containerd" / "containerd.pid")
        if cpid and alive(cpid) and comm(cpid) in ("containerd", "docker-containerd"):
            continue
        nsdir = xr / "netns"
        stale = []
        for f in sorted(nsdir.iterdir()) if nsdir.is_dir() else []:
            try:
                if f.stat().st_ino not in in_use:
                    stale.append(f)
            except OSError:
                continue
        for f in stale:
            subprocess.run(["umount", "-l", str(f)], capture_output=True)  # a plain file: nothing to do
            f.unlink(missing_ok=True)
        if stale:
            log(f"removed {len(stale)} network namespaces the course's {xr.name} engine left when killed")
        removed += len(stale)
    return removed
