"""Running checks: one exercise, a whole chapter, and the progress summary."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import requests.exceptions

from dockercourse.checks.api import FAIL, PASS, Ctx, Exercise, NotYet
from dockercourse.checks.loader import load_exercises
from dockercourse.core.namespace import Namespace
from dockercourse.i18n.messages import N_, tr

_HTML_STYLE = {
    True: "border-left:4px solid #2e7d32;background:#edf7ee;color:#1b5e20",
    False: "border-left:4px solid #c62828;background:#fdeeee;color:#7f1d1d",
}


@dataclass
class Result:
    """The outcome of one exercise's checks.

    A failed result shows the ``nudge`` (where to look) when ``show == "nudge"`` and the
    exercise has one, else the ``hint`` (what to do). In a notebook it shows as a coloured
    ✓/✗ block (HTML), everywhere else (a terminal, nbval's comparison) as its plain :attr:`line`.
    """

    exercise: str
    title: str
    passed: bool
    message: str
    hint: str
    hidden: bool = False  # hidden checks were run too (grading)
    error: bool = False  # the check itself could not run
    nudge: str = ""
    show: str = "hint"  # "nudge" or "hint": which help a failure shows
    credit: float = 0.0  # share of the points for parts done (1 when passed)

    @property
    def help(self) -> tuple[str, str]:
        """(label, text) of the help this failure shows: ("Nudge", ...) or ("Hint", ...)."""
        if self.passed or self.error:
            return "", ""
        if self.show == "nudge" and self.nudge:
            return tr("Nudge"), tr(self.nudge)
        return (tr("Hint"), tr(self.hint)) if self.hint else ("", "")

    @property
    def more(self) -> str:
        """After a nudge: how to ask for the fuller hint."""
        if self.passed or self.error or self.show != "nudge" or not self.nudge:
            return ""
        return tr(f"For a fuller hint, run the check again or check({self.exercise!r}, hint=True).")

    @property
    def line(self) -> str:
        if self.passed:
            return f"{PASS} {self.exercise} {tr('passed')}: {tr(self.title)}"
        text = f"{FAIL} {self.exercise} {tr('not yet')}: {tr(self.message)}"
        label, help_text = self.help
        if help_text:
            text += f"\n  {label}: {help_text}"
        if self.more:
            text += f"\n  {self.more}"
        return text

    def _repr_html_(self) -> str:
        esc = html.escape
        if self.passed:
            body = f"<b>{PASS} {esc(self.exercise)} {esc(tr('passed'))}</b>: {esc(tr(self.title))}"
        else:
            body = f"<b>{FAIL} {esc(self.exercise)} {esc(tr('not yet'))}</b>: {esc(tr(self.message))}"
            label, help_text = self.help
            if help_text:
                body += f"<br><i>{label}:</i> {esc(help_text)}"
            if self.more:
                body += f"<br><small>{esc(self.more)}</small>"
        return f'<div style="{_HTML_STYLE[self.passed]};padding:4px 10px;margin:2px 0">{body}</div>'

    def __repr__(self) -> str:
        return self.line

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": self.line, "text/html": self._repr_html_()}

    def __bool__(self) -> bool:
        return self.passed


def _run_one(func: Callable, ctx: Ctx) -> tuple[bool, str, bool, float]:
    """(passed, message, error, credit) of one check function; never raises."""
    try:
        func(ctx)
        return True, "", False, 1.0
    except NotYet as e:
        return False, str(e), False, getattr(e, "credit", 0.0)
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
        if isinstance(e, docker.errors.APIError):
            return False, N_(f"the engine refused a query ({e.explanation or e})"), True, 0.0
        return False, N_("the Docker engine does not answer; start it and run the check again"), True, 0.0
    except Exception as e:  # a bug in a check must not show a traceback to a learner
        return False, N_(f"the check could not run ({e.__class__.__name__}: {e})"), True, 0.0


def run_exercise(
    ex: Exercise,
    client: docker.DockerClient,
    ns: Namespace,
    *,
    hidden: bool = False,
    wait: float | None = None,
) -> Result:
    """Run an exercise's visible check (and hidden ones when ``hidden``), polling up to its wait.

    A failure's ``credit`` is that of the first check function that failed (a hidden check
    failing after the visible one passed awards what that hidden check says, 0 by default)."""
    ctx = Ctx(client, ns)
    funcs = [ex.func, *(ex.hidden_funcs if hidden else [])]
    deadline = time.monotonic() + (ex.wait if wait is None else wait)
    while True:
        ok, msg, err, credit = True, "", False, 1.0
        for f in funcs:
            ok, msg, err, credit = _run_one(f, ctx)
            if not ok:
                break
        if ok or err or time.monotonic() >= deadline:
            return Result(
                ex.id,
                ex.title,
                ok,
                msg,
                "" if ok else ex.hint,
                hidden=hidden,
                error=err,
                nudge=ex.nudge,
                credit=credit,
            )
        time.sleep(0.5)


def run_chapter(
    chapter: str,
    client: docker.DockerClient,
    ns: Namespace,
    *,
    hidden: bool = False,
    root: Path | None = None,
) -> list[Result]:
    """Run every exercise of a chapter, several at once (each only reads the engine's state, or makes
    nameless helpers of its own); the results in file order."""
    exercises = list(load_exercises(chapter, root).values())
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(exercises)))) as pool:
        return list(pool.map(lambda ex: run_exercise(ex, client, ns, hidden=hidden), exercises))


def progress_text(results: list[Result]) -> str:
    done = sum(r.passed for r in results)
    lines = [tr(f"Chapter progress: {done}/{len(results)} exercises passing")]
    lines += [
        f"  {PASS} {r.exercise}: {tr(r.title)}"
        if r.passed
        else f"  {FAIL} {r.exercise}: {tr(r.title)} ({tr('not yet')}: {tr(r.message)})"
        for r in results
    ]
    return "\n".join(lines)
