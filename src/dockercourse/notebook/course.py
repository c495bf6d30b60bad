"""The notebook side of the course: one ``setup()`` call per chapter.

The setup cell of every chapter is::

    from dockercourse import setup
    course = setup("02")
    client, name, check = course.client, course.name, course.check

``setup`` connects to the engine, prints which engine it is, removes what an
earlier (maybe crashed) run of this chapter left behind, and makes errors from
the engine show as one readable block instead of a traceback. ``client`` is a
plain ``docker.DockerClient`` whose containers, volumes, networks and images
carry the chapter's labels; ``name("web")`` gives the chapter's ``dc02-web``.
"""

from __future__ import annotations

import socket
import sys

from dockercourse import checks as _checks
from dockercourse import config
from dockercourse.core import labels as L
from dockercourse.core.cleanup import clean, leftovers, unlabelled_lookalikes
from dockercourse.core.engine import connect, engine_info
from dockercourse.core.namespace import Namespace
from dockercourse.errors import CourseError, NoEngineError
from dockercourse.notebook.display import install_error_display


class _NoEngine:
    """Stands in for the client when no engine answers: every use says so in one line."""

    def __init__(self, message: str):
        self._message = message

    def __getattr__(self, item):
        raise NoEngineError(
            "No Docker engine: see the setup cell at the top of this notebook for what to do."
        )

    def __repr__(self) -> str:
        return "<no Docker engine>"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_for_vm_engine(quiet: bool) -> None:
    """On Binder, binder/start boots the engine in a VM in the background: wait for it.

    Shows one updating progress line; returns at once for any other engine.
    """
    import os

    if config.get("DOCKERCOURSE_ENGINE") != "vm" or not os.environ.get("DOCKER_HOST", "").startswith(
        "tcp://"
    ):
        return
    from dockercourse.vm.engine import wait_ready

    wait_ready(progress=None if not quiet else (lambda text: None))


def _export_docker_host(base_url: str) -> None:
    """Point ``!docker ...`` in the notebook's cells at the engine the course found.

    The course finds engines on sockets the ``docker`` command does not look at by itself (the
    course's own engine's socket, a rootless or Podman socket); the kernel's environment then
    says where, for the commands the notebook runs. The default socket needs nothing.
    """
    import os

    if (
        not os.environ.get("DOCKER_HOST")
        and base_url.startswith(("unix://", "tcp://"))
        and base_url != "unix:///var/run/docker.sock"
    ):
        os.environ["DOCKER_HOST"] = base_url


class Course:
    """One chapter's session: the client, names, ports, checks and cleanup."""

    def __init__(self, chapter: str, ns: Namespace, client, info=None):
        self.chapter = ns.chapter
        self.ns = ns
        self.client = client
        self.info = info
        self.results: list[_checks.Result] = []  # of the last progress()
        self.clean_report = None  # of the last cleanup()

    @property
    def connected(self) -> bool:
        return not isinstance(self.client, _NoEngine)

    @property
    def prefix(self) -> str:
        return self.ns.prefix

    @property
    def labels(self) -> dict[str, str]:
        return self.ns.labels

    def name(self, short: str) -> str:
        """The chapter's name for a resource: ``name("web") -> "dc02-web"``."""
        return self.ns.name(short)

    def free_port(self) -> int:
        """A free TCP port on 127.0.0.1 (never assume 8080 or 5000 is free)."""
        return free_port()

    def check(self, exercise: str) -> _checks.Result:
        """Run one exercise's check: one line (passed, or not yet with a hint); returns the result."""
        ex_id = exercise if "." in exercise else f"{self.chapter}.{exercise}"
        try:
            exs = _checks.load_exercises(self.chapter)
        except FileNotFoundError as e:
            raise CourseError(str(e)) from None
        if ex_id not in exs:
            raise CourseError(f"No exercise {ex_id} in chapter {self.chapter}; it has: {', '.join(exs)}")
        if not self.connected:
            raise NoEngineError(
                "No Docker engine, so the check cannot look at its state (see the setup cell)."
            )
        return _checks.run_exercise(exs[ex_id], self.client, self.ns)

    def progress(self) -> None:
        """Check every exercise of the chapter and print a summary (3/5 passing ...).

        The results stay in ``course.results``.
        """
        if not self.connected:
            raise NoEngineError("No Docker engine, so progress cannot be checked (see the setup cell).")
        self.results = _checks.run_chapter(self.chapter, self.client, self.ns)
        print(_checks.progress_text(self.results))

    def cleanup(self, quiet: bool = False) -> None:
        """Remove everything this chapter created on the engine (by label only).

        What was removed stays in ``course.clean_report``.
        """
        if not self.connected:
            raise NoEngineError("No Docker engine, so there is nothing to clean (see the setup cell).")
        rep = self.clean_report = clean(self.client, namespace=self.ns)
        left = leftovers(self.client, namespace=self.ns)
        mine = unlabelled_lookalikes(self.client, self.ns)
        if not quiet:
            print(f"Cleanup of chapter {self.chapter}: {rep.summary()}.")
            rest = sum(len(v) for v in left.values())
            print(f"Course resources of this chapter left on the engine: {rest}.")
            if mine:
                print(
                    "Not removed (no course label, so probably made by you from a terminal): "
                    + ", ".join(mine)
                    + ". Remove them yourself if you no longer need them."
                )


def setup(chapter: str, *, clean_start: bool = True, quiet: bool = False) -> Course:
    """Start a chapter: connect, show the engine, clear this chapter's leftovers.

    Args:
        chapter: ``"02"`` or ``"02_core_concepts"``.
        clean_start: remove what an earlier run of this chapter left (labelled only).
        quiet: print nothing.

    Returns:
        A :class:`Course`. With no engine it still returns one (so the notebook reads
        on), prints what to do, and every later use of ``client`` says so in one line.
    """
    install_error_display()
    ns = Namespace.for_chapter(chapter)
    _wait_for_vm_engine(quiet)
    try:
        client = connect(namespace=ns)
    except NoEngineError as e:
        if not quiet:
            print(str(e), file=sys.stderr)
        return Course(chapter, ns, _NoEngine(str(e)))
    info = engine_info(client)
    _export_docker_host(info.base_url)
    course = Course(chapter, ns, client, info)
    if not quiet:
        print(
            f"Engine: {info.kind} {info.server_version} (API {info.api_version}), {info.os}, {info.arch}; "
            f"{info.store_text}, cgroup v{info.cgroup_version}"
        )
        print(
            f"Chapter {ns.chapter}: course names start with {ns.prefix!r}; everything created here "
            f"carries the label {L.CHAPTER}={ns.chapter}."
        )
    if clean_start:
        rep = clean(client, namespace=ns)
        if not quiet:
            print(
                "Leftovers of an earlier run: "
                + ("none." if not rep.total and not rep.errors else rep.summary() + ".")
            )
    return course
