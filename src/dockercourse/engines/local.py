"""The course's own Docker engines on this machine: choose, fetch, start, supervise, stop, remove.

``scripts/engine-up`` runs this file (the standard library only: it runs before the
course's Python environment exists); ``dockercourse engine up|down|status|remove`` calls
the same functions.

Which engine answers (``--engine auto``, the default):

1. an engine that already answers is used as it is (``DOCKER_HOST``, the default socket,
   the course's own socket: Docker Desktop, a system or rootless engine, Podman);
2. otherwise the distribution's ``docker.io``, when it is current enough
   (:data:`MIN_SYSTEM_VERSION`; Debian 13's 26.1, Ubuntu 24.04's);
3. otherwise (Debian 12's 20.10 is end of life) the course's own engine, the primary one
   of the matrix: Debian's newer ``docker.io``/``containerd``/``docker-cli``/``docker-buildx``
   packages fetched with a private apt configuration (the system's sources are not
   touched), unpacked under the state folder with ``dpkg -x``, and started with their own
   data root, exec root and socket (:data:`SOCKET`) as a supervised service: the supervisor
   restarts ``dockerd`` after a crash; a stale pid file after a kill is recognised and removed.

``--engine NAME`` picks one explicitly (:data:`ENGINES`). Only one engine the course starts
runs at a time: two dockerd on one machine fight over the ``docker0`` bridge and iptables.

The system's ``runc`` is used with every engine (sid's needs a newer libc than Debian 12's);
``runc`` and ``iptables`` come from the distribution with ``apt-get install``, as
``docker.io`` itself would pull them in. Nothing else is installed system-wide.

Folders (both overridable, for tests): ``DOCKERCOURSE_STATE`` (default
``/var/lib/dockercourse``: packages, data roots, logs, the private apt configuration) and
``DOCKERCOURSE_RUN_DIR`` (default ``/run/dockercourse``: socket, exec roots, pid files,
``engine.json`` naming the engine that runs and how it was started).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from dockercourse import config
from dockercourse.engines.packages import (
    apt_dir,
    dpkg_version,
    package_home,
    package_versions,
    system_docker_version,
    upstream,
)
from dockercourse.engines.plan import (
    Plan,
    clear_stale,
    clear_stale_netns,
    host_prerequisites,
    mirror_port,
    own_netns,
    plan,
)
from dockercourse.engines.procs import (
    alive,
    answering,
    cmdline,
    comm,
    dockerd_processes,
    listening,
    ping,
    read_pid,
    rmtree_unmounted,
    terminate,
    version,
)
from dockercourse.engines.specs import (
    DEFAULT_SOCKET,
    ENGINES,
    MIN_SYSTEM_VERSION,
    PRIMARY,
    WAIT,
    EngineSpec,
    course_socket,
    engine_dir,
    exec_root,
    log,
    log_path,
    resolve,
    run_dir,
    state_dir,
)
from dockercourse.engines.supervisor import (
    read_record,
    record_path,
    stale_record,
    start_supervisor,
    update_record,
)
from dockercourse.errors import EngineError


def _wait_api(p: Plan, rec: dict, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if ping(p.docker_host, 2):
            return
        sup = rec.get("supervisor_pid")
        if sup and not alive(sup):
            raise EngineError(f"dockerd exited at start. Last lines of {p.log}:\n{_tail(p.log)}")
        time.sleep(0.25)
    raise EngineError(f"dockerd did not answer within {wait:.0f} s. Last lines of {p.log}:\n{_tail(p.log)}")


def _tail(path: str, n: int = 6) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("  " + ln[:220] for ln in lines[-n:])


def choose() -> EngineSpec:
    """``auto``: the distribution's engine when it is current enough, else the course's own."""
    if shutil.which("dockerd") and dpkg_version("docker.io") is None:
        # a dockerd that is not Debian's package (Docker's own docker-ce, a manual install)
        return ENGINES["system"]
    ver = system_docker_version()
    if ver and upstream(ver) >= MIN_SYSTEM_VERSION:
        return ENGINES["system"]
    return ENGINES[PRIMARY]


def describe_answering(host: str) -> str:
    v = version(host)
    plat = (v.get("Platform") or {}).get("Name", "")
    comp = [c.get("Name", "") for c in v.get("Components") or []]
    name = "Podman" if any("podman" in c.lower() for c in comp) or "podman" in plat.lower() else "Docker"
    return f"{name} {v.get('Version', '?')} (API {v.get('ApiVersion', '?')})"


def _same_engine(spec: EngineSpec, host: str) -> bool:
    rec = read_record()
    if rec and rec.get("docker_host") == host:
        return rec.get("name") == spec.name
    if spec.kind == "system" and host == "unix://" + DEFAULT_SOCKET:
        sysver = dpkg_version("docker.io")
        return bool(sysver) and upstream(version(host).get("Version", "0"))[:2] == upstream(sysver)[:2]
    return False


def up(choice: str = "auto", data_root: str | None = None, wait: float = WAIT) -> dict:
    """Make an engine answer; returns ``{"docker_host", "title", "started": bool, ...}``."""
    spec = None if choice in ("", "auto") else resolve(choice)
    if spec is not None and spec.kind in ("vm", "podman"):
        raise EngineError(
            f"the {spec.name} engine is started by `dockercourse engine vm up` "
            f"(./course does it with --engine {spec.name}); scripts/engine-up starts engines on "
            "this machine only"
        )
    found = _answering(spec)
    if found is not None:
        return found
    if os.environ.get("DOCKER_HOST"):
        raise EngineError(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer. Start that engine, or "
            "unset DOCKER_HOST to use a local one."
        )
    if os.geteuid() != 0:
        raise EngineError(
            f"no engine answers and starting one needs root. Run: sudo {_script()}  (or start "
            "Docker Desktop / a rootless engine: dockerd-rootless-setuptool.sh install)"
        )
    spec = spec or choose()
    found = _settle_supervised(spec, wait)
    if found is not None:
        return found
    _refuse_conflicts()
    clear_stale_netns()
    host_prerequisites(spec)
    if spec.kind == "system" and data_root is None:
        found = _service_of_the_package(spec, wait)
        if found is not None:
            return found
    return _start(spec, data_root, wait)


def _answering(spec: EngineSpec | None) -> dict | None:
    """An engine that answers already: used as it is when it is the one asked for (or any, for auto)."""
    now = answering()
    if now is None:
        return None
    host, _ = now
    if spec is None or _same_engine(spec, host):
        rec = read_record()
        how = (
            f"started by {rec['how']}"
            if rec and rec.get("docker_host") == host
            else "not started by the course"
        )
        log(f"an engine already answers at {host} ({describe_answering(host)}, {how}); using it as it is.")
        return {"docker_host": host, "title": describe_answering(host), "started": False}
    raise EngineError(
        f"another engine already answers at {host} ({describe_answering(host)}); the course runs one engine "
        f"at a time. Stop it first ({_stop_hint(host)}), then run again with --engine {spec.name}."
    )


def _settle_supervised(spec: EngineSpec, wait: float) -> dict | None:
    """Our supervisor runs but its engine does not answer (yet): give it the usual time, else stop it."""
    rec = read_record()
    if rec is None:
        return None
    log(f"{rec['title']} (supervisor pid {rec['supervisor_pid']}) does not answer yet; waiting for it")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and read_record() is not None:
        if ping(rec["docker_host"], 2):
            if rec["name"] == spec.name:
                return {**rec, "started": False}
            raise EngineError(
                f"{rec['title']} runs (started by the course); stop it first: {_script()} --stop"
            )
        time.sleep(0.5)
    log(f"{rec['title']} did not answer within {wait:.0f} s; stopping it and starting again")
    stop(quiet=True)
    return None


def _refuse_conflicts() -> None:
    """Another program on our socket, or another dockerd: one line, nothing started."""
    sock = str(course_socket())
    if os.path.exists(sock) and not ping("unix://" + sock) and listening(sock):
        raise EngineError(
            f"another program listens on {sock} and it is not a Docker engine; stop it "
            "(or set DOCKERCOURSE_RUN_DIR to another folder), then run again"
        )
    for pid in dockerd_processes():
        if _ours(pid):
            log(f"stopping a dockerd the course started earlier that does not answer (pid {pid})")
            terminate(pid)
    others = [] if own_netns() else dockerd_processes()
    if others:
        pid = others[0]
        raise EngineError(
            f"a dockerd that does not answer runs already (pid {pid}: {' '.join(cmdline(pid))[:120]}); "
            "two engines on one machine fight over the docker0 bridge and iptables. "
            f"Stop it first (sudo systemctl stop docker, or kill {pid} if you started it), then run again."
        )


def _service_of_the_package(spec: EngineSpec, wait: float) -> dict | None:
    """Installing docker.io may have started its own service (systemd, or its init script): use it."""
    deadline = time.monotonic() + (wait if dockerd_processes() else 0)
    while True:
        if ping("unix://" + DEFAULT_SOCKET):
            log(
                f"the distribution's docker.io service answers at unix://{DEFAULT_SOCKET} "
                f"({describe_answering('unix://' + DEFAULT_SOCKET)}); using it as it is."
            )
            return {"docker_host": "unix://" + DEFAULT_SOCKET, "title": spec.title, "started": False}
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if dockerd_processes():
        raise EngineError(
            "installing docker.io started a dockerd that does not answer; see its log "
            "(journalctl -u docker, or /var/log/docker.log)"
        )
    return None


def _start(spec: EngineSpec, data_root: str | None, wait: float) -> dict:
    """Start ``spec`` under the supervisor and wait for its API; nothing is left half-started."""
    p = plan(spec, data_root)
    clear_stale(p)
    if os.path.exists(p.socket) and ping("unix://" + p.socket):
        raise EngineError(f"something already answers on {p.socket}; stop it first")
    log(f"starting {spec.title} (log: {p.log}, mirror http://127.0.0.1:{mirror_port()}, socket {p.socket})")
    t0 = time.monotonic()
    rec = start_supervisor(
        {
            "name": spec.name,
            "title": spec.title,
            "kind": spec.kind,
            "version": p.version,
            "docker_host": p.docker_host,
            "socket": p.socket,
            "data_root": p.data_root,
            "exec_root": p.exec_root,
            "pidfile": p.pidfile,
            "log": p.log,
            "argv": p.argv,
            "env": p.env,
            "pkgset": spec.pkgset,
            "packages": package_versions(spec.pkgset) if spec.pkgset else {},
        }
    )
    try:
        _wait_api(p, rec, wait)
    except BaseException:
        stop(quiet=True)
        raise
    v = version(p.docker_host)
    rec.update(
        api_seconds=round(time.monotonic() - t0, 2),
        server_version=v.get("Version", "?"),
        api_version=v.get("ApiVersion", "?"),
    )
    update_record(
        api_seconds=rec["api_seconds"], server_version=rec["server_version"], api_version=rec["api_version"]
    )
    log(
        f"engine is up: Docker {rec['server_version']} (API {rec['api_version']}) at {p.docker_host} "
        f"in {rec['api_seconds']} s."
    )
    return {**rec, "started": True}


def _ours(pid: int) -> bool:
    """A dockerd the course started: its config file is in the course's state folder."""
    cmd = cmdline(pid)
    stale = stale_record() or {}
    return (pid == stale.get("dockerd_pid") and cmd[:1] == stale.get("argv", [None])[:1]) or any(
        a.startswith(str(state_dir() / "engines")) for a in cmd
    )


def _script() -> str:
    return config.get("DOCKERCOURSE_ENGINE_UP")


def _stop_hint(host: str) -> str:
    rec = read_record()
    if rec and rec.get("docker_host") == host:
        return f"{_script()} --stop"
    if host == "unix://" + DEFAULT_SOCKET:
        return "sudo systemctl stop docker docker.socket, or quit Docker Desktop"
    return "stop the engine behind it"


def stop(quiet: bool = False, timeout: float = 60) -> bool:
    """Stop the engine the course started (never another one). True when one was stopped."""
    rec = read_record() or stale_record()
    if not rec:
        if not quiet:
            log("no engine started by the course runs; nothing to stop.")
        return False
    sup = rec.get("supervisor_pid")
    dpid = rec.get("dockerd_pid")
    if sup and alive(sup) and "--supervise" in cmdline(sup):
        os.kill(sup, signal.SIGTERM)
    elif dpid and alive(dpid) and comm(dpid) == "dockerd" and _ours(dpid):
        os.kill(dpid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid and alive(pid) for pid in (sup, dpid)):
            break
        time.sleep(0.2)
    else:
        for pid in (dpid, sup):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
    # containerd that dockerd started, when dockerd could not stop it
    cpid_file = Path(rec.get("exec_root", "/nonexistent")) / "containerd" / "containerd.pid"
    cpid = read_pid(cpid_file)
    if cpid and alive(cpid) and comm(cpid) == "containerd":
        os.kill(cpid, signal.SIGTERM)
        for _ in range(50):
            if not alive(cpid):
                break
            time.sleep(0.1)
    for f in (record_path(), run_dir() / "supervisor.pid"):
        f.unlink(missing_ok=True)
    sock = rec.get("socket")
    if sock and sock != DEFAULT_SOCKET and os.path.exists(sock):
        os.unlink(sock)
    if not quiet:
        log(f"stopped {rec.get('title', 'the engine')}.")
    return True


def remove(name: str | None = None) -> list[str]:
    """Remove the course's own engines: stop the one that runs, delete data roots, exec roots and logs.

    Without ``name`` (``--remove``) also the fetched packages and the private apt cache. The
    distribution's engine and its data (``/var/lib/docker``) are never touched.
    """
    removed = []
    rec = read_record() or stale_record()
    if rec and (name is None or rec.get("name") == name):
        stop(quiet=True)
    names = [name] if name else [n for n, s in ENGINES.items() if s.kind in ("own", "system")]
    for n in names:
        for d in (engine_dir(n), exec_root(n)):
            if d.exists():
                rmtree_unmounted(d)
                removed.append(str(d))
        log_path(n).unlink(missing_ok=True)
    if name is None:
        for d in (state_dir() / "matrix", package_home() / "pkgs", apt_dir()):
            if d.exists():
                rmtree_unmounted(d)
                removed.append(str(d))
    return removed


def status() -> dict:
    """What answers now and, when the course started it, how."""
    now = answering()
    rec = read_record()
    out: dict = {"answers": bool(now)}
    if now:
        out["docker_host"], out["where"] = now
        out["engine"] = describe_answering(now[0])
    if rec:
        out["course_engine"] = {
            k: rec.get(k)
            for k in (
                "name",
                "title",
                "version",
                "docker_host",
                "data_root",
                "supervisor_pid",
                "dockerd_pid",
                "started",
                "how",
                "packages",
                "log",
                "api_seconds",
            )
        }
        out["started_by_course"] = bool(now) and rec.get("docker_host") == now[0]
    return out


def env_lines() -> list[str]:
    """Shell lines that point ``docker`` and the course at the engine the course started."""
    rec = read_record()
    if not rec or os.environ.get("DOCKER_HOST"):
        return []
    if rec.get("docker_host") and rec["docker_host"] != "unix://" + DEFAULT_SOCKET:
        return [f"export DOCKER_HOST={rec['docker_host']}"]
    return []
