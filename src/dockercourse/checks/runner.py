"""Running checks: one exercise, a whole chapter, and the progress summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import requests.exceptions

from dockercourse.checks.api import FAIL, PASS, Ctx, Exercise, NotYet
from dockercourse.checks.loader import load_exercises
from dockercourse.core.namespace import Namespace


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


def run_exercise(
    ex: Exercise,
    client: docker.DockerClient,
    ns: Namespace,
    *,
    hidden: bool = False,
    wait: float | None = None,
) -> Result:
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


def run_chapter(
    chapter: str,
    client: docker.DockerClient,
    ns: Namespace,
    *,
    hidden: bool = False,
    root: Path | None = None,
) -> list[Result]:
    """Run every exercise of a chapter; the results in file order."""
    return [run_exercise(ex, client, ns, hidden=hidden) for ex in load_exercises(chapter, root).values()]


def progress_text(results: list[Result]) -> str:
    done = sum(r.passed for r in results)
    lines = [f"Chapter progress: {done}/{len(results)} exercises passing"]
    lines += ["  " + r.line.replace("\n", "\n  ") for r in results]
    return "\n".join(lines)
