"""The Docker engines the course can start and is verified on.

* :mod:`.local` — the course's own engines on this machine (Debian's newer ``docker.io``
  packages unpacked under the course's state folder, or the system's package), started
  and supervised by ``scripts/engine-up``. Standard library only: it runs before the
  course's Python environment exists.
* :mod:`.matrix` — the engine matrix: the whole course verified on each engine in turn.

The VM engine (a Docker engine in a qemu guest) lives in :mod:`dockercourse.vm`.
"""
