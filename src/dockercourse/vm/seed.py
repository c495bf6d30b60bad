"""Loading the course images into a fresh system disk, and waiting for a guest's engine API.

A new disk is *seeded* once: booted writable, the images loaded into its engine (pulled
through the host's registry mirror when it answers, else copied from the host's engine, else
built there by the image kit from Debian's packages; never pulled from Docker Hub), then
the guest is told through a virtio console to stop its engine,
sync, remount read-only and power off (``halt``, see ``guest/stage2-*.sh``). Every later
boot opens the disk with ``snapshot=on``.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from dockercourse import config
from dockercourse.errors import BootError, CourseError
from dockercourse.vm.boot import Boot, boot, free_port
from dockercourse.vm.disk import engine_cache

logger = logging.getLogger(__name__)

GUEST_API_PORT = 2375
#: what a probe of an HTTP endpoint on 127.0.0.1 can raise (URLError and timeouts are OSErrors)
_HTTP_ERRORS = (OSError, http.client.HTTPException, ValueError)


def engine_api_errors() -> tuple[type[BaseException], ...]:
    """What a call to an engine's API through docker-py can raise: its own errors,
    requests' (OSErrors) and urllib3's (a stream cut short)."""
    import docker.errors
    import urllib3.exceptions

    return (docker.errors.DockerException, OSError, urllib3.exceptions.HTTPError, ValueError)


# --------------------------------------------------------------------------- the guest's API


def api_timeout(accel: str) -> float:
    """Seconds to wait for a guest's API: ``DOCKERCOURSE_VM_TIMEOUT``, else 60 (KVM) or 240 (TCG)."""
    t = config.number("DOCKERCOURSE_VM_TIMEOUT")
    return float(t) if t is not None else float(60 if accel == "kvm" else 240)


def ping(port: int, timeout: float = 2, tls_dir: str | Path | None = None) -> bool:
    """True when the engine on 127.0.0.1:``port`` answers ``/_ping`` (over mutual TLS with the client
    certificate in ``tls_dir`` when given, see :mod:`.tls`)."""
    try:
        if tls_dir:
            from dockercourse.vm.tls import ssl_context

            ctx = ssl_context(tls_dir)
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/_ping", timeout=timeout, context=ctx) as r:
                return r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ping", timeout=timeout) as r:
            return r.status == 200
    except _HTTP_ERRORS:  # not answering (yet): that is the answer (ssl.SSLError is an OSError)
        return False


def _console_settles(b: Boot, quiet: float = 2.0, limit: float = 10.0) -> None:
    """Wait until the console has printed nothing for ``quiet`` seconds (at most ``limit``): after
    "dockerd died:" the guest prints the engine's log, which says why, and an emulated (TCG) guest under
    load can take seconds to do so. (A fixed 0.5 s once lost it: the error ended at "dockerd died:".)"""
    end, seen, since = time.monotonic() + limit, len(b.console), time.monotonic()
    while time.monotonic() < end and time.monotonic() - since < quiet and b.alive():
        time.sleep(0.1)
        if len(b.console) != seen:
            seen, since = len(b.console), time.monotonic()


def wait_api(b: Boot, port: int, timeout: float, tls_dir: str | Path | None = None) -> float:
    """Wait until the engine answers /_ping; return seconds since qemu started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not b.alive():
            raise BootError(f"the VM stopped before its engine answered; console:\n{b.tail(25)}")
        if "dockercourse: dockerd died" in b.console or "dockercourse: engine died" in b.console:
            _console_settles(b)
            raise BootError(f"dockerd failed in the VM; console:\n{b.tail(30)}")
        if "dockercourse: no TLS files" in b.console:
            raise BootError(f"the VM engine could not get its TLS files; console:\n{b.tail(25)}")
        if ping(port, 1, tls_dir):
            return time.monotonic() - b.t_start
        time.sleep(0.1)
    raise BootError(
        f"the VM engine did not answer within {timeout:.0f} s ({b.accel}); console:\n{b.tail(25)}"
    )


# --------------------------------------------------------------------------- where images come from


def find_mirror_port() -> int | None:
    """The host's course registry mirror port, when it answers on 127.0.0.1."""
    cands = []
    env = config.get("DOCKERCOURSE_MIRROR_PORT")
    if env == "0":  # none: as on Binder, where no course mirror runs
        return None
    if env and env.isdigit():
        cands.append(int(env))
    try:
        cands.append(int((config.path("DOCKERCOURSE_STATE") / "mirror-port").read_text().strip()))
    except (OSError, ValueError) as e:
        logger.debug("no mirror port from scripts/engine-up (%s)", e)
    cands.append(5501)
    for port in dict.fromkeys(cands):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                if r.status == 200:
                    return port
        except _HTTP_ERRORS as e:
            logger.debug("no registry mirror on 127.0.0.1:%s (%s)", port, e)
    return None


def host_engine():
    """A client for the host's own engine (not DOCKER_HOST, which may be a VM), or None.

    The default socket, then the course's own engine's socket (``scripts/engine-up``).
    """
    import docker

    from dockercourse.engines.specs import DEFAULT_SOCKET, course_socket

    for path in (DEFAULT_SOCKET, str(course_socket())):
        if not os.path.exists(path):
            continue
        try:
            c = docker.DockerClient(base_url=f"unix://{path}", version="auto", timeout=300)
            c.ping()
            return c
        except (docker.errors.DockerException, OSError) as e:
            logger.debug("no engine answers on %s (%s)", path, e)
    return None


class _IterFile:
    """A file-like object over an iterator of bytes (for docker-py's load_image)."""

    def __init__(self, it):
        self.it = iter(it)
        self.buf = b""

    def read(self, n=-1):
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def __iter__(self):
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return
            yield chunk


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:300] if str(e) else ""


def _copy_from_host(client, host, ref: str) -> None:
    host.images.get(ref)
    stream = host.api.get_image(ref)
    client.api.load_image(_IterFile(stream))


def seed_sources() -> str:
    """``DOCKERCOURSE_VM_SEED``: "auto" (the host's mirror, else its engine, else the image kit) or
    "kit" (the kit only: Binder, whose build has neither and must not pull from Docker Hub)."""
    v = (config.get("DOCKERCOURSE_VM_SEED") or "auto").strip()
    if v not in ("auto", "kit"):
        raise CourseError(f"DOCKERCOURSE_VM_SEED must be auto or kit, not {v!r}")
    return v


def load_images(client, images, *, mirror: bool, log=print) -> list[str]:
    """Put ``images`` into the engine behind ``client``: pulled through the host's course mirror
    (when the engine has it), else copied from the host's engine, else built by the image kit from
    Debian's packages in that engine. Never pulled from Docker Hub: its anonymous pulls are rate
    limited (Binder's builds share an address) and the course runs without a registry."""
    import docker.errors

    errors = engine_api_errors()
    done, left = [], []
    host = None
    kit_only = seed_sources() == "kit"
    for ref in images:
        try:
            client.images.get(ref)
            done.append(ref)
            continue
        except docker.errors.ImageNotFound:
            pass  # not there yet: load it
        t0 = time.monotonic()
        how, err = None, "not tried"
        if mirror and not kit_only:
            try:
                repo, tag = ref.rsplit(":", 1)
                client.images.pull(repo, tag=tag)
                how = "pulled through the host's mirror"
            except errors as e:
                err = _first_line(e)
        if how is None and not kit_only:
            host = host or host_engine()
            if host is not None:
                try:
                    _copy_from_host(client, host, ref)
                    how = "copied from the host's engine"
                except errors as e:
                    err = _first_line(e)
        if how is None:
            left.append(ref)
            continue
        done.append(ref)
        log(f"vm: {ref}: {how} ({time.monotonic() - t0:.0f} s)")
    if host is not None:
        host.close()
    if left:
        done += _build_with_kit(client, left, log, err if not kit_only else "")
    return done


def _build_with_kit(client, refs: list[str], log, why: str) -> list[str]:
    """Build ``refs`` (course images) in the engine behind ``client`` with the image kit."""
    from dockercourse.core.images import COURSE_IMAGES
    from dockercourse.errors import ImageKitError
    from dockercourse.imagekit.kit import build_refs

    others = [r for r in refs if r not in COURSE_IMAGES.values()]
    for r in others:
        log(f"vm: {r}: not loaded: no mirror or host engine has it (the kit makes course images only)")
    refs = [r for r in refs if r not in others]
    if not refs:
        return []
    t0 = time.monotonic()
    log(
        f"vm: building {', '.join(refs)} from Debian's packages in the VM's engine (the image kit)"
        + (f"; no mirror or host engine has them ({why})" if why else "")
    )
    try:
        built = build_refs(client, refs, log=lambda m: log(f"vm: {m}"))
    except (ImageKitError, *engine_api_errors()) as e:
        log(f"vm: the image kit failed: {_first_line(e)}")
        return []
    log(f"vm: built {len(built)} images in {time.monotonic() - t0:.0f} s")
    return built


# --------------------------------------------------------------------------- seeding a disk


def _ctl_args(ctl: Path) -> list[str]:
    return [
        "-device",
        "virtio-serial-pci,id=vser0",
        "-chardev",
        f"socket,id=ctl0,path={ctl},server=on,wait=off",
        "-device",
        "virtconsole,chardev=ctl0,bus=vser0.0",
    ]


def _send(ctl: Path, cmd: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(ctl))
        s.sendall(cmd.encode() + b"\n")
        time.sleep(0.3)


def seed(kernel: Path, initrd: Path, disk: Path, images, *, log, accel, memory_mb, mirror_port) -> list[str]:
    """Boot ``disk`` writable, load ``images``, shut the guest down cleanly."""
    if seed_sources() == "kit":
        mirror_port = None  # the kit only: the guest gets no mirror
    elif mirror_port is None:
        mirror_port = find_mirror_port()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="seed-", dir=engine_cache()))
    ctl = work / "ctl.sock"
    append = "quiet" + (f" dc.mirror={mirror_port}" if mirror_port else "")
    log(
        f"vm: seeding the disk with {len(images)} images"
        + (f" from the mirror on 127.0.0.1:{mirror_port}" if mirror_port else "")
    )
    b = boot(
        kernel,
        initrd,
        append,
        memory_mb,
        accel=accel,
        hostfwd=[(port, GUEST_API_PORT)],
        drives=[{"file": disk, "format": "raw", "if": "virtio", "cache": "unsafe"}],
        extra_args=_ctl_args(ctl),
        workdir=work,
        die_with_parent=True,
    )
    try:
        wait_api(b, port, timeout=api_timeout(b.accel))
        import docker

        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="auto", timeout=900)
        loaded = load_images(client, images, mirror=bool(mirror_port), log=log)
        client.close()
        _send(ctl, "halt")
        try:
            b.wait_for(b"dockercourse: halted", timeout=90)
            b.proc.wait(30)
        except (BootError, subprocess.TimeoutExpired) as e:
            raise CourseError(f"the seeding VM did not shut down cleanly: {e}") from None
        return loaded
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)
