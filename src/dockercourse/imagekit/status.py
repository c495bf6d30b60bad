"""What the kit reports: one ImageStatus per course image, plus the mirror's state."""

from __future__ import annotations

from dataclasses import dataclass

import docker.errors

from dockercourse.core import labels
from dockercourse.core.images import COURSE_IMAGES
from dockercourse.imagekit import mirror as mirror_mod
from dockercourse.imagekit.mirror import MirrorStatus

NOT_KIT = "present, not made by the kit"


@dataclass
class ImageStatus:
    role: str
    ref: str
    present: bool
    id: str | None = None
    size: int | None = None  # bytes (the image's virtual size)
    source: str = "missing"  # the kit's label text, NOT_KIT, or "missing"
    kit: bool = False  # made by the kit (labelled)
    action: str = ""  # what ensure() did: "verified", "pulled", "built", "used as it is"

    def line(self) -> str:
        if not self.present:
            return f"{self.role:<9} {self.ref:<27} MISSING"
        size = f"{self.size / 1e6:7.1f} MB" if self.size is not None else "      ?"
        return f"{self.role:<9} {self.ref:<27} {self.id[7:19]} {size}  {self.source}"


class KitStatus(list):
    """A list of ImageStatus (in COURSE_IMAGES order) with ``.mirror`` and ``.ok``."""

    mirror: MirrorStatus | None = None

    @property
    def ok(self) -> bool:
        return all(s.present for s in self) and (self.mirror is None or self.mirror.ok)

    def report(self) -> str:
        lines = [s.line() for s in self]
        if self.mirror is not None:
            lines.append(("mirror:   " if self.mirror.ok else "mirror:   PROBLEM: ") + self.mirror.message)
        return "\n".join(lines)


def image_status(client, role: str, ref: str) -> ImageStatus:
    try:
        img = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return ImageStatus(role, ref, False)
    lab = img.labels or {}
    kit = lab.get(labels.KIT) == "1"
    return ImageStatus(
        role,
        ref,
        True,
        id=img.id,
        size=img.attrs.get("Size"),
        source=(lab.get(labels.KIT_SOURCE) or "made by the kit") if kit else NOT_KIT,
        kit=kit,
    )


def status(client) -> KitStatus:
    """Every course image and the mirror, as they are now (changes nothing)."""
    st = KitStatus(image_status(client, r, ref) for r, ref in COURSE_IMAGES.items())
    st.mirror = mirror_mod.check(client, [s.ref for s in st if s.present])
    return st
