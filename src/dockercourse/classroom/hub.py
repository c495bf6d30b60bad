"""JupyterHub for the classroom: its configuration, and starting, stopping and asking it.

The hub runs as root (it starts each student's server as that student: JupyterHub's
``LocalProcessSpawner``), logs students in with their system passwords (PAM), and listens on
127.0.0.1 only, at the port given (put a TLS-terminating proxy in front for a real class, see
docs/classroom.md). Its own internal ports are picked free, never assumed. Everything it keeps is
under the classroom's state root: the configuration, the database, the cookie secret, the
passwords file (root's only, mode 600), its log and its pid.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from dockercourse.classroom import state_root, students
from dockercourse.engines.procs import alive, terminate
from dockercourse.errors import CourseError, UsageError

#: what each student's server needs besides the toolkit's own dependencies: JupyterLab, the hub's
#: single-user server (the same JupyterHub version as the hub), jupyter-server-proxy (the chapters' links
#: to pages their containers publish open through it: /user/NAME/proxy/PORT/), and nbval to run a chapter
SERVER_PACKAGES = ("jupyterhub", "jupyterlab", "jupyter_server", "jupyter-server-proxy", "pytest", "nbval")
#: configurable-http-proxy, the hub's proxy, from npm (when none is on PATH)
PROXY_PACKAGE = "configurable-http-proxy@4"
#: memory a student needs, measured here (docs/classroom.md): rootless engine, server, a kernel, containers
STUDENT_MB = 700
HUB_MB = 300
START_TIMEOUT = 60.0
#: the engines a student can get: rootless dockerd (light, the host's kernel) or a VM (its own kernel)
ENGINES = ("rootless", "vm")


@dataclass
class Hub:
    url: str
    pid: int
    students: list[str]
    passwords: Path


def _alive(pid: int) -> bool:
    return pid > 0 and alive(pid)


def running_pid() -> int:
    """The pid of the classroom's hub when it runs, else 0."""
    try:
        pid = int((state_root() / "hub.pid").read_text().strip())
    except (OSError, ValueError):
        return 0
    return pid if _alive(pid) else 0


def _port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:PORT (connections a server closed there moments ago, in
    TIME_WAIT, do not count: the proxy binds as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def check_capacity(n: int, avail_mb: int, per_student: int = STUDENT_MB) -> None:
    """Refuse more students than the machine's available memory holds, saying why."""
    need = HUB_MB + n * per_student
    if need > avail_mb:
        most = max(0, (avail_mb - HUB_MB) // per_student)
        raise UsageError(
            f"{n} students need about {need / 1024:.1f} GB of memory ({per_student} MB each: engine, server, "
            f"kernel, containers; {HUB_MB} MB for the hub) and this machine has {avail_mb / 1024:.1f} GB "
            f"available: at most {most} here (see docs/classroom.md, sizing)"
        )


def _engine_missing(engine: str) -> None:
    if engine == "vm":
        from dockercourse.classroom.vmengines import missing

        lack, what = missing(), "a VM engine per student"
    else:
        from dockercourse.grading.rootless import rootless_missing

        lack, what = rootless_missing(), "a rootless engine per student"
    if lack:
        raise CourseError(
            f"{what} needs what this machine lacks: "
            + "; ".join(lack)
            + " (./course setup installs the packages)"
        )


def preflight(n: int, port: int, engine: str = "rootless") -> None:
    """What must hold before anything is made (each failure one clear message)."""
    if os.geteuid() != 0:
        raise CourseError("the classroom runs as root (it makes a system user per student): use sudo")
    if running_pid():
        raise CourseError(
            f"a classroom hub already runs (pid {running_pid()}): `dockercourse classroom down` first"
        )
    _stop_orphans(print)  # of a hub that was killed: its proxy may still hold the port
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port")
    if not _port_free(port):
        raise UsageError(f"port {port} is in use on 127.0.0.1: choose another with --port")
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if engine == "vm":
        from dockercourse.classroom.vmengines import STUDENT_MB as VM_MB

        check_capacity(n, available_mb(), VM_MB)
    else:
        check_capacity(n, available_mb())
    _engine_missing(engine)
    try:
        import jupyterhub  # noqa: F401
    except ImportError as e:
        raise CourseError("JupyterHub is not installed here: pip install -e '.[classroom]'") from e


def proxy_command() -> str:
    """configurable-http-proxy: on PATH, or installed from npm under the state root."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    prefix = state_root() / "proxy"
    binary = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise CourseError("JupyterHub's proxy needs npm (apt-get install npm) or configurable-http-proxy")
        prefix.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PROXY_PACKAGE],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0 or not binary.exists():
            raise CourseError(f"npm install {PROXY_PACKAGE} failed: {(r.stderr or r.stdout).strip()[-400:]}")
    return str(binary)


def server_python() -> Path:
    """The python the students' servers and kernels run (a venv every user can run)."""
    from dockercourse.grading.kernelpy import shared_python

    return shared_python("classroom-python", SERVER_PACKAGES)


def config_text(*, port: int, names: list[str], python: Path, proxy: str, idle: int = 3600) -> str:
    """JupyterHub's configuration for this classroom (a Python file, as JupyterHub reads it)."""
    root = state_root()
    hub_port = _free_port()
    cfg = {
        "JupyterHub.ip": "127.0.0.1",
        "JupyterHub.port": port,
        "JupyterHub.hub_ip": "127.0.0.1",
        "JupyterHub.hub_port": hub_port,
        "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{_free_port()}",
        "ConfigurableHTTPProxy.command": [proxy],
        "ConfigurableHTTPProxy.pid_file": str(root / "jupyterhub-proxy.pid"),
        "JupyterHub.db_url": f"sqlite:///{root / 'jupyterhub.sqlite'}",
        "JupyterHub.cookie_secret_file": str(root / "cookie_secret"),
        "JupyterHub.authenticator_class": "pam",
        "PAMAuthenticator.open_sessions": False,
        "Authenticator.allowed_users": sorted(names),
        "JupyterHub.spawner_class": "localprocess",
        "Spawner.cmd": [str(python.parent / "jupyterhub-singleuser")],
        "Spawner.default_url": "/lab",
        "Spawner.notebook_dir": "~/course/notebooks",
        "Spawner.start_timeout": 300,
        "Spawner.http_timeout": 120,
        "Spawner.env_keep": ["LANG", "LC_ALL"],  # none of root's other variables reach a student
        "JupyterHub.cleanup_servers": True,
    }
    lines = [
        "# Written by `dockercourse classroom up`; rewritten by the next one. See docs/classroom.md.",
        "from dockercourse.classroom import hooks",
        "",
    ]
    lines += [f"c.{k} = {v!r}" for k, v in cfg.items()]
    lines += [
        "c.Authenticator.allowed_users = set(c.Authenticator.allowed_users)",
        "c.Spawner.pre_spawn_hook = hooks.pre_spawn",
        "c.Spawner.post_stop_hook = hooks.post_stop",
        "c.JupyterHub.services = [{'name': 'dockercourse', 'api_token': "
        f"open({str(root / 'api-token')!r}).read().strip()}}]",
        "c.JupyterHub.load_roles = [{'name': 'dockercourse', 'services': ['dockercourse'], "
        "'scopes': ['admin:users', 'admin:servers', 'list:users', 'read:users']}]",
    ]
    if idle:  # jupyterhub-idle-culler stops a server idle that long (and with it the student's engine)
        every = max(5, min(300, idle // 4))
        cull = [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={idle}",
            f"--cull-every={every}",
            f"--url=http://127.0.0.1:{hub_port}/hub/api",
        ]  # fmt: skip (also how a killed hub's is found)
        lines += [
            f"c.JupyterHub.services.append({{'name': 'idle-culler', 'command': {cull!r}}})",
            "c.JupyterHub.load_roles.append({'name': 'idle-culler', 'services': ['idle-culler'], "
            "'scopes': ['list:users', 'read:users:activity', 'read:servers', 'delete:servers']})",
        ]
    return "\n".join(lines) + "\n"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def up(
    names: list[str],
    port: int,
    images: list[str],
    course: Path,
    idle: int = 3600,
    log=print,
    engine: str = "rootless",
    vm_memory: int = 768,
) -> Hub:
    """Make the students, write the configuration, start the hub; returns once it answers. A server
    idle for ``idle`` seconds is stopped (0: never). ``engine``: each student's, ``rootless`` or ``vm``
    (a guest of ``vm_memory`` MB, :mod:`.vmengines`)."""
    for n in names:
        students.check_name(n)
    if len(set(names)) != len(names):
        raise UsageError("a student name is given twice")
    preflight(len(names), port, engine)
    taken = students.foreign(names)
    if taken:
        raise UsageError(
            f"{', '.join(taken)}: a user of this machine the classroom did not make has that name; "
            "choose other names (--names)"
        )
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    log("classroom: the students' Python (JupyterLab, the toolkit; made once) ...")
    python = server_python()
    proxy = proxy_command()
    if engine == "vm":
        from dockercourse.classroom import vmengines

        log("classroom: " + vmengines.prepare(images, vm_memory, log))
    passwords = root / "passwords"
    known = dict(line.split(" ", 1) for line in _read_lines(passwords))
    for n in names:
        known.setdefault(n, secrets.token_urlsafe(9))
        students.create(n, known[n], course)
        log(f"classroom: student {n} ready")
    _write_secret(passwords, "".join(f"{n} {p}\n" for n, p in sorted(known.items())))
    _write_secret(root / "api-token", secrets.token_hex(32))  # the classroom's own service's (see api)
    _write_settings(port, images, engine, vm_memory, python)
    cfg = root / "jupyterhub_config.py"
    cfg.write_text(config_text(port=port, names=names, python=python, proxy=proxy, idle=idle))
    db = root / "jupyterhub.sqlite"  # made here, root's only: JupyterHub keeps its OAuth clients there
    db.touch(mode=0o600)
    db.chmod(0o600)
    logf = os.fdopen(os.open(root / "hub.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    os.fchmod(logf.fileno(), 0o600)  # (one from before this change may be 644)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(proxy).parent), os.environ.get("PATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(cfg)],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logf.close()
    (root / "hub.pid").write_text(f"{proc.pid}\n")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"{url}/hub/api", timeout=2).status_code == 200:
                return Hub(url + "/", proc.pid, names, passwords)
        except requests.RequestException:
            pass
        time.sleep(0.3)
    tail = (root / "hub.log").read_text(errors="replace").strip().splitlines()[-8:]
    _stop_pid(proc.pid)
    raise CourseError("JupyterHub did not start; its log ends with:\n  " + "\n  ".join(tail))


def _write_settings(port: int, images: list[str], engine: str, vm_memory: int, python: Path) -> None:
    """What the hooks read (:func:`dockercourse.classroom.hooks.settings`)."""
    path_dirs = [str(python.parent), *_docker_cli_dirs(), "/usr/local/bin", "/usr/bin", "/bin"]
    settings = {
        "port": port,
        "images": images,
        "engine": engine,
        "vm_memory": vm_memory,
        "python": str(python),
        "environment": {"PATH": ":".join(dict.fromkeys(path_dirs))},
    }
    (state_root() / "settings.json").write_text(json.dumps(settings, indent=1))


def _stop_orphans(log) -> None:
    """No hub runs (checked before): what still runs is left from a hub that was killed. Its proxy
    (configurable-http-proxy, which JupyterHub started and would have stopped) still holds the hub's port,
    and its idle culler still runs; the students' servers outlive it (their engines stop with it). Stop
    them, so that each server starts again with its engine. The students' files stay."""
    from dockercourse.grading.users import _kill_all, _pids_of

    for pid, what in _left_of_hub():
        terminate(pid)
        log(f"classroom: stopped the {what} (pid {pid}) of a hub that was killed")
    (state_root() / "jupyterhub-proxy.pid").unlink(missing_ok=True)
    for n in students.names():
        ident = students.load(n)
        if _pids_of(ident):
            _kill_all(ident)
            log(f"classroom: stopped what {n} still ran from a hub that was killed")


def _docker_cli_dirs() -> list[str]:
    from dockercourse.core.dockercli import find_cli

    cli = find_cli()
    return [str(Path(cli.path).parent)] if cli is not None and getattr(cli, "path", None) else []


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln for ln in path.read_text().splitlines() if " " in ln]
    except OSError:
        return []


def _stop_pid(pid: int, timeout: float = 30) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # the hub and its proxy (its own session)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _left_of_hub() -> list[tuple[int, str]]:
    """The proxy and the idle culler a killed hub left running (JupyterHub starts each in a session of its
    own, so that they may outlive it): the proxy by the pid file JupyterHub wrote, the culler by the hub
    address in its command line; each only while its command line is still that program's."""
    root = state_root()
    try:
        proxy = int((root / "jupyterhub-proxy.pid").read_text().strip())
    except (OSError, ValueError):
        proxy = 0
    m = re.search(r"^c\.JupyterHub\.hub_port = (\d+)$", _read(root / "jupyterhub_config.py"), re.M)
    culler = f"--url=http://127.0.0.1:{m.group(1)}/hub/api".encode() if m else None
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if int(p.name) == proxy and b"configurable-http-proxy" in cmd:
            found.append((proxy, "proxy"))
        elif culler and b"jupyterhub_idle_culler" in cmd and culler in cmd.split(b"\0"):
            found.append((int(p.name), "idle culler"))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def api(path: str, method: str = "GET", **kw) -> requests.Response:
    """The hub's REST API as the classroom's own service (its token is root's)."""
    root = state_root()
    port = json.loads((root / "settings.json").read_text())["port"]
    token = (root / "api-token").read_text().strip()
    return requests.request(
        method, f"http://127.0.0.1:{port}/hub/api{path}", headers={"Authorization": f"token {token}"},
        timeout=kw.pop("timeout", 30), **kw,
    )  # fmt: skip


def down(log=print) -> list[str]:
    """Stop the hub (it stops every server, and their engines with them), then remove every student.
    Returns the problems (empty: all gone)."""
    if os.geteuid() != 0:
        raise CourseError("the classroom runs as root (its students are system users): use sudo")
    pid = running_pid()
    if pid:
        _stop_pid(pid)
        log(f"classroom: stopped the hub (pid {pid}) and the students' servers")
    for left, what in _left_of_hub():  # of a hub that was killed
        terminate(left)
        log(f"classroom: stopped the {what} (pid {left}) of a hub that was killed")
    problems = []
    for n in students.names():
        problems += students.remove(n)
        log(f"classroom: removed student {n}")
    for f in (
        "hub.pid",
        "jupyterhub.sqlite",
        "passwords",
        "api-token",
        "settings.json",
        "jupyterhub-proxy.pid",
    ):
        (state_root() / f).unlink(missing_ok=True)
    return problems


def status() -> dict:
    """What runs: the hub's pid, each student and whether their server runs and how many processes."""
    if os.geteuid() != 0:
        raise CourseError("the classroom runs as root (its state is root's): use sudo")
    pid = running_pid()
    out = {"hub": pid, "students": {}}
    servers = {}
    if pid:
        try:
            servers = {u["name"]: bool(u.get("server")) for u in api("/users").json()}
        except (requests.RequestException, ValueError, OSError):
            servers = {}
    from dockercourse.grading.users import _pids_of

    for n in students.names():
        ident = students.load(n)
        out["students"][n] = {"server": servers.get(n, False), "processes": len(_pids_of(ident))}
    return out
