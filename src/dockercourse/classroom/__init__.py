"""A class on one machine: JupyterHub, each student a system user with a Docker engine of their own.

    dockercourse classroom up --users 4          # student1 … student4, passwords in a root-only file
    dockercourse classroom status
    dockercourse classroom down                  # the hub, every student's server, engine and user

* :mod:`.students` makes and removes the students (system users with subordinate ids and a copy of
  the course in their home); nothing else is ever touched.
* :mod:`.hub` writes JupyterHub's configuration and starts and stops the hub (from PyPI) with
  configurable-http-proxy (from npm).
* :mod:`.hooks` runs in the hub: a student's server start starts the student's own rootless
  ``dockerd`` (rootlesskit + slirp4netns, the grader's isolation tier) with the course images
  from the course mirror, and its stop stops that engine and everything the student ran.

See docs/classroom.md for the tiers, which engine to choose, and the sizing.
"""

from __future__ import annotations

from pathlib import Path


def state_root() -> Path:
    """Where the classroom keeps its hub, students and secrets (root's, mode 711)."""
    from dockercourse.engines.packages import SYSTEM_HOME

    return SYSTEM_HOME / "classroom"
