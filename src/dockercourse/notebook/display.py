"""How errors from the engine and the course show in a learner's notebook: one readable block.

:func:`install_error_display` (called by ``setup()``) makes IPython show a course error, an
engine error (docker-py's) or a lost connection to the engine as one short error output, in the
learner's terms and with what to do, instead of a long traceback.
"""

from __future__ import annotations

import re

import docker
import docker.errors
import requests.exceptions

from dockercourse.core.namespace import stream_error_text
from dockercourse.errors import CourseError, EngineGoneError
from dockercourse.i18n.messages import N_, tr


def explain_error(exc: BaseException) -> str:
    """One readable block for an error from the engine or the course, in the notebook's language."""
    return tr(_explain(exc))


def _explain(exc: BaseException) -> str:
    if isinstance(exc, CourseError):
        return str(exc)
    if podman := _unreadable_refusal(exc):
        return podman
    if isinstance(exc, docker.errors.ImageNotFound):
        return N_(
            f"Image not found: {exc.explanation or exc}.\n"
            "The course's images come from `dockercourse images` (it builds them offline); "
            "check the image name and tag."
        )
    if isinstance(exc, docker.errors.NotFound):
        return N_(
            f"Not found: {exc.explanation or exc}. Check the name "
            "(course names start with the chapter prefix)."
        )
    if isinstance(exc, docker.errors.APIError) and (taken := _name_in_use(exc)):
        return taken
    if isinstance(exc, docker.errors.APIError) and _NO_REGISTRY.search(str(exc.explanation or "")):
        return N_(
            "The image is not on this machine, and the engine could not reach a registry to pull it "
            f"({_NO_REGISTRY.search(str(exc.explanation)).group(0)}).\n"
            "Check the image's name and tag: the course works offline with its own images (BUSYBOX, NGINX, "
            "...; `dockercourse images --check` lists them)."
        )
    if isinstance(exc, docker.errors.APIError) and _COPY_BUG.search(str(exc.explanation or "")):
        return N_(
            f"The engine refused to copy into the container: {exc.explanation}.\n"
            "This is a bug of this Docker build's archive code on Linux kernels before 6.6 "
            "(moby/go-archive#103), not of your command. `dockercourse doctor` checks for it and says "
            "what to use instead (a kernel 6.6 or newer, or another engine)."
        )
    if isinstance(exc, docker.errors.APIError):
        status = exc.response.status_code if exc.response is not None else "?"
        reason = exc.response.reason if exc.response is not None else ""
        return N_(f"The engine refused: {status} {reason}: {exc.explanation or exc}")
    if isinstance(exc, docker.errors.ContainerError):
        err = (exc.stderr or b"").decode("utf-8", "replace").strip() if isinstance(exc.stderr, bytes) else ""
        said = tr(f"The command {exc.command!r} in {exc.image} exited with status {exc.exit_status}.")
        return said + ("\n" + tr(f"Its error output: {err}") if err else "")  # translated in parts
    if isinstance(exc, docker.errors.BuildError):
        return N_(
            f"The build failed: {exc.msg}\n"
            "The steps and their output are above: fix the Dockerfile (or what it copies), then build again."
        )
    if isinstance(exc, (requests.exceptions.ConnectionError, docker.errors.DockerException)):
        return str(
            EngineGoneError(
                N_(
                    "The Docker engine stopped answering. Start it again (scripts/engine-up as root, "
                    "`sudo systemctl start docker`, or Docker Desktop), then re-run the setup cell."
                )
            )
        )
    return f"{exc.__class__.__name__}: {exc}"


def _unreadable_refusal(exc: BaseException) -> str:
    """An engine's refusal docker-py could not read: "" for anything else.

    docker-py takes an error's text from the answer's ``message``. Podman answers some failed pushes and
    pulls (500) in the shape of a progress stream's error, ``{"error": ..., "errorDetail": ...}``, and
    docker-py then raises ``KeyError('message')`` while it builds its APIError."""
    if not isinstance(exc, KeyError) or exc.args != ("message",):
        return ""
    http = exc.__context__
    response = getattr(http, "response", None)
    if not isinstance(http, requests.exceptions.HTTPError) or response is None:
        return ""
    text = stream_error_text(response)
    if not text:
        return ""
    return N_(
        f"The engine refused: {response.status_code} {response.reason}: {text}\n"
        "(docker-py could not read this answer: Podman's Docker API sends it where Docker reports the error "
        "inside the progress stream. The course's `client` turns it into an APIError; a client of your own, "
        "`docker.from_env()`, raises this KeyError, which an `except docker.errors.APIError` does not catch.)"
    )


#: copying into a container (docker cp, put_archive) with Docker's archive code whose chmod fallback for
#: kernels before 6.6 goes through /proc/self/fd, which its chroot does not have (moby/go-archive#103)
_COPY_BUG = re.compile(r"chmod [^:]*: via /proc/self/fd/\d+: no such file or directory")

#: a pull that could not reach the registry (no network, no such host): the image is simply not here
_NO_REGISTRY = re.compile(r"no such host|i/o timeout|network is unreachable|dial tcp[^:]*: connect: [a-z ]+")

_IN_USE = (
    (re.compile(r'container name "/?([^"]+)" is already in use'), "container", "docker rm -f", "containers"),
    (re.compile(r"network with name (\S+) already exists"), "network", "docker network rm", "networks"),
)


def _exercises_using(full_name: str) -> list[str]:
    """The exercises whose names include ``full_name`` (``dc02-hello`` -> ``["02.hello"]``)."""
    m = re.match(r"dc(\d\d)([a-z0-9]*)-(.+)$", full_name)
    if not m:
        return []
    from dockercourse.checks import load_exercises

    try:
        exs = load_exercises(m.group(1))
    except (OSError, ValueError, ImportError):
        return []
    short = m.group(3)
    return [i for i, ex in exs.items() if short in ex.resource_names]


def _name_in_use(exc: docker.errors.APIError) -> str:
    """A name already taken (409): which, and how to start again; "" for other errors."""
    if exc.response is None or exc.response.status_code != 409:
        return ""
    text = str(exc.explanation or "")
    for pattern, kind, rm, coll in _IN_USE:
        m = pattern.search(text)
        if not m:
            continue
        name = m.group(1)
        exs = _exercises_using(name)
        force = "force=True" if kind == "container" else ""
        taken = tr(
            f"The {kind} name {name} is already taken (409 Conflict; by an earlier run of this cell?)."
        )
        just = tr(
            f"remove just that {kind}: client.{coll}.get({name!r}).remove({force}) "
            f"(CLI: {rm} {name}); then run the cell again."
        )
        if exs:
            just = tr(f"Start exercise {exs[0]} again from scratch: course.reset({exs[0]!r}), or {just}")
        return f"{taken}\n{just[:1].upper()}{just[1:]}"  # translated in parts
    return ""


def install_error_display() -> None:
    """In IPython: show course and engine errors as one block, not a traceback."""
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        if isinstance(value, KeyError) and not _unreadable_refusal(value):  # the learner's own KeyError
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        text = explain_error(value)
        stb = [text if isinstance(value, CourseError) else f"{etype.__name__}: {text}"]
        # IPython 9 ignores what a custom handler returns: show it ourselves, as an error output
        # (red in JupyterLab, and "Run All" stops there as after any error)
        shell._showtraceback(etype, value, stb)
        return stb

    ip.set_custom_exc(
        (CourseError, docker.errors.DockerException, requests.exceptions.ConnectionError, KeyError), handler
    )
