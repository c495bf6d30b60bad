"""What a VM engine boots: the kernel, the initramfs and the seeded system disk of a
flavour, built once and cached (``<vm cache>/engine/``).

* ``docker``: Docker 28.5 from the course's packages (:mod:`.disk`);
* ``podman``: Podman 5 on a Debian trixie root file system (:mod:`.podman`).

Both disks are seeded with the course images by :mod:`.seed`. A disk's file name holds
the key of its inputs and of its image list; the build is locked (``build.lock``) so that
parallel grading workers build it once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockercourse.core.images import COURSE_IMAGES
from dockercourse.errors import CourseError
from dockercourse.vm import disk as docker_disk
from dockercourse.vm import podman
from dockercourse.vm.kernel import find_kernel
from dockercourse.vm.qemu import require_qemu
from dockercourse.vm.seed import seed

logger = logging.getLogger(__name__)

#: Guest RAM. With the TCG translation cache (128 MB) and qemu itself, qemu's RSS
#: stays under 1 GB.
DEFAULT_MEMORY_MB = 768
#: The course images loaded by default: all of them, the image kit's (its gcc:12 is 101 MB of content;
#: chapters 03 and 08 use it). ``--images`` chooses others.
DEFAULT_IMAGES = tuple(COURSE_IMAGES.values())
#: the guest's flavours: Docker (:mod:`.disk`) and Podman (:mod:`.podman`)
FLAVORS = ("docker", "podman")


@dataclass
class Artifacts:
    kernel: Path
    initrd: Path
    disk: Path
    key: str
    images: list
    flavor: str = "docker"
    engine: dict = field(default_factory=dict)  # source, version, title (the disk's metadata)

    @property
    def disk_format(self) -> str:
        """qemu's name of the disk's format: ``qcow2`` (compressed, what a build makes when qemu-img is
        there) or ``raw`` (a sparse ext4 image: without qemu-img, or cached from before)."""
        return "qcow2" if self.disk.suffix == ".qcow2" else "raw"


def _disk_path(ecache: Path, name: str, new: bool = False) -> Path:
    """The cached disk ``name`` (no suffix) in whichever format it was made; a new one (``new``: a
    rebuild) is qcow2 when qemu-img is there. A raw image is sparse: copied into a container image
    layer (Binder) it becomes a dense 6 GB; the compressed qcow2 of the same disk is 333 MB with the
    six course images."""
    for suffix in () if new else (".qcow2", ".img"):
        if (ecache / (name + suffix)).is_file():
            return ecache / (name + suffix)
    return ecache / (name + (".qcow2" if shutil.which("qemu-img") else ".img"))


def _compact(raw: Path, disk: Path, log) -> None:
    """Write the seeded raw ``raw`` as ``disk`` in its format (qcow2: ``qemu-img convert -c``); the same
    disk in the other format goes (a running VM keeps reading an unlinked one)."""
    disk.with_suffix(".img" if disk.suffix == ".qcow2" else ".qcow2").unlink(missing_ok=True)
    if disk.suffix != ".qcow2":
        os.replace(raw, disk)
        return
    tmp = disk.with_name(disk.name + ".qcow2.part")  # beside the seeded raw one, which is "<disk>.part"
    r = subprocess.run(
        ["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(tmp)], capture_output=True, text=True
    )
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
        raise CourseError(f"qemu-img could not write the VM's disk as qcow2: {r.stderr.strip()[-200:]}")
    os.replace(tmp, disk)
    raw.unlink(missing_ok=True)
    log(f"vm: disk compacted to qcow2, {disk.stat().st_size / 1e6:.0f} MB")


def flavor_inputs(flavor: str, log, rebuild: bool = False) -> tuple[dict, list[str], str]:
    """(cache-key inputs, kernel modules, disk file prefix) of a flavour."""
    if flavor == "docker":
        return docker_disk.inputs(log), docker_disk.DOCKER_MODULES, "system"
    if flavor == "podman":
        return podman.inputs(log, rebuild=rebuild), podman.MODULES, "podman"
    raise CourseError(f"unknown VM engine flavour {flavor!r}; choose one of: {', '.join(FLAVORS)}")


def build(
    images=DEFAULT_IMAGES,
    *,
    rebuild: bool = False,
    log=print,
    accel: str = "auto",
    memory_mb: int = DEFAULT_MEMORY_MB,
    mirror_port: int | None = None,
    flavor: str = "docker",
) -> Artifacts:
    """Make (or find in the cache) the kernel, initramfs and seeded system disk of ``flavor``
    ("docker": Docker 28.5 from the course's packages; "podman": Podman on Debian trixie)."""
    require_qemu()
    images = sorted(set(images))
    k = find_kernel(log)
    inp, modules, prefix = flavor_inputs(flavor, log, rebuild)
    sys_key = docker_disk.disk_key(inp)
    ecache = docker_disk.engine_cache()
    if rebuild:
        docker_disk.initrd_path(k.version, modules).unlink(missing_ok=True)
    initrd = docker_disk.initrd_for(modules, log)
    disk_key = f"{sys_key}-{docker_disk.key(images)}"
    disk = _disk_path(ecache, f"{prefix}-{disk_key}", new=rebuild)
    meta = ecache / f"{prefix}-{disk_key}.json"

    def artifacts() -> Artifacts:
        m = json.loads(meta.read_text())
        return Artifacts(
            k.image,
            initrd,
            disk,
            disk_key,
            m.get("images", []),
            flavor,
            m.get("inputs", {}).get("engine", {}),
        )

    if rebuild or not disk.is_file() or not meta.is_file():
        # one builder at a time (parallel grading workers share the cache); leftovers of
        # an interrupted build are removed under the lock
        with open(ecache / "build.lock", "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            if not rebuild and disk.is_file() and meta.is_file():
                return artifacts()
            for junk in list(ecache.glob("seed-*")) + list(ecache.glob("stage-*")):
                shutil.rmtree(junk, ignore_errors=True)
            for junk in ecache.glob("*.part"):
                junk.unlink(missing_ok=True)
            _build_disk(
                k,
                initrd,
                disk,
                meta,
                inp,
                sys_key,
                images,
                log,
                accel,
                memory_mb,
                mirror_port,
                flavor,
                prefix,
            )
    return artifacts()


def _build_disk(
    k,
    initrd,
    disk,
    meta,
    inp,
    sys_key,
    images,
    log,
    accel,
    memory_mb,
    mirror_port,
    flavor="docker",
    prefix="system",
) -> list[str]:
    t0 = time.monotonic()
    if flavor == "podman":
        log(f"vm: building the podman system disk ({inp['engine']['title']}, kernel {k.version})")
        part = podman.build_disk(disk, inp, log)
    else:
        log(f"vm: building the system disk ({inp['engine']['title']}, kernel {k.version})")
        part = docker_disk.build_system_disk(disk, inp, log)
    t_disk = time.monotonic() - t0
    try:
        loaded = seed(
            k.image, initrd, part, images, log=log, accel=accel, memory_mb=memory_mb, mirror_port=mirror_port
        )
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _compact(part, disk, log)
    meta.write_text(
        json.dumps(
            {
                "inputs": inp,
                "flavor": flavor,
                "images": loaded,
                "initrd": initrd.name,
                "disk_seconds": round(t_disk, 1),
                "seconds": round(time.monotonic() - t0, 1),
                "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            indent=1,
        )
    )
    _remove_old(prefix, sys_key, initrd)
    log(
        f"vm: system disk ready ({len(loaded)} images, {time.monotonic() - t0:.0f} s; "
        f"the disk itself {t_disk:.0f} s)"
    )
    return loaded


def _remove_old(prefix: str, sys_key: str, initrd: Path) -> None:
    """Remove disks of this flavour made from other binaries or another kernel (a running
    VM keeps reading an unlinked disk) and initramfs images no disk uses; disks of other
    image lists with these binaries stay, and so do the other flavour's."""
    ecache = docker_disk.engine_cache()
    for old in ecache.glob(f"{prefix}-*"):
        if not old.name.startswith(f"{prefix}-{sys_key}-"):
            old.unlink(missing_ok=True)
    wanted = {initrd.name}
    for m in ecache.glob("*.json"):
        try:
            wanted.add(json.loads(m.read_text()).get("initrd", ""))
        except (OSError, ValueError) as e:  # unreadable metadata keeps no initramfs
            logger.debug("%s not read (%s)", m, e)
    for old in ecache.glob("initrd-*.gz"):
        if old.name not in wanted:
            old.unlink(missing_ok=True)
