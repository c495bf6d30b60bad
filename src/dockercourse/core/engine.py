"""Finding and connecting to a Docker engine.

The course talks to whatever engine ``docker`` itself would use: ``DOCKER_HOST``
and the TLS variables (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) first, then
the default socket, then the usual places of a rootless Docker, Docker Desktop
and Podman. When none answers, :class:`NoEngineError` says what to do.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from dockercourse import config
from dockercourse.engines.specs import course_socket
from dockercourse.errors import NoEngineError
from dockercourse.i18n.messages import N_, tr

#: Oldest engine API the course supports (Debian bookworm's docker.io 20.10).
MIN_API_VERSION = "1.41"

#: Seconds to wait for one socket to answer /_ping before trying the next.
PING_TIMEOUT = 5


def _candidate_hosts() -> list[tuple[str, str]]:
    """Return ``(base_url, where)`` pairs to try, in order, after ``DOCKER_HOST``."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    runtime = os.environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{uid}" if uid is not None else None)
    home = Path.home()
    cands: list[tuple[str, str]] = []
    if sys.platform == "win32":
        cands.append(("npipe:////./pipe/docker_engine", "Docker Desktop named pipe"))
        return cands
    cands.append(("unix:///var/run/docker.sock", "default socket /var/run/docker.sock"))
    cands.append((f"unix://{course_socket()}", f"the course's own engine {course_socket()}"))
    if runtime:
        cands.append((f"unix://{runtime}/docker.sock", "rootless Docker socket"))
    cands.append((f"unix://{home}/.docker/run/docker.sock", "Docker Desktop socket"))
    cands.append((f"unix://{home}/.docker/desktop/docker.sock", "Docker Desktop socket"))
    if runtime:
        cands.append((f"unix://{runtime}/podman/podman.sock", "Podman socket (rootless)"))
    cands.append(("unix:///run/podman/podman.sock", "Podman socket"))
    seen, out = set(), []
    for url, where in cands:
        if url not in seen:
            seen.add(url)
            out.append((url, where))
    return out


def no_engine_message(tried: list[str] | None = None) -> str:
    """The text shown when no engine answers: what to do on each platform."""
    lines = [tr("No Docker engine answers, so the live cells of this course cannot run.")]
    if tried:
        listed = "; ".join(tried)
        lines.append(tr(f"Tried: {listed}."))
    lines.append(
        tr(
            "What to do:\n"
            "  Linux:   start the engine (sudo systemctl start docker, or `sudo scripts/engine-up`"
            " in this repo:\n"
            "           it starts the course's own Docker 28 when the system has none or an old one);\n"
            "           if it runs but you get 'permission denied', join the docker group:\n"
            "           sudo groupadd -f docker && sudo gpasswd -a $USER docker && newgrp docker;\n"
            "           or use a rootless engine: dockerd-rootless-setuptool.sh install, then\n"
            "           export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock\n"
            "  macOS / Windows: start Docker Desktop and wait until it says 'Engine running'.\n"
            "  Binder:  mybinder.org gives no Docker engine; read the committed outputs, or run the\n"
            "           course locally (see the README's quickstart).\n"
            "Then re-run this cell. `dockercourse doctor` checks the whole setup."
        )
    )
    return "\n".join(lines)


def _make_client(kwargs: dict, namespace=None) -> docker.DockerClient:
    """A DockerClient from APIClient kwargs; a labelling one when ``namespace`` is given.

    An engine on TLS (``kwargs["tls"]``, from ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``, as the VM
    engine's with ``--tls``) is trusted through its own authority only: requests would otherwise let
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (set on many machines behind a company proxy) replace it
    (requests issue 3829) and send the calls through a proxy of the environment. So the client stops
    reading the environment before its first call, and the API version is negotiated after that."""
    tls = bool(kwargs.get("tls"))
    version = docker.constants.MINIMUM_DOCKER_API_VERSION if tls else "auto"  # no call made yet
    if namespace is None:
        api = docker.APIClient(version=version, **kwargs)
    else:
        from dockercourse.core.namespace import LabellingAPIClient

        api = LabellingAPIClient(version=version, namespace=namespace, **kwargs)
    if tls:
        api.trust_env = False
        api._version = api.version(api_version=False)["ApiVersion"]  # what version="auto" does
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    client.api.ping()
    return client


def client_for(base_url: str, *, timeout: int = 120, tls=None) -> docker.DockerClient:
    """A client of the engine at ``base_url`` (``tls``: docker-py's ``TLSConfig`` for an engine on TLS)."""
    return _make_client({"base_url": base_url, "timeout": timeout, **({"tls": tls} if tls else {})})


def connect(timeout: int = 120, namespace=None) -> docker.DockerClient:
    """Connect to the engine the ``docker`` CLI would use, with the usual fallbacks.

    Args:
        timeout: seconds each API call may take once connected.
        namespace: a :class:`dockercourse.core.namespace.Namespace`; when given, what the
            client creates carries its labels (see ``LabellingAPIClient``).

    Returns:
        A ``docker.DockerClient`` whose API version is negotiated with the engine.

    Raises:
        NoEngineError: no engine answered; the message says what to do.
    """
    from docker.utils import kwargs_from_env

    tried: list[str] = []
    env_host = os.environ.get("DOCKER_HOST")
    if env_host:
        try:
            return _make_client({**kwargs_from_env(), "timeout": timeout}, namespace)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise NoEngineError(
                no_engine_message([f"DOCKER_HOST={env_host} ({_short(e)})"])
                + "\n"
                + tr("(DOCKER_HOST is set, so no other socket was tried; unset it to use a local engine.)")
            ) from None
    for url, where in _candidate_hosts():
        path = url[len("unix://") :] if url.startswith("unix://") else None
        if path is not None and not os.path.exists(path):
            continue
        try:
            client = _make_client({"base_url": url, "timeout": PING_TIMEOUT}, namespace)
            client.api.timeout = timeout
            return client
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            tried.append(f"{where} ({_short(e)})")
    if not tried:
        tried.append("no Docker or Podman socket exists on this machine")
    raise NoEngineError(no_engine_message(tried))


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
    if "Permission denied" in text or "PermissionError" in text:
        return "permission denied: your user may not use this socket"
    if "Connection refused" in text or "FileNotFoundError" in text or "No such file" in text:
        return "nothing listens there"
    return text[:160]


@dataclass
class EngineInfo:
    """What the course needs to know about the engine it talks to."""

    kind: str  # "Docker", "Docker (rootless)", "Podman", "Docker Desktop", "Docker (VM)"
    base_url: str
    server_version: str
    api_version: str
    os: str
    kernel: str
    arch: str
    storage_driver: str
    cgroup_version: str
    cgroup_driver: str
    docker_root: str
    mirrors: list[str]
    security_options: list[str]
    ncpu: int
    mem_bytes: int
    image_store: str = "classic"  # "containerd" (the containerd image store) or "classic" (graph drivers)

    @property
    def rootless(self) -> bool:
        return "rootless" in self.kind.lower()

    @property
    def store_text(self) -> str:
        """The image store in words: where IDs, sizes and `docker save` differ between engines."""
        if self.image_store == "containerd":
            return N_(f"containerd image store ({self.storage_driver} snapshotter)")
        return N_(f"classic image store ({self.storage_driver} storage driver)")


def engine_url(client: docker.DockerClient) -> str:
    """Where the client talks to: ``unix:///var/run/docker.sock``, ``tcp://...``, ``npipe://...``."""
    adapter = getattr(client.api, "_custom_adapter", None)
    path = getattr(adapter, "socket_path", None)
    if path:
        return "unix://" + path
    pipe = getattr(adapter, "npipe_path", None)
    if pipe:
        return "npipe://" + pipe
    return client.api.base_url.replace("http://", "tcp://").replace("https://", "tcp://")


def engine_info(client: docker.DockerClient) -> EngineInfo:
    """Describe the engine: kind, versions, storage driver, cgroups, mirrors."""
    info = client.info()
    ver = client.version()
    sec = info.get("SecurityOptions") or []
    components = [c.get("Name", "") for c in ver.get("Components", []) or []]
    if any("podman" in c.lower() for c in components) or "podman" in str(ver.get("Platform", {})).lower():
        kind = "Podman"
    elif "Docker Desktop" in (info.get("OperatingSystem") or ""):
        kind = "Docker Desktop"
    elif config.get("DOCKERCOURSE_ENGINE") == "vm":
        kind = "Docker (VM)"
    else:
        kind = "Docker"
    if any("rootless" in s for s in sec):
        kind += " (rootless)"
    return EngineInfo(
        kind=kind,
        base_url=engine_url(client),
        server_version=ver.get("Version", "?"),
        api_version=ver.get("ApiVersion", "?"),
        os=info.get("OperatingSystem", "?"),
        kernel=info.get("KernelVersion", "?"),
        arch=info.get("Architecture", "?"),
        storage_driver=info.get("Driver", "?"),
        cgroup_version=str(info.get("CgroupVersion", "1")),
        cgroup_driver=info.get("CgroupDriver", "?"),
        docker_root=info.get("DockerRootDir", "?"),
        mirrors=list((info.get("RegistryConfig") or {}).get("Mirrors") or []),
        security_options=list(sec),
        ncpu=int(info.get("NCPU", 0)),
        mem_bytes=int(info.get("MemTotal", 0)),
        image_store=image_store(info),
    )


def image_store(info: dict) -> str:
    """``"containerd"`` when the engine keeps images in containerd (Docker 29's default, Docker Desktop,
    ``"features": {"containerd-snapshotter": true}``), else ``"classic"`` (overlay2 and the other graph
    drivers). Image IDs, sizes and the ``docker save`` layout differ between the two."""
    for k, v in info.get("DriverStatus") or []:
        if k == "driver-type" and "containerd.snapshotter" in str(v):
            return "containerd"
    return "classic"


def platform_line() -> str:
    """One line naming the machine the notebook runs on (for the engine banner)."""
    return (
        f"{platform.system()} {platform.release()} ({platform.machine()}), Python {platform.python_version()}"
    )
