"""The course's local registry mirror: the real registry image, seeded with the course images.

Where the course controls the engine (CI, ``scripts/engine-up``), dockerd runs with
``--registry-mirror http://127.0.0.1:<port>``; the kit then runs the registry
image as the container ``dockercourse-mirror`` on that loopback port and pushes
every course image into it under its Docker Hub name (``library/busybox`` ...),
so ``docker pull busybox:1.35.0`` works with no registry reachable.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import docker.errors
import requests

from dockercourse.core import labels
from dockercourse.core.engine import engine_info
from dockercourse.errors import ImageKitError
from dockercourse.imagekit.naming import (
    MIRROR_NAME,
    MIRROR_VOLUME,
    hub_path,
    kit_labels,
    split_ref,
)
from dockercourse.imagekit.progress import LayerBars
from dockercourse.lessonkit.registry import RegistryAPI

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

DAEMON_JSON_HINT = (
    "this engine has no loopback registry mirror, so course images were made in the engine directly "
    "(they work, but `docker pull` of a course tag needs a registry). To pull them offline too, add "
    '"registry-mirrors": ["http://127.0.0.1:5501"] to the engine\'s daemon.json '
    "(Docker Desktop: Settings > Docker Engine; Linux: /etc/docker/daemon.json), restart the engine, "
    "and run `dockercourse images` again: it starts and seeds the mirror."
)


@dataclass
class MirrorStatus:
    """The mirror as the engine and the kit see it."""

    configured: bool  # the engine has a loopback mirror the course can serve
    url: str | None = None
    port: int | None = None
    running: bool = False
    seeded: list[str] = field(default_factory=list)  # refs the mirror serves as the local image
    missing: list[str] = field(default_factory=list)  # refs not (or not identically) in the mirror
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.configured or (self.running and not self.missing)


def configured_port(client) -> tuple[str | None, int | None]:
    """(url, port) of the engine's loopback registry mirror, or (None, None)."""
    for url in engine_info(client).mirrors:
        u = urlparse(url if "//" in url else f"http://{url}")
        if (u.hostname or "") in LOOPBACK:
            return url, u.port or (443 if u.scheme == "https" else 80)
    return None, None


def _base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def answers(port: int, timeout: float = 2.0) -> bool:
    try:
        return RegistryAPI(_base(port), timeout=timeout).ping() == 200
    except requests.RequestException:
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def remote_digests(port: int, ref: str) -> set[str]:
    """What identifies the image the mirror serves for ``ref``: its manifest digest and its config digest.

    An engine names a local image by one of them: the classic image store by the configuration
    digest, the containerd image store (Docker 29's default, Desktop) by the manifest's digest.
    """
    name, tag = split_ref(ref)
    try:
        r = RegistryAPI(_base(port)).manifest(hub_path(ref), tag)
        if r.status_code != 200:
            return set()
        out = {(r.json().get("config") or {}).get("digest"), r.headers.get("Docker-Content-Digest")}
        return {d for d in out if d}
    except (requests.RequestException, ValueError):
        return set()


def container(client):
    try:
        return client.containers.get(MIRROR_NAME)
    except docker.errors.NotFound:
        return None


def _published_port(c) -> int | None:
    ports = (c.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    for b in ports.get("5000/tcp") or []:
        try:
            return int(b.get("HostPort"))
        except (TypeError, ValueError):
            pass
    return None


def ensure_running(client, port: int, registry_ref: str, log=print, wait: float = 30) -> None:
    """Run the mirror container on 127.0.0.1:port (create, start or fix it); wait until it answers."""
    c = container(client)
    if c is not None and (c.labels or {}).get(labels.KIT) != "1":
        raise ImageKitError(
            f"a container named {MIRROR_NAME} exists that the kit did not make; rename or remove it "
            f"(docker rm -f {MIRROR_NAME}) and run again"
        )
    if c is not None and _published_port(c) != port:
        log(f"mirror: republishing {MIRROR_NAME} on 127.0.0.1:{port}")
        c.remove(force=True)
        c = None
    if c is not None and c.status == "running" and answers(port):
        return
    if (c is None or c.status != "running") and _listening(port):
        raise ImageKitError(
            f"the mirror port 127.0.0.1:{port} is taken by another program; free it "
            f"(ss -ltnp 'sport = :{port}') or start the engine with another --registry-mirror port"
        )
    if c is None:
        try:
            client.volumes.get(MIRROR_VOLUME)
        except docker.errors.NotFound:
            client.volumes.create(MIRROR_VOLUME, labels=kit_labels("course registry mirror storage"))
        try:
            c = client.containers.create(
                registry_ref,
                name=MIRROR_NAME,
                detach=True,
                ports={"5000/tcp": ("127.0.0.1", port)},
                volumes={MIRROR_VOLUME: {"bind": "/var/lib/registry", "mode": "rw"}},
                restart_policy={"Name": "always"},
                labels=kit_labels(
                    f"course registry mirror ({registry_ref}) for the engine's --registry-mirror"
                ),
            )
        except docker.errors.APIError as e:
            raise ImageKitError(f"could not create the mirror container: {_expl(e)}") from None
        log(f"mirror: started {MIRROR_NAME} ({registry_ref}) on 127.0.0.1:{port}")
    try:
        c.start()
    except docker.errors.APIError as e:
        msg = _expl(e)
        if "address already in use" in msg or "port is already allocated" in msg:
            raise ImageKitError(
                f"the mirror port 127.0.0.1:{port} is taken by another program; free it or start the "
                "engine with another --registry-mirror port"
            ) from None
        raise ImageKitError(f"could not start the mirror container: {msg}") from None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if answers(port):
            return
        time.sleep(0.2)
    c.reload()
    tail = c.logs(tail=3).decode(errors="replace").strip().replace("\n", " | ")
    raise ImageKitError(f"the mirror on 127.0.0.1:{port} does not answer ({c.status}): {tail[:200]}")


def _expl(e: Exception) -> str:
    return str(getattr(e, "explanation", None) or e).strip().splitlines()[0][:240]


#: Errors of a push that a second try can get past: the connection to a registry that has just
#: started dropped (seen with Docker 20.10's userland proxy in front of a fresh mirror).
TRANSIENT = ("connection reset by peer", "broken pipe", "unexpected eof", "connection refused")


def push(client, port: int, ref: str, progress: bool = True, tries: int = 3) -> None:
    """Push the local image ``ref`` into the mirror as ``library/<name>:<tag>``; a push whose
    connection dropped (:data:`TRANSIENT`) is tried again, up to ``tries`` times in all."""
    for attempt in range(1, tries + 1):
        try:
            return _push_once(client, port, ref, progress)
        except ImageKitError as e:
            if attempt == tries or not any(t in str(e).lower() for t in TRANSIENT):
                raise
            time.sleep(attempt)


def _push_once(client, port: int, ref: str, progress: bool) -> None:
    """One push of ``ref`` under a temporary tag ``127.0.0.1:<port>/library/<name>:<tag>``, which is
    removed afterwards (with the digest reference the push records)."""
    name, tag = split_ref(ref)
    target = f"127.0.0.1:{port}/{hub_path(ref)}"
    image = client.images.get(ref)
    image.tag(target, tag)
    bars = LayerBars(f"seed {ref}", progress)
    try:
        for ev in client.api.push(target, tag=tag, stream=True, decode=True):
            bars.feed(ev)
    except docker.errors.APIError as e:
        raise ImageKitError(f"pushing {ref} into the mirror failed: {_expl(e)}") from None
    finally:
        bars.close()
        _untag(client, f"{target}:{tag}")
        image.reload()
        for d in image.attrs.get("RepoDigests") or []:
            if d.startswith(f"{target}@"):
                _untag(client, d)
    if bars.error:
        raise ImageKitError(f"pushing {ref} into the mirror failed: {bars.error[:200]}")


def _untag(client, ref: str) -> None:
    try:
        client.api.remove_image(ref, noprune=True)
    except docker.errors.APIError:
        pass


def check(client, refs: list[str]) -> MirrorStatus:
    """What the mirror serves, compared with the local images (no changes)."""
    url, port = configured_port(client)
    if port is None:
        return MirrorStatus(False, message=DAEMON_JSON_HINT)
    st = MirrorStatus(True, url=url, port=port)
    c = container(client)
    st.running = c is not None and c.status == "running" and answers(port)
    if not st.running:
        st.missing = list(refs)
        st.message = (
            f"the engine pulls through {url}, but the course mirror is not running there"
            + (f" ({MIRROR_NAME} is {c.status})" if c is not None else "")
            + "; run `dockercourse images` to start and seed it"
        )
        return st
    for ref in refs:
        try:
            local = client.images.get(ref).id
        except docker.errors.ImageNotFound:
            local = None
        (st.seeded if local and local in remote_digests(port, ref) else st.missing).append(ref)
    st.message = f"{MIRROR_NAME} serves {len(st.seeded)}/{len(refs)} course images on {url}" + (
        f"; not yet seeded: {', '.join(st.missing)}" if st.missing else ""
    )
    return st
