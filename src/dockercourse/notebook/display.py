"""How errors from the engine and the course show in a learner's notebook: one readable block.

:func:`install_error_display` (called by ``setup()``) makes IPython show a course error, an
engine error (docker-py's) or a lost connection to the engine as one short error output, in the
learner's terms and with what to do, instead of a long traceback.
"""

from __future__ import annotations

import docker
import docker.errors
import requests.exceptions

from dockercourse.errors import CourseError, EngineGoneError


def explain_error(exc: BaseException) -> str:
    """One readable block for an error from the engine or the course."""
    if isinstance(exc, CourseError):
        return str(exc)
    if isinstance(exc, docker.errors.ImageNotFound):
        return (
            f"Image not found: {exc.explanation or exc}.\n"
            "The course's images come from `dockercourse images` (it builds them offline); "
            "check the image name and tag."
        )
    if isinstance(exc, docker.errors.NotFound):
        return (
            f"Not found: {exc.explanation or exc}. Check the name "
            "(course names start with the chapter prefix)."
        )
    if isinstance(exc, docker.errors.APIError):
        status = exc.response.status_code if exc.response is not None else "?"
        reason = exc.response.reason if exc.response is not None else ""
        return f"The engine refused: {status} {reason}: {exc.explanation or exc}"
    if isinstance(exc, docker.errors.ContainerError):
        err = (exc.stderr or b"").decode("utf-8", "replace").strip() if isinstance(exc.stderr, bytes) else ""
        return f"The command {exc.command!r} in {exc.image} exited with status {exc.exit_status}." + (
            f"\nIts error output: {err}" if err else ""
        )
    if isinstance(exc, (requests.exceptions.ConnectionError, docker.errors.DockerException)):
        return str(
            EngineGoneError(
                "The Docker engine stopped answering. Start it again (scripts/engine-up as root, "
                "`sudo systemctl start docker`, or Docker Desktop), then re-run the setup cell."
            )
        )
    return f"{exc.__class__.__name__}: {exc}"


def install_error_display() -> None:
    """In IPython: show course and engine errors as one block, not a traceback."""
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        text = explain_error(value)
        stb = [text if isinstance(value, CourseError) else f"{etype.__name__}: {text}"]
        # IPython 9 ignores what a custom handler returns: show it ourselves, as an error output
        # (red in JupyterLab, and "Run All" stops there as after any error)
        shell._showtraceback(etype, value, stb)
        return stb

    ip.set_custom_exc(
        (CourseError, docker.errors.DockerException, requests.exceptions.ConnectionError), handler
    )
