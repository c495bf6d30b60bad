"""Exercise checks: read the engine's state and say pass / not yet, with a hint.

A chapter's checks live in ``checks/NN_slug.py`` and are plain functions::

    from dockercourse.checks import exercise

    @exercise("02.hello", title="Run your first container",
              hint="Run busybox with the command `echo hello`, named name('hello').")
    def hello(ctx):
        c = ctx.container("hello")            # NotYet when there is none
        ctx.require(c.status == "exited", f"it is {c.status}; let it finish")

    @hello.hidden                              # runs only when grading
    def hello_output(ctx):
        ctx.require(b"hello" in ctx.container("hello").logs(), "its output has no 'hello'")

A check raises :class:`NotYet` (through ``ctx.require`` or the lookups) when the
exercise is not done; anything else it raises is reported as "could not check",
never as a traceback. Checks read the engine only, so a learner may solve an
exercise from the notebook, a terminal or the CLI.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
import docker.errors
import requests.exceptions

from .namespace import Namespace, chapter_number
from .probe import http_get_bytes

PASS = "✓"
FAIL = "✗"


class NotYet(Exception):
    """The exercise is not (yet) done; the message says what is missing."""


@dataclass
class Exercise:
    """One exercise: its visible check, hidden checks, title and hint."""

    id: str
    title: str
    hint: str
    func: Callable
    wait: float = 0.0
    hidden_funcs: list[Callable] = field(default_factory=list)

    def hidden(self, func: Callable) -> Callable:
        """Decorator: add a hidden check (run only when grading)."""
        self.hidden_funcs.append(func)
        return func

    def __call__(self, ctx):  # the visible check can be called directly
        return self.func(ctx)


_collecting: dict[str, Exercise] | None = None


def exercise(id: str, *, title: str, hint: str, wait: float = 0.0):
    """Decorator declaring an exercise's visible check.

    Args:
        id: ``"<chapter>.<slug>"``, e.g. ``"02.hello"``; the notebook's check cell names it.
        title: a few words shown with the result.
        hint: what to do when it does not pass (one or two sentences).
        wait: seconds to keep re-checking while it reports NotYet (for state that
            settles asynchronously: a container starting, a health check).
    """

    def deco(func: Callable) -> Exercise:
        ex = Exercise(id=id, title=title, hint=hint, func=func, wait=wait)
        if _collecting is not None:
            if id in _collecting:
                raise ValueError(f"exercise {id} is declared twice")
            _collecting[id] = ex
        return ex

    return deco


# --------------------------------------------------------------------------- context


class Ctx:
    """What a check sees: the engine (through ``client``) and the run's namespace."""

    def __init__(self, client: docker.DockerClient, ns: Namespace):
        self.client = client
        self.ns = ns

    def name(self, short: str) -> str:
        return self.ns.name(short)

    def require(self, condition, message: str) -> None:
        """Raise NotYet(message) unless ``condition`` holds."""
        if not condition:
            raise NotYet(message)

    def container(self, short: str):
        """The container named ``name(short)``; NotYet when there is none."""
        full = self.name(short)
        try:
            c = self.client.containers.get(full)
        except docker.errors.NotFound:
            raise NotYet(f"there is no container named {full}") from None
        return c

    def volume(self, short: str):
        full = self.name(short)
        try:
            return self.client.volumes.get(full)
        except docker.errors.NotFound:
            raise NotYet(f"there is no volume named {full}") from None

    def network(self, short: str):
        full = self.name(short)
        try:
            return self.client.networks.get(full)
        except docker.errors.NotFound:
            raise NotYet(f"there is no network named {full}") from None

    def image(self, ref: str):
        """The image ``ref`` exactly as given (use ``ctx.name("img:v1")`` for a course name)."""
        try:
            return self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            raise NotYet(f"there is no image {ref}") from None

    def exec(self, container, cmd, **kwargs) -> tuple[int, str]:
        """Run ``cmd`` in a running container; (exit code, output text)."""
        container.reload()
        self.require(container.status == "running", f"{container.name} is {container.status}, not running")
        code, out = container.exec_run(cmd, **kwargs)
        return code, (out or b"").decode("utf-8", "replace")

    def read_file(self, container, path: str) -> bytes:
        """The bytes of ``path`` inside a container (running or not), via the archive API."""
        try:
            stream, _ = container.get_archive(path)
        except docker.errors.NotFound:
            raise NotYet(f"{path} does not exist in {container.name}") from None
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise NotYet(f"{path} in {container.name} is not a regular file")
            return tar.extractfile(member).read()

    def published_port(self, container, port: str) -> tuple[str, int]:
        """(host ip, host port) where ``port`` ("80/tcp") of ``container`` is published."""
        container.reload()
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        binding = ports.get(port)
        self.require(binding, f"{container.name} does not publish {port}")
        b = binding[0]
        return (b.get("HostIp") or "127.0.0.1"), int(b["HostPort"])

    def events(self, *, since, type: str | None = None, actor: str | None = None,
               actions: tuple[str, ...] = ()) -> list[dict]:
        """The engine's events (``docker events``) from ``since`` (a container's Created time, a unix time)
        up to now, optionally of one type, one actor (container/image ID) and some actions."""
        import datetime as _dt
        import time as _time

        if isinstance(since, str):  # an engine timestamp, e.g. a container's "Created"
            text = since.rstrip("Z").split(".")[0]
            since = int(_dt.datetime.fromisoformat(text).replace(tzinfo=_dt.timezone.utc).timestamp())
        flt = {}
        if type:
            flt["type"] = [type]
        evs = self.client.events(since=int(since) - 1, until=int(_time.time()) + 1, decode=True, filters=flt)
        return [e for e in evs if (actor is None or (e.get("Actor") or {}).get("ID") == actor)
                and (not actions or e.get("Action") in actions)]

    def http_get(self, host: str, port: int, path: str = "/", timeout: float = 3.0) -> tuple[int, bytes]:
        """GET http://host:port/path on a loopback or course-container address (no retries)."""
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        try:
            return http_get_bytes(port, path, host, wait=0, timeout=timeout)
        except ConnectionError as e:
            raise NotYet(str(e)) from None


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """The outcome of one exercise's checks."""

    exercise: str
    title: str
    passed: bool
    message: str
    hint: str
    hidden: bool = False  # hidden checks were run too (grading)
    error: bool = False  # the check itself could not run

    @property
    def line(self) -> str:
        if self.passed:
            return f"{PASS} {self.exercise} passed: {self.title}"
        text = f"{FAIL} {self.exercise} not yet: {self.message}"
        if self.hint:
            text += f"\n  Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return self.line

    def _ipython_display_(self) -> None:
        # In a notebook the check cell shows exactly the line, as plain text.
        print(self.line)

    def __bool__(self) -> bool:
        return self.passed


# --------------------------------------------------------------------------- loading


def course_root(start: Path | None = None) -> Path:
    """The course folder (the one holding ``checks/`` and ``notebooks/``).

    ``DOCKERCOURSE_ROOT`` wins; then the source checkout this package lives in;
    then the current folder and its parents.
    """
    env = os.environ.get("DOCKERCOURSE_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    if (here / "checks").is_dir():
        return here
    p = (start or Path.cwd()).resolve()
    for cand in [p, *p.parents]:
        if (cand / "checks").is_dir():
            return cand
    raise FileNotFoundError("cannot find the course's checks/ folder; set DOCKERCOURSE_ROOT to the course folder")


def checks_file(chapter: str, root: Path | None = None) -> Path:
    root = root or course_root()
    num = chapter_number(chapter)
    found = sorted((root / "checks").glob(f"{num}_*.py"))
    if not found:
        raise FileNotFoundError(f"no checks file for chapter {num} in {root / 'checks'}")
    return found[0]


def load_exercises(chapter: str, root: Path | None = None) -> dict[str, Exercise]:
    """Load ``checks/NN_*.py`` afresh and return its exercises by id, in file order."""
    global _collecting
    path = checks_file(chapter, root)
    spec = importlib.util.spec_from_file_location(f"dockercourse_checks_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    _collecting = {}
    try:
        spec.loader.exec_module(mod)
        return dict(_collecting)
    finally:
        _collecting = None


# --------------------------------------------------------------------------- running


def _run_one(func: Callable, ctx: Ctx) -> tuple[bool, str, bool]:
    """(passed, message, error) of one check function; never raises."""
    try:
        func(ctx)
        return True, "", False
    except NotYet as e:
        return False, str(e), False
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
        if isinstance(e, docker.errors.APIError):
            return False, f"the engine refused a query ({e.explanation or e})", True
        return False, "the Docker engine does not answer; start it and run the check again", True
    except Exception as e:  # a bug in a check must not show a traceback to a learner
        return False, f"the check could not run ({e.__class__.__name__}: {e})", True


def run_exercise(ex: Exercise, client: docker.DockerClient, ns: Namespace, *, hidden: bool = False,
                 wait: float | None = None) -> Result:
    """Run an exercise's visible check (and hidden ones when ``hidden``), polling up to its wait."""
    ctx = Ctx(client, ns)
    funcs = [ex.func, *(ex.hidden_funcs if hidden else [])]
    deadline = time.monotonic() + (ex.wait if wait is None else wait)
    while True:
        ok, msg, err = True, "", False
        for f in funcs:
            ok, msg, err = _run_one(f, ctx)
            if not ok:
                break
        if ok or err or time.monotonic() >= deadline:
            return Result(ex.id, ex.title, ok, msg, "" if ok else ex.hint, hidden=hidden, error=err)
        time.sleep(0.5)


def run_chapter(chapter: str, client: docker.DockerClient, ns: Namespace, *, hidden: bool = False,
                root: Path | None = None) -> list[Result]:
    """Run every exercise of a chapter; the results in file order."""
    return [run_exercise(ex, client, ns, hidden=hidden) for ex in load_exercises(chapter, root).values()]


def progress_text(results: list[Result]) -> str:
    done = sum(r.passed for r in results)
    lines = [f"Chapter progress: {done}/{len(results)} exercises passing"]
    lines += ["  " + r.line.replace("\n", "\n  ") for r in results]
    return "\n".join(lines)


def _main(argv=None) -> int:  # pragma: no cover - thin CLI, used by `dockercourse check`
    import argparse

    from .engine import connect

    ap = argparse.ArgumentParser(prog="dockercourse check", description="Run a chapter's exercise checks.")
    ap.add_argument("chapter")
    ap.add_argument("exercise", nargs="?")
    ap.add_argument("--hidden", action="store_true", help="also run hidden checks (as the grader does)")
    a = ap.parse_args(argv)
    ns = Namespace.for_chapter(a.chapter)
    client = connect()
    exs = load_exercises(a.chapter)
    if a.exercise:
        key = a.exercise if "." in a.exercise else f"{ns.chapter}.{a.exercise}"
        if key not in exs:
            print(f"no exercise {key}; this chapter has: {', '.join(exs)}", file=sys.stderr)
            return 2
        exs = {key: exs[key]}
    results = [run_exercise(ex, client, ns, hidden=a.hidden) for ex in exs.values()]
    print(progress_text(results))
    return 0 if all(results) else 1
