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

import re
import socket
import sys

from dockercourse import checks as _checks
from dockercourse import config
from dockercourse.core import labels as L
from dockercourse.core.cleanup import clean_chapter, leftovers, remove_names
from dockercourse.core.engine import connect, engine_info
from dockercourse.core.namespace import Namespace
from dockercourse.errors import CourseError, NoEngineError
from dockercourse.i18n.messages import set_language, tr
from dockercourse.notebook import cli as _cli
from dockercourse.notebook import folders as _folders
from dockercourse.notebook.display import install_error_display


class _NoEngine:
    """Stands in for the client when no engine answers: every use says so in one line."""

    def __init__(self, message: str):
        self._message = message

    def __getattr__(self, item):
        raise NoEngineError(
            tr("No Docker engine: see the setup cell at the top of this notebook for what to do.")
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


def _map_shell_names(ns: Namespace) -> None:
    """In a grading run: ``!docker run --name dc02-hello ...`` in a cell acts on the run's names
    (``dc02g3-hello``), like the course client does (:meth:`Namespace.map_names`)."""
    if not ns.tag:
        return
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return
    for attr in ("system", "getoutput"):  # `!cmd` and `x = !cmd`
        orig = getattr(ip, attr)
        if getattr(orig, "dockercourse_mapped", False):
            continue

        def mapped(cmd, *args, _orig=orig, **kwargs):
            # Expand {var} and $var where the learner wrote them (their cell or function), as IPython
            # would without this wrapper; map the course names in the result, as the course client
            # maps them in an API call (a name held in a variable too; a folder such as
            # /tmp/dc06-x1y2 is a path, not a name, and stays); escape the result so that IPython's
            # own expansion leaves it as it is.
            text = ns.map_names(ip.var_expand(cmd, depth=1))
            text = re.sub(r"\$(?=[\w.])", "$$", text.replace("{", "{{").replace("}", "}}"))
            return _orig(text, *args, **kwargs)

        mapped.dockercourse_mapped = True
        setattr(ip, attr, mapped)


class Course:
    """One chapter's session: the client, names, ports, checks and cleanup."""

    def __init__(self, chapter: str, ns: Namespace, client, info=None):
        self.chapter = ns.chapter
        self.ns = ns
        self.client = client
        self.info = info
        self.results: list[_checks.Result] = []  # of the last progress()
        self.clean_report = None  # of the last cleanup()
        self._failures: dict[str, int] = {}  # failed checks per exercise (nudge, then hint)

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

    def folder(self, word: str):
        """A new private temporary folder for this chapter's files (``folder("build")`` ->
        ``/tmp/dc08-build-<pid>-<random>``): removed by :meth:`cleanup`, when the kernel stops, or by
        the next ``setup()`` after a crash (:mod:`dockercourse.notebook.folders`)."""
        return _folders.make(self.prefix, word)

    def free_port(self) -> int:
        """A free TCP port on 127.0.0.1 (never assume 8080 or 5000 is free)."""
        return free_port()

    def link(self, port: int, path: str = "/", text: str = ""):
        """A link the learner can click to a page published on ``127.0.0.1:port`` (through the
        hub's proxy on a JupyterHub or Binder); see :mod:`dockercourse.notebook.links`."""
        from dockercourse.notebook.links import link

        return link(port, path, text)

    def _exercise(self, exercise: str) -> _checks.Exercise:
        """The exercise ``"02.hello"`` (or ``"hello"`` in this chapter); one clear line when there
        is no such exercise or the chapter has no checks."""
        ex_id = exercise if "." in str(exercise) else f"{self.chapter}.{exercise}"
        try:
            exs = _checks.load_exercises(ex_id.split(".", 1)[0])
        except (FileNotFoundError, ValueError) as e:
            raise CourseError(tr(f"No checks for {exercise!r}: {e}.")) from None
        if ex_id in exs and not ex_id.startswith(self.chapter + "."):
            raise CourseError(
                tr(
                    f"{ex_id} is an exercise of chapter {ex_id.split('.')[0]}: check it in that chapter's "
                    f"notebook (this one is chapter {self.chapter})."
                )
            )
        if ex_id not in exs:
            chapter, have = ex_id.split(".")[0], ", ".join(exs)
            raise CourseError(tr(f"No exercise {ex_id}; chapter {chapter} has: {have}."))
        return exs[ex_id]

    def check(self, exercise: str, hint: bool = False) -> _checks.Result:
        """Run one exercise's check and show the result: passed, or not yet with what is wrong.

        The first failure adds a nudge (where to look); a second failure, or ``hint=True``,
        the fuller hint. The solution itself is in the collapsed cell below the exercise.
        """
        ex = self._exercise(exercise)
        if not self.connected:
            raise NoEngineError(
                tr("No Docker engine, so the check cannot look at its state (see the setup cell).")
            )
        res = _checks.run_exercise(ex, self.client, self.ns)
        if not res.passed and not res.error:
            self._failures[ex.id] = self._failures.get(ex.id, 0) + 1
            res.show = "hint" if hint or self._failures[ex.id] > 1 else "nudge"
        return res

    def reset(self, exercise: str) -> None:
        """Start an exercise again: remove what it made (its containers, volumes, networks and
        image names, ``dc02-hello`` for ``02.hello``) and nothing else.

        Resources with the chapter's names count as the chapter's even without the course's
        label (made from a terminal); nothing without the chapter's prefix is ever touched.
        """
        ex = self._exercise(exercise)
        if not self.connected:
            raise NoEngineError(tr("No Docker engine, so there is nothing to reset (see the setup cell)."))
        names = [self.name(n) for n in ex.resource_names]
        rep = remove_names(self.client, names, self.ns)
        self._failures.pop(ex.id, None)
        done = rep.summary() if rep.total else tr("nothing was there")
        print(tr(f"Reset {ex.id} ({', '.join(names)}): {done}. Run the exercise's cells again."))
        if rep.errors:
            print(tr(f"Not removed: {'; '.join(rep.errors)}"))

    def progress(self) -> None:
        """Check every exercise of the chapter and print a summary (3/5 passing ...).

        The results stay in ``course.results``.
        """
        if not self.connected:
            raise NoEngineError(tr("No Docker engine, so progress cannot be checked (see the setup cell)."))
        self.results = _checks.run_chapter(self.chapter, self.client, self.ns)
        print(_checks.progress_text(self.results))

    def cleanup(self, quiet: bool = False) -> None:
        """Remove everything this chapter made on the engine: what carries its label, and what
        carries its names (``dc02-…``, also when made from a terminal). Nothing else.

        What was removed stays in ``course.clean_report``. The chapter's temporary folders
        (:meth:`folder`) go too.
        """
        if not self.connected:
            _folders.remove_made(self.prefix)
            raise NoEngineError(tr("No Docker engine, so there is nothing to clean (see the setup cell)."))
        rep = self.clean_report = clean_chapter(self.client, self.ns)
        left = leftovers(self.client, namespace=self.ns)
        folders = _folders.remove_made(self.prefix)
        if not quiet:
            print(tr(f"Cleanup of chapter {self.chapter}: {rep.summary()}."))
            rest = sum(len(v) for v in left.values())
            print(tr(f"Course resources of this chapter left on the engine: {rest}."))
            if folders:
                print(tr(f"Temporary folders of this chapter removed: {folders}."))


def setup(chapter: str, *, clean_start: bool = True, quiet: bool = False, lang: str | None = None) -> Course:
    """Start a chapter: connect, show the engine, clear this chapter's leftovers.

    Args:
        chapter: ``"02"`` or ``"02_core_concepts"``.
        clean_start: remove what an earlier run of this chapter left: what carries its label
            or its names (``dc02-…``), so yesterday's answer neither passes today's check nor
            blocks today's.
        quiet: print nothing.
        lang: the language of what the course prints (``"zh"``, ``"en"``); by default
            ``DOCKERCOURSE_LANG``, else the notebook's folder (``notebooks/zh/``), else English
            (:mod:`dockercourse.i18n.messages`).

    Returns:
        A :class:`Course`. With no engine it still returns one (so the notebook reads
        on), prints what to do, and every later use of ``client`` says so in one line.
    """
    set_language(lang)  # a language the course does not have: one line, before anything is done
    install_error_display()
    ns = Namespace.for_chapter(chapter)
    _map_shell_names(ns)
    if clean_start:
        _folders.remove_stale(ns.prefix)  # a crashed run's temporary folders (its kernel is gone)
    _wait_for_vm_engine(quiet)
    try:
        client = connect(namespace=ns)
    except NoEngineError as e:
        if not quiet:
            print(tr(str(e)), file=sys.stderr)
        _cli.register(_cli.Runner(_cli.find_cli(), ns))  # %docker then says what the CLI says
        return Course(chapter, ns, _NoEngine(str(e)))
    info = engine_info(client)
    _export_docker_host(info.base_url)
    course = Course(chapter, ns, client, info)
    docker_cli = _cli.find_cli(info.base_url)
    _cli.register(_cli.Runner(docker_cli, ns, info.base_url))
    if not quiet:
        print(
            tr(
                f"Engine: {info.kind} {info.server_version} (API {info.api_version}), {info.os}, "
                f"{info.arch}; {tr(info.store_text)}, cgroup v{info.cgroup_version}"
            )
        )
        print(_cli.banner(docker_cli))
        print(
            tr(
                f"Chapter {ns.chapter}: course names start with {ns.prefix!r}; everything created here "
                f"carries the label {L.CHAPTER}={ns.chapter}."
            )
        )
    if clean_start:
        rep = clean_chapter(client, ns)
        if not quiet:
            left = tr("none") if not rep.total and not rep.errors else rep.summary()
            print(tr(f"Leftovers of an earlier run: {left}."))
    return course
