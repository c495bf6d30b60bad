"""The guest's shell scripts: package files in ``vm/guest/``, read with :mod:`importlib.resources`.

* ``stage1.sh``             - the initramfs's ``/init`` (both flavours): load the kernel
  modules, mount the system disk, ``switch_root`` into it.
* ``stage2-docker.sh``      - the Docker guest's ``/sbin/engine-init``: mounts, cgroup v2,
  network, ``dockerd``, the halt/log control channel.
* ``podman-engine-init.sh`` - the Podman guest's ``/usr/sbin/engine-init``: catatonit as PID 1.
* ``stage2-podman.sh``      - what catatonit runs in the Podman guest
  (``/usr/lib/dockercourse/init.sh``): mounts, cgroup v2, nftables, ``podman system service``.

The disks' cache keys hash these files' bytes (:func:`digest`), so editing a script makes
a new initramfs or system disk.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from dockercourse.errors import CourseError

STAGE1 = "stage1.sh"
STAGE2_DOCKER = "stage2-docker.sh"
STAGE2_PODMAN = "stage2-podman.sh"
PODMAN_ENGINE_INIT = "podman-engine-init.sh"
NAMES = (STAGE1, STAGE2_DOCKER, STAGE2_PODMAN, PODMAN_ENGINE_INIT)


def _file(name: str):
    if name not in NAMES:
        raise ValueError(f"no guest script {name!r}; the guest's scripts are {', '.join(NAMES)}")
    return resources.files("dockercourse.vm").joinpath("guest", name)


def data(name: str) -> bytes:
    """The bytes of guest script ``name`` (one of :data:`NAMES`).

    Raises:
        CourseError: the file is missing (an installation without the package data).
    """
    try:
        return _file(name).read_bytes()
    except OSError as e:
        raise CourseError(
            f"the VM engine's guest script {name} is missing ({e}); fix: reinstall the "
            "toolkit (pip install -e .) so that src/dockercourse/vm/guest/*.sh is installed"
        ) from None


def text(name: str) -> str:
    """The text of guest script ``name``."""
    return data(name).decode("utf-8")


def digest(*names: str) -> str:
    """16 hex digits of the SHA-256 of the named scripts' bytes, concatenated (for cache keys)."""
    return hashlib.sha256(b"".join(data(n) for n in names)).hexdigest()[:16]
