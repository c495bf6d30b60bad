"""``dockercourse doctor``: can this machine run the course? And if not, the fix.

:func:`diagnose` looks; the command (:mod:`dockercourse.cli.doctor`) prints its findings.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass

import docker
import docker.errors

from dockercourse import config
from dockercourse.core.engine import MIN_API_VERSION, connect, engine_info
from dockercourse.errors import CourseError, NoEngineError
from dockercourse.i18n.messages import N_, tr

log = logging.getLogger(__name__)


@dataclass
class Finding:
    """One thing looked at. ``topic`` is English whatever the language (code reads it: chapter 02 picks
    findings by it), and shown translated; ``detail`` and ``fix`` are in the learner's language."""

    ok: bool
    topic: str
    detail: str
    fix: str = ""
    fatal: bool = False  # the course cannot run


def _api_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def _how_started(base_url: str) -> str:
    """Who started the engine that answers: the course (which of its engines) or someone else."""
    import os

    from dockercourse.engines import local

    rec = local.read_record()
    if rec and rec.get("docker_host") == base_url:
        pk = rec.get("packages") or {}
        what = tr(f"the course's engine {rec['name']!r} ({rec['title']})")
        if pk:
            docker_io, containerd = pk.get("docker.io", "?"), pk.get("containerd", "?")
            what = tr(f"{what} from Debian's packages (docker.io {docker_io}, containerd {containerd})")
        how, started, log_path = rec.get("how", "scripts/engine-up"), rec.get("started", "?"), rec.get("log")
        return tr(f"{what}, started with {how} at {started}; its log: {log_path}")
    if base_url.startswith("tcp://") and config.get("DOCKERCOURSE_ENGINE") == "vm":
        return tr("the course's VM engine (dockercourse engine vm up)")
    if os.environ.get("DOCKER_HOST"):
        host = os.environ["DOCKER_HOST"]
        return tr(f"not the course: DOCKER_HOST={host}")
    return tr("not the course (a system service, Docker Desktop, or an engine you started)")


def diagnose(client=None) -> list[Finding]:
    """Look at the engine and the machine; never raises."""
    import requests.exceptions

    out = [Finding(True, N_("client"), f"docker-py {docker.__version__}, Python {sys.version.split()[0]}")]
    try:
        client = client or connect()
    except NoEngineError as e:
        return [*out, Finding(False, N_("engine"), tr("no engine answers"), fix=str(e), fatal=True)]
    try:
        info = engine_info(client)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:  # ping, but no /info
        detail, fix = tr(f"the engine answered but /info failed: {e}"), tr("restart the engine")
        return [*out, Finding(False, N_("engine"), detail, fix=fix, fatal=True)]
    return (
        out
        + _engine_findings(info)
        + _machine_findings(info)
        + _image_findings(client)
        + _copy_findings(client)
    )


def _engine_findings(info) -> list[Finding]:
    out = [
        Finding(True, N_("engine"), tr(f"{info.kind} {info.server_version}, answering at {info.base_url}")),
        Finding(True, N_("started by"), _how_started(info.base_url)),
        Finding(True, N_("image store"), tr(info.store_text)),
    ]
    try:
        from dockercourse.vm.engine import describe

        vm_line = describe(info.base_url)
    except (CourseError, OSError, ValueError) as e:  # qemu support missing or its state unreadable
        log.debug("not a VM engine of the course: %s", e)
        vm_line = None
    if vm_line:
        out.append(Finding(True, N_("engine VM"), vm_line))
    api_ok = _api_tuple(info.api_version) >= _api_tuple(MIN_API_VERSION)
    fix = "" if api_ok else tr("upgrade the engine to Docker 20.10 or newer")
    detail = tr(f"{info.api_version} (the course needs {MIN_API_VERSION} or newer)")
    out.append(Finding(api_ok, "API", detail, fix=fix, fatal=not api_ok))
    return out


def _machine_findings(info) -> list[Finding]:
    mem = f"{info.mem_bytes / 2**30:.1f}"
    out = [
        Finding(
            True, N_("OS"), tr(f"{info.os}, kernel {info.kernel}, {info.arch}, {info.ncpu} CPUs, {mem} GiB")
        )
    ]
    sd_ok = info.storage_driver in ("overlay2", "overlay", "overlayfs", "fuse-overlayfs", "btrfs", "zfs")
    fix = (
        ""
        if sd_ok
        else tr("the lessons on layers and `diff` assume overlay2; vfs works but is slow and uses much disk")
    )
    out.append(Finding(sd_ok, N_("storage driver"), info.storage_driver, fix=fix))
    rootless_v1 = info.rootless and info.cgroup_version == "1"
    cgroups = f"v{info.cgroup_version} ({info.cgroup_driver})"
    if rootless_v1:
        cgroups = tr(
            f"{cgroups}; resource limits may be missing on a rootless engine without cgroup v2 delegation"
        )
    out.append(Finding(True, "cgroups", cgroups))
    out.append(Finding(True, N_("registry mirrors"), ", ".join(info.mirrors) or tr("none")))
    if info.docker_root and os.path.isdir(info.docker_root):
        free, where = shutil.disk_usage(info.docker_root).free, info.docker_root
    else:
        free = shutil.disk_usage(".").free
        where = tr("the current folder (the engine's data root is not visible from here)")
    disk_ok = free > 3 * 2**30
    fix = (
        ""
        if disk_ok
        else tr("free at least 3 GiB for the course images (docker system df shows what uses space)")
    )
    out.append(Finding(disk_ok, N_("free disk"), tr(f"{free / 2**30:.1f} GiB free at {where}"), fix=fix))
    return out


def _image_findings(client) -> list[Finding]:
    from dockercourse import imagekit

    try:
        statuses = imagekit.status(client)
    except (docker.errors.DockerException, CourseError) as e:
        detail, fix = tr(f"could not list the course images: {e}"), tr("run: dockercourse images")
        return [Finding(False, N_("images"), detail, fix=fix)]
    out = []
    for st in statuses:
        present = getattr(st, "present", False)
        detail = getattr(st, "source", "") or (tr("present") if present else tr("missing"))
        fix = "" if present else tr("run: dockercourse images")
        out.append(Finding(present, N_(f"image {st.ref}"), detail, fix=fix))
    return out


def _copy_findings(client) -> list[Finding]:
    """Copy a small file into a container, as `docker cp` does (chapters 04 and 06 teach it).

    Some Docker builds cannot on Linux kernels before 6.6: their archive code's chmod fallback
    goes through /proc/self/fd inside a chroot that has no /proc (moby/go-archive#103; Debian's
    docker.io 28.5 has it). The probe is a created, never started container, removed at once.
    """
    import io
    import tarfile
    import uuid

    from dockercourse.core import labels as L
    from dockercourse.core.images import BUSYBOX

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("doctor.txt")
        data = b"copied by dockercourse doctor\n"
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    c = None
    try:
        c = client.containers.create(
            BUSYBOX, ["true"], name=f"dc00-doctor-{uuid.uuid4().hex[:8]}", labels={L.CHAPTER: "00"}
        )
        c.put_archive("/tmp", buf.getvalue())
        return [Finding(True, "docker cp", tr("copying a file into a container works"))]
    except docker.errors.ImageNotFound:
        return [Finding(True, "docker cp", tr(f"not checked: {BUSYBOX} is not here yet"))]
    except docker.errors.APIError as e:
        text = str(e.explanation or e)
        known = "via /proc/self/fd" in text
        fix = tr(
            "this Docker build cannot copy into containers on kernels before 6.6 (moby/go-archive#103): "
            "use a kernel 6.6 or newer (the VM engine: DOCKERCOURSE_VM_KERNEL), or another Docker build "
            "(the course's Docker 26: scripts/engine-up --stop; scripts/engine-up --engine 26)"
            if known
            else "see the engine's log"
        )
        detail = tr(f"copying into a container fails: {text}")
        return [Finding(False, "docker cp", detail, fix=fix)]
    finally:
        if c is not None:
            try:
                c.remove(force=True)
            except docker.errors.DockerException as e:
                log.warning("could not remove the doctor's probe container %s: %s", c.name, e)
