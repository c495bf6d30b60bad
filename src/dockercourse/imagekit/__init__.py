"""The image kit: the course's pinned images, online or offline, and the local registry mirror.

    from dockercourse import imagekit
    imagekit.ensure()            # pull (online) or build from Debian packages (offline); seed the mirror
    imagekit.status(client)      # what is there, changes nothing (used by `doctor`)
    imagekit.remove(client)      # the kit's own images, the mirror and its volume

Command line: ``dockercourse images [--offline|--online] [--check] [--remove] [--quiet]``
(:mod:`dockercourse.cli.images`). See docs/image-kit.md.
"""

from __future__ import annotations

from dockercourse.errors import ImageKitError
from dockercourse.imagekit.kit import MODES, ensure, remove
from dockercourse.imagekit.mirror import MirrorStatus
from dockercourse.imagekit.naming import MIRROR_NAME, MIRROR_VOLUME
from dockercourse.imagekit.status import ImageStatus, KitStatus, status

__all__ = [
    "ensure",
    "status",
    "remove",
    "ImageKitError",
    "ImageStatus",
    "KitStatus",
    "MirrorStatus",
    "MODES",
    "MIRROR_NAME",
    "MIRROR_VOLUME",
]
