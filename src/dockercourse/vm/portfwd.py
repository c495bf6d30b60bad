"""Published ports of containers in the VM engine, reachable on the host (as Docker
Desktop does).

The VM is on qemu's user network: only what qemu forwards (``hostfwd``) reaches it from
the host. This forwarder follows the VM engine's container events and, for every
published binding of a running container (``-p``, ``-P``, ``ports={...}``), asks qemu
through its human monitor (``hostfwd_add n0 tcp:127.0.0.1:P-:P``) to forward the host's
``127.0.0.1:P`` to the guest's port ``P``; it removes the forward (``hostfwd_remove``)
when the container stops. Bindings to ``0.0.0.0``/``[::]`` in the VM are exposed on the
host's ``127.0.0.1`` only: no other interface of the host is ever bound. In the guest,
connections qemu delivers from 10.0.2.2 are redirected to the guest's 127.0.0.1, where
the engine's ``docker-proxy`` listens for every binding (also ``127.0.0.1:P:80``).

It runs as a small process started by :func:`dockercourse.vm.engine.up`
(``python -m dockercourse.vm.portfwd --state-dir DIR --qemu-pid PID --api-port PORT``,
log in ``DIR/portfwd.log``); ``down`` stops it, and it exits by itself when qemu is gone.
Its current forwards are in ``DIR/forwards.json`` (shown by ``engine vm status``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import select
import socket
import sys
import threading
import time
from pathlib import Path

from dockercourse.errors import MonitorError
from dockercourse.vm.boot import MONITOR_SOCKET

NETDEV = "n0"
STATE_FILE = "forwards.json"
LOG_FILE = "portfwd.log"
_PROMPT = b"(qemu) "
_ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
_USERNET = re.compile(r"(TCP|UDP)\[HOST_FORWARD\]\s+-?\d+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)")


def api_errors() -> tuple[type[BaseException], ...]:
    """What a call to the engine's API through docker-py can raise: its own errors,
    requests' (OSErrors), urllib3's (a stream cut short) and a bad JSON event (ValueError)."""
    import docker.errors
    import urllib3.exceptions

    return (docker.errors.DockerException, OSError, urllib3.exceptions.HTTPError, ValueError)


class Monitor:
    """qemu's human monitor on a unix socket; one short connection per command (so
    ``status`` or a person can use it too)."""

    def __init__(self, path: Path, timeout: float = 10):
        self.path = Path(path)
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        path = str(self.path)
        dirfd = None
        if len(path.encode()) > 100:  # too long for sun_path: reach it through the directory's fd
            dirfd = os.open(str(self.path.parent), os.O_PATH)
            path = f"/proc/self/fd/{dirfd}/{self.path.name}"
        try:
            s.connect(path)
        except OSError as e:
            s.close()
            raise MonitorError(f"cannot reach qemu's monitor {self.path}: {e}") from None
        finally:
            if dirfd is not None:
                os.close(dirfd)
        return s

    @staticmethod
    def _until_prompt(s: socket.socket) -> bytes:
        buf = b""
        while not buf.endswith(_PROMPT):
            chunk = s.recv(65536)
            if not chunk:
                raise MonitorError("qemu's monitor closed the connection")
            buf += chunk
        return buf[: -len(_PROMPT)]

    def command(self, cmd: str) -> str:
        """Run one monitor command; its output (the echo of the command removed)."""
        try:
            with self._connect() as s:
                self._until_prompt(s)  # banner
                s.sendall(cmd.encode() + b"\n")
                out = self._until_prompt(s)
        except (TimeoutError, OSError) as e:
            raise MonitorError(f"qemu's monitor: {e}") from None
        # qemu's readline echoes the command (redrawn with escape sequences) up to "\r\n"
        out = out.split(b"\r\n", 1)[1] if b"\r\n" in out else b""
        lines = _ANSI.sub(b"", out).decode(errors="replace").replace("\r", "").split("\n")
        return "\n".join(ln for ln in lines if ln.strip()).strip()


def host_forwards(info_usernet: str) -> dict[tuple[str, int], tuple[str, int]]:
    """``(proto, host port) -> (guest address, guest port)`` of the hostfwd rules in
    ``info usernet`` output."""
    out = {}
    for m in _USERNET.finditer(info_usernet):
        out[(m.group(1).lower(), int(m.group(3)))] = (m.group(4), int(m.group(5)))
    return out


def bindings(ports: dict | None) -> dict[tuple[str, int], str]:
    """``(proto, host port) -> "80/tcp"`` for a container's ``NetworkSettings.Ports``
    (IPv4 and IPv6 bindings of the same port are one forward; sctp is not forwarded)."""
    out: dict[tuple[str, int], str] = {}
    for cport, binds in (ports or {}).items():
        proto = cport.split("/", 1)[1] if "/" in cport else "tcp"
        if proto not in ("tcp", "udp"):
            continue
        for b in binds or []:
            hp = str(b.get("HostPort") or "")
            if hp.isdigit() and int(hp) > 0:
                out[(proto, int(hp))] = cport
    return out


def host_port_problem(proto: str, port: int) -> str:
    """Why the host's 127.0.0.1:port cannot be bound ("" when it can)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return ""
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"127.0.0.1:{port}/{proto} is taken on the host"
        if e.errno == errno.EACCES:
            return f"127.0.0.1:{port}/{proto} needs privileges on the host (ports below 1024)"
        return f"127.0.0.1:{port}/{proto}: {e.strerror}"
    finally:
        s.close()


class Forwarder:
    """Keeps qemu's hostfwd rules equal to the published bindings of running containers.

    ``monitor(cmd) -> str`` runs a qemu monitor command; ``client`` is a
    ``docker.DockerClient`` (or anything with ``.api.inspect_container`` and
    ``.api.containers``).
    """

    def __init__(self, monitor, *, api_port: int, state_dir: Path | None = None, log=print):
        self.monitor = monitor
        self.api_port = api_port
        self.state_dir = Path(state_dir) if state_dir else None
        self.log = log
        self.active: dict[tuple[str, int], dict] = {}  # forwards qemu has now
        self.failed: dict[tuple[str, int], dict] = {}  # bindings that could not be forwarded

    # -- qemu side
    def _add(self, key, info) -> bool:
        proto, port = key
        rule = f"{proto}:127.0.0.1:{port}-:{port}"
        out = self.monitor(f"hostfwd_add {NETDEV} {rule}")
        if not out:
            self.active[key] = info
            self.failed.pop(key, None)
            self.log(
                f"forward 127.0.0.1:{port}/{proto} -> "
                f"container {info['container']} ({info['container_port']})"
            )
            return True
        why = host_port_problem(proto, port) or out.splitlines()[-1]
        self.failed[key] = {**info, "reason": why}
        self.log(f"not forwarded: {proto} port {port} of container {info['container']}: {why}")
        return False

    def _remove(self, key) -> None:
        proto, port = key
        info = self.active.pop(key, None)
        out = self.monitor(f"hostfwd_remove {NETDEV} {proto}:127.0.0.1:{port}")
        if info is not None:
            self.log(
                f"removed 127.0.0.1:{port}/{proto} ({info.get('container') or 'earlier forward'}); {out}"
            )

    # -- engine side
    def _wanted(self, attrs: dict) -> dict[tuple[str, int], dict]:
        name = (attrs.get("Name") or "").lstrip("/") or attrs.get("Id", "")[:12]
        ports = (attrs.get("NetworkSettings") or {}).get("Ports")
        return {
            key: {
                "proto": key[0],
                "port": key[1],
                "container": name,
                "id": attrs.get("Id", ""),
                "container_port": cport,
            }
            for key, cport in bindings(ports).items()
            if key[1] != self.api_port
        }

    def container_started(self, attrs: dict) -> None:
        if not (attrs.get("State") or {}).get("Running", True):
            return
        for key, info in self._wanted(attrs).items():
            if key in self.active:
                self.active[key] = info  # same rule; now this container's
            else:
                self._add(key, info)
        self.save()

    def container_stopped(self, cid: str) -> None:
        changed = False
        for key in [k for k, v in self.active.items() if v.get("id") == cid]:
            self._remove(key)
            changed = True
        for key in [k for k, v in self.failed.items() if v.get("id") == cid]:
            del self.failed[key]
            changed = True
        if changed:
            self.save()

    def reconcile(self, client) -> None:
        """Match qemu's forwards to the running containers (at start and after a
        reconnect): forwards left by an earlier forwarder are adopted or removed."""
        try:
            existing = host_forwards(self.monitor("info usernet"))
        except MonitorError:
            existing = {}
        for key in existing:
            if key[1] != self.api_port and key not in self.active:
                self.active[key] = {
                    "proto": key[0],
                    "port": key[1],
                    "container": "",
                    "id": "",
                    "container_port": "",
                }
        wanted: dict[tuple[str, int], dict] = {}
        errors = api_errors()
        for c in client.api.containers(filters={"status": "running"}):
            try:
                attrs = client.api.inspect_container(c["Id"])
            except errors as e:  # gone meanwhile: nothing to forward
                self.log(f"container {c['Id'][:12]} not inspected ({type(e).__name__}); skipped")
                continue
            wanted.update(self._wanted(attrs))
        for key in [k for k in self.active if k not in wanted]:
            self._remove(key)
        self.failed = {k: v for k, v in self.failed.items() if k in wanted}
        for key, info in wanted.items():
            if key in self.active:
                self.active[key] = info
            elif key not in self.failed:
                self._add(key, info)
        self.save()

    def handle(self, client, event: dict) -> None:
        action = (event.get("Action") or event.get("status") or "").split(":", 1)[0]
        cid = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
        if not cid:
            return
        if action == "start":
            try:
                attrs = client.api.inspect_container(cid)
            except api_errors() as e:  # already gone: nothing to forward
                self.log(f"container {cid[:12]} started but not inspected ({type(e).__name__}); skipped")
                return
            self.container_started(attrs)
        elif action in ("die", "stop", "destroy"):
            self.container_stopped(cid)

    def snapshot(self) -> dict:
        key = lambda kv: (kv[0][1], kv[0][0])  # noqa: E731
        return {
            "pid": os.getpid(),
            "updated": time.time(),
            "forwards": [{**v, "host": "127.0.0.1"} for _, v in sorted(self.active.items(), key=key)],
            "failed": [v for _, v in sorted(self.failed.items(), key=key)],
        }

    def save(self) -> None:
        if self.state_dir is None:
            return
        tmp = self.state_dir / f".{STATE_FILE}.{os.getpid()}"
        try:
            tmp.write_text(json.dumps(self.snapshot(), indent=1))
            os.replace(tmp, self.state_dir / STATE_FILE)
        except OSError as e:  # the state directory is going away (down): nothing to keep
            self.log(f"forwards not saved: {e}")
            tmp.unlink(missing_ok=True)


def read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the process


def _exit_when_gone(pid: int, log) -> None:
    """Wait (blocked, no polling where pidfd exists) until ``pid`` exits; then exit."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(2)
    log(f"qemu (pid {pid}) is gone; exiting")
    os._exit(0)


def run(state_dir: Path, qemu_pid: int, api_port: int, tls_dir: str = "") -> None:
    import docker

    def connect():
        if tls_dir:  # the engine's API is on mutual TLS (tls.py)
            from dockercourse.core.engine import client_for
            from dockercourse.vm.tls import docker_tls

            return client_for(f"tcp://127.0.0.1:{api_port}", timeout=60, tls=docker_tls(tls_dir))
        return docker.DockerClient(base_url=f"tcp://127.0.0.1:{api_port}", version="auto", timeout=60)

    def log(msg: str) -> None:
        print(f"portfwd {time.strftime('%H:%M:%S')}: {msg}", flush=True)

    state_dir = Path(state_dir)
    threading.Thread(target=_exit_when_gone, args=(qemu_pid, log), daemon=True).start()
    mon = Monitor(state_dir / MONITOR_SOCKET)
    fwd = Forwarder(mon.command, api_port=api_port, state_dir=state_dir, log=log)
    fwd.save()
    log(f"following the VM engine on 127.0.0.1:{api_port} (qemu pid {qemu_pid})")
    delay = 1.0
    errors = (*api_errors(), MonitorError)
    while True:
        client = None
        try:
            client = connect()
            events = client.api.events(decode=True, filters={"type": "container"})  # subscribed now
            fwd.reconcile(client)  # then the containers already running
            delay = 1.0
            for ev in events:
                fwd.handle(client, ev)
            log("the engine's event stream ended; reconnecting")
        except errors as e:  # engine restarting, VM going down: retry
            log(
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}; "
                f"retrying in {delay:.0f} s"
            )
        finally:
            if client is not None:
                client.close()
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dockercourse.vm.portfwd", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--state-dir", required=True)
    p.add_argument("--qemu-pid", type=int, required=True)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--tls-dir", default="", help="the client's certificate folder (the API on TLS)")
    a = p.parse_args(argv)
    run(Path(a.state_dir), a.qemu_pid, a.api_port, a.tls_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
