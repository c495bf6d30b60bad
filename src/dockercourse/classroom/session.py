"""A student's side of the classroom, as a browser and a terminal have it: log in through the hub's
form, start the server through the hub's REST API, and run a command as the student in the server's
environment (its ``DOCKER_HOST`` is the student's engine). The tests and the sizing benchmark use it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from dockercourse.classroom import hub, state_root, students


def passwords() -> dict[str, str]:
    """The students' passwords, as ``classroom up`` wrote them (root's file)."""
    text = (state_root() / "passwords").read_text()
    return dict(ln.split(" ", 1) for ln in text.splitlines() if " " in ln)


def login(url: str, name: str, password: str) -> requests.Session:
    """Log in through the hub's form, as a browser does; the session carries the hub's cookies and
    the XSRF header its REST API wants of a browser."""
    s = requests.Session()
    s.get(f"{url}hub/login", timeout=30)
    first = s.cookies.get("_xsrf")
    r = s.post(f"{url}hub/login", data={"username": name, "password": password, "_xsrf": first}, timeout=60)
    if not r.ok or "/hub/login" in r.url:
        raise RuntimeError(f"{name} could not log in: {r.status_code} {r.url}")
    hub_xsrf = [c.value for c in s.cookies if c.name == "_xsrf" and c.path.startswith("/hub")]
    s.headers["X-XSRFToken"] = hub_xsrf[-1] if hub_xsrf else first  # (a server sets its own, on its path)
    return s


def start_server(url: str, name: str, s: requests.Session, timeout: float = 600) -> dict:
    """Start the student's server (``POST /hub/api/users/NAME/server``) and wait until it is ready."""
    r = s.post(f"{url}hub/api/users/{name}/server", timeout=60)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{name}'s server: {r.status_code} {r.text[:300]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api(f"/users/{name}").json()
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return server
        if not server and not model.get("pending"):
            break  # the spawn failed
        time.sleep(0.5)
    log = (state_root() / "hub.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{name}'s server did not start; the hub's log ends with:\n{log}")


def server_environment(name: str) -> dict[str, str]:
    """The environment of the student's running server (its process, as the hub reports it)."""
    pid = hub.api(f"/users/{name}").json()["servers"][""]["state"]["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x) | {"_PID": str(pid)}


def run_as(name: str, env: dict, *cmd: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the student, in their home, with the server's engine, PATH and course folder."""
    ident = students.load(name)
    wanted = ("PATH", "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKERCOURSE_ROOT",
              "DOCKERCOURSE_VM_STATE", "XDG_RUNTIME_DIR", "LANG")  # fmt: skip
    keep = [f"{k}={env[k]}" for k in wanted if k in env]
    return subprocess.run(
        ["runuser", "-u", name, "--", "env", "-i", f"HOME={ident.home}", f"USER={name}", *keep, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ident.home,
    )
