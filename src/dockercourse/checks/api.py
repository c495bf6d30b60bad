"""The API a chapter's checks are written in: ``@exercise``, ``ctx`` and ``NotYet``."""

from __future__ import annotations

import ast
import inspect
import io
import tarfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors

from dockercourse.core.namespace import Namespace
from dockercourse.lessonkit.probe import http_get_bytes

PASS = "✓"

FAIL = "✗"


class NotYet(Exception):
    """The exercise is not (yet) done; the message says what is missing.

    ``credit`` (0 to 1, default 0) is the share of the exercise's points a grader awards for
    the parts already done, e.g. ``NotYet("... its storage is not on a named volume",
    credit=0.5)`` when the registry runs but keeps its data in the container.
    """

    def __init__(self, message: str = "", *, credit: float = 0.0):
        super().__init__(message)
        if not 0.0 <= float(credit) < 1.0:
            raise ValueError(f"NotYet credit must be at least 0 and below 1, not {credit!r}")
        self.credit = float(credit)


#: While a checks file is being loaded (checks.loader): the exercises it declares, by id.
_collecting: dict[str, Exercise] | None = None


#: ``ctx`` methods whose first argument is a course name's short form (``ctx.container("web")``)
_NAMING_METHODS = ("container", "volume", "network", "name")


def _short_names(func: Callable) -> list[str]:
    """The short names a check function looks up: the string constants given to
    ``ctx.container/volume/network/name(...)`` and to the checks file's own helpers called
    as ``helper(ctx, "short", ...)``. Names built at run time (``f"lat-{i}"``) are not seen:
    such an exercise lists them in ``names=``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return []
    found: list[str] = []
    calls = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset)
    )
    for node in calls:
        if not node.args:
            continue
        f, args = node.func, node.args
        if isinstance(f, ast.Attribute) and f.attr in _NAMING_METHODS:
            if isinstance(f.value, ast.Name) and f.value.id == "ctx":
                cands = args[:1]
            else:
                continue
        elif isinstance(f, ast.Name) and isinstance(args[0], ast.Name) and args[0].id == "ctx":
            cands = args[1:2]
        else:
            continue
        for a in cands:
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value not in found:
                found.append(a.value)
    return found


@dataclass
class Exercise:
    """One exercise: its visible check, hidden checks, title, nudge and hint.

    ``nudge`` is shown on a learner's first failed check (where to look, not the answer);
    ``hint`` (what to do) from the second on, or when asked for; the solution itself stays in
    the notebook's collapsed solution cell. ``names`` are the short names of what the exercise
    makes (``"hello"`` for ``dc02-hello``): ``course.reset()`` removes them. When not given,
    they are read from the check functions (:attr:`resource_names`).
    """

    id: str
    title: str
    hint: str
    func: Callable
    wait: float = 0.0
    hidden_funcs: list[Callable] = field(default_factory=list)
    nudge: str = ""
    names: tuple[str, ...] = ()
    points: float = 1.0

    @property
    def resource_names(self) -> list[str]:
        """Short names of the containers, volumes, networks and image repositories this
        exercise makes (``names=`` when declared, else those its checks look up)."""
        if self.names:
            return list(self.names)
        out: list[str] = []
        for f in [self.func, *self.hidden_funcs]:
            out += [n for n in _short_names(f) if n not in out]
        return out

    def hidden(self, func: Callable) -> Callable:
        """Decorator: add a hidden check (run only when grading)."""
        self.hidden_funcs.append(func)
        return func

    def __call__(self, ctx):  # the visible check can be called directly
        return self.func(ctx)


def exercise(
    id: str,
    *,
    title: str,
    hint: str,
    nudge: str = "",
    names: tuple[str, ...] | list[str] = (),
    wait: float = 0.0,
    points: float = 1,
):
    """Decorator declaring an exercise's visible check.

    Args:
        id: ``"<chapter>.<slug>"``, e.g. ``"02.hello"``; the notebook's check cell names it.
        title: a few words shown with the result.
        hint: what to do when it does not pass (one or two sentences); shown from the second
            failed check on, or when asked for.
        nudge: one sentence for the first failed check: where to look, not the answer.
        names: short names of what the exercise makes, when the checks build them at run
            time (see :attr:`Exercise.resource_names`).
        wait: seconds to keep re-checking while it reports NotYet (for state that
            settles asynchronously: a container starting, a health check).
        points: what the exercise is worth when graded (default 1). A check may award part
            of them for parts done: ``raise NotYet(message, credit=0.5)``.
    """
    if not float(points) > 0:
        raise ValueError(f"exercise {id}: points must be above 0, not {points!r}")

    def deco(func: Callable) -> Exercise:
        ex = Exercise(
            id=id,
            title=title,
            hint=hint,
            func=func,
            wait=wait,
            nudge=nudge,
            names=tuple(names),
            points=float(points),
        )
        if _collecting is not None:
            if id in _collecting:
                raise ValueError(f"exercise {id} is declared twice")
            _collecting[id] = ex
        return ex

    return deco


class Ctx:
    """What a check sees: the engine (through ``client``) and the run's namespace."""

    def __init__(self, client: docker.DockerClient, ns: Namespace):
        self.client = client
        self.ns = ns
        self._events_kept: bool | None = None

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

    def events(
        self, *, since, type: str | None = None, actor: str | None = None, actions: tuple[str, ...] = ()
    ) -> list[dict]:
        """The engine's events (``docker events``) from ``since`` (a container's Created time, a unix time)
        up to now, optionally of one type, one actor (container/image ID) and some actions
        (``exec_start`` matches ``exec_start: sh -c ...``)."""
        import datetime as _dt

        if isinstance(since, str):  # an engine timestamp, e.g. a container's "Created"
            text = since.rstrip("Z").split(".")[0]
            since = int(_dt.datetime.fromisoformat(text).replace(tzinfo=_dt.UTC).timestamp())
        flt = {}
        if type:
            flt["type"] = [type]
        evs = self.client.events(since=int(since) - 1, until=self.engine_now(), decode=True, filters=flt)
        return [
            e
            for e in evs
            if (actor is None or (e.get("Actor") or {}).get("ID") == actor)
            and (not actions or (e.get("Action") or "").split(":")[0] in actions)
        ]

    def engine_now(self) -> str:
        """The engine's clock now, as ``docker events --until`` takes it (``seconds.nanoseconds``).

        A bound in the future makes the engine hold the stream open until then (a second per check
        with ``int(time.time()) + 1``), and a VM engine's clock is not the host's."""
        import datetime as _dt
        import re as _re
        import time as _time

        text = str((self.client.info() or {}).get("SystemTime") or "")
        m = _re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|[+-]\d\d:\d\d)", text)
        if not m:  # an engine that does not say its time: the host's, a second ahead
            return str(int(_time.time()) + 1)
        when = _dt.datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00"))
        return f"{int(when.timestamp())}.{(m.group(2) or '0').ljust(9, '0')}"

    def events_kept(self) -> bool:
        """Whether this engine reports the events the checks judge by (``exec_start``,
        ``extract-to-dir``, ``kill`` with its signal, ``stop``, ``pull``): Docker does; Podman's
        Docker-compatible API does not report them all, so a check there looks at the state only."""
        if self._events_kept is None:
            comps = (self.client.version() or {}).get("Components") or []
            self._events_kept = not any("podman" in (c.get("Name") or "").lower() for c in comps)
        return self._events_kept

    def http_get(self, host: str, port: int, path: str = "/", timeout: float = 3.0) -> tuple[int, bytes]:
        """GET http://host:port/path on a loopback or course-container address (no retries)."""
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        try:
            return http_get_bytes(port, path, host, wait=0, timeout=timeout)
        except ConnectionError as e:
            raise NotYet(str(e)) from None
