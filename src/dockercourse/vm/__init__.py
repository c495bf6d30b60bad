"""Run Linux guests under qemu without privileges.

* :mod:`.kernel`    - a bootable x86_64 kernel and its modules (host's /boot, or Debian's
  cloud kernel unpacked from its ``.deb``; no root needed).
* :mod:`.initramfs` - write a gzip'd newc cpio archive in pure Python.
* :mod:`.boot`      - start qemu (KVM when it really works, else TCG), watch its serial
  console, measure it, and clean up.
* :mod:`.engine`    - a Docker engine inside such a VM (``dockercourse engine vm``).
* :mod:`.podman`    - its ``podman`` flavour: Podman 5's Docker API on a Debian trixie guest.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache for VM artifacts (``DOCKERCOURSE_VM_CACHE`` overrides it)."""
    env = os.environ.get("DOCKERCOURSE_VM_CACHE")
    if env:
        p = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        p = Path(base) / "dockercourse" / "vm"
    p.mkdir(parents=True, exist_ok=True)
    return p
