"""Processes, sockets and mounts on this machine, read from /proc (standard library only)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from dockercourse.engines.specs import DEFAULT_SOCKET, course_socket
from dockercourse.errors import EngineError


def _http(host: str, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET ``path`` from a Docker API at ``unix:///...`` or ``tcp://host:port`` (no TLS)."""
    if host.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = host[len("unix://") :]
    elif host.startswith("tcp://"):
        hp = host[len("tcp://") :].rstrip("/")
        h, _, p = hp.rpartition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (h or "127.0.0.1", int(p or 2375))
    else:
        raise OSError(f"unsupported address {host}")
    s.settimeout(timeout)
    try:
        s.connect(addr)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return status, body


def _unchunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            n = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out.append(rest[:n])
        rest = rest[n + 2 :]
    return b"".join(out)


def listening(path: str) -> bool:
    """Something accepts connections on the Unix socket ``path`` (a Docker engine or not)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        return True
    except (TimeoutError, BlockingIOError):  # a listener whose queue is full
        return True
    except OSError:  # refused: a socket file nobody listens on
        return False
    finally:
        s.close()


def ping(host: str, timeout: float = 3.0) -> bool:
    try:
        status, body = _http(host, "/_ping", timeout)
        return status == 200 and body.strip() == b"OK"
    except OSError:
        return False


def version(host: str) -> dict:
    try:
        status, body = _http(host, "/version", 5)
        return json.loads(body) if status == 200 else {}
    except (OSError, ValueError):
        return {}


def answering() -> tuple[str, str] | None:
    """``(docker_host, where)`` of the engine the course would use now, or None."""
    if os.environ.get("DOCKER_HOST"):
        h = os.environ["DOCKER_HOST"]
        return (h, "DOCKER_HOST") if ping(h) else None
    for path, where in (
        (DEFAULT_SOCKET, "the default socket"),
        (str(course_socket()), "the course's socket"),
    ):
        if os.path.exists(path) and ping("unix://" + path):
            return "unix://" + path, where
    return None


def alive(pid: int) -> bool:
    """A process is alive when /proc has it and it is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def dockerd_processes() -> list[int]:
    """PIDs of rootful dockerd processes on this machine (rootless ones live in their own namespace)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and comm(int(d.name)) == "dockerd" and alive(int(d.name)):
            if uid(int(d.name)) == 0:
                out.append(int(d.name))
    return sorted(out)


def terminate(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def mounts_under(path: Path) -> list[str]:
    out = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mp = line.split()[1].replace("\\040", " ")
            if mp == str(path) or mp.startswith(str(path) + "/"):
                out.append(mp)
    except OSError:
        pass
    return out


def rmtree_unmounted(path: Path) -> None:
    """Remove a data root: unmount what is still mounted under it first (never follow a mount)."""
    if not path.exists():
        return
    for mp in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    left = mounts_under(path)
    if left:
        raise EngineError(f"cannot remove {path}: still mounted: {left[0]}")
    shutil.rmtree(path)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
