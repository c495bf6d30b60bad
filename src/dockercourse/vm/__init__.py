"""Run Linux guests under qemu without privileges.

* :mod:`.kernel`    - a bootable x86_64 kernel and its modules (host's /boot, or Debian's
  kernel unpacked from its ``.deb``; no root needed).
* :mod:`.initramfs` - write a gzip'd newc cpio archive in pure Python.
* :mod:`.boot`      - start qemu (KVM when it really works, else TCG), watch its serial
  console, measure it, and clean up.
* :mod:`.portfwd`   - the forwarder of ports that containers in the VM publish.

The VM engine (a Docker engine inside such a VM, ``dockercourse engine vm``):

* :mod:`.engine`    - ``up``/``down``/``vm_engine``/``worker_init``: boot, stop, the port
  forwarder's process; the public API (it re-exports the names below that callers use).
* :mod:`.state`     - :class:`~.state.VMEngine`, the state files, ``status``,
  ``reap_stale``, ``describe``, ``wait_ready``.
* :mod:`.artifacts` - ``build``: the kernel, initramfs and seeded system disk of a flavour.
* :mod:`.disk`      - the Docker flavour's initramfs and system disk, where its engine's
  binaries come from, the disks' cache keys.
* :mod:`.podman`    - the ``podman`` flavour: Podman 5's Docker API on a Debian trixie guest.
* :mod:`.seed`      - loading the course images into a fresh disk; waiting for a guest's API.
* :mod:`.shares`    - host folders shared into the guest at the same paths (bind mounts).
* :mod:`.scripts`   - the guest's shell scripts (package files in ``guest/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from dockercourse import config


def cache_dir() -> Path:
    """Per-user cache for VM artifacts (``DOCKERCOURSE_VM_CACHE`` overrides it)."""
    p = config.path("DOCKERCOURSE_VM_CACHE")
    if p is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        p = Path(base) / "dockercourse" / "vm"
    p.mkdir(parents=True, exist_ok=True)
    return p
