"""The course's pinned images: one definition every chapter, check and tool uses.

Tags exist upstream on Docker Hub and match what Debian bookworm packages ship, so a
learner online (pulled) and offline (built by the image kit from Debian packages)
meets the same names and versions. Notebooks import the constants::

    from dockercourse.core.images import BUSYBOX, DEBIAN
"""

BUSYBOX = "busybox:1.35.0"  # Debian busybox-static 1.35.0
DEBIAN = "debian:bookworm-slim"  # Debian 12 minbase
PYTHON = "python:3.11-slim-bookworm"  # Debian python3 3.11
NGINX = "nginx:1.22"  # Debian nginx 1.22.1
REGISTRY = "registry:2.8"  # Debian docker-registry 2.8.2 (distribution)
BUILDER = "gcc:12"  # Debian gcc-12 + libc6-dev: compiles static binaries

#: role -> pinned reference, in build order (later ones may build on earlier ones).
COURSE_IMAGES = {
    "busybox": BUSYBOX,
    "debian": DEBIAN,
    "python": PYTHON,
    "nginx": NGINX,
    "registry": REGISTRY,
    "builder": BUILDER,
}


#: prefixes Podman writes where Docker's API gives the short ("familiar") form of a name, longest first
_QUALIFIED = ("docker.io/library/", "docker.io/", "localhost/")


def familiar(ref: str) -> str:
    """A name or digest reference as Docker's API shows it: ``busybox:1.35.0``, ``busybox@sha256:...``.

    Podman lists images by their fully qualified names (``docker.io/library/busybox:1.35.0``, and
    ``localhost/dc03-greeting:1.0`` for an image built or tagged locally), where Docker drops Docker
    Hub's ``docker.io/library/`` (chapter 03, *Podman and the docker.io/ prefix*). Cells that compare
    names compare familiar ones, so they say the same on both. A registry with a port
    (``localhost:5000/x``, ``127.0.0.1:PORT/x``) stays: it is part of the name on both.
    """
    for prefix in _QUALIFIED:
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
