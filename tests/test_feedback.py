"""Feedback of a check, without an engine: nudge first, hint on asking again, ✓/✗ as HTML and
text; every exercise knows the names it makes (``course.reset``)."""

from __future__ import annotations

import re

import pytest

from dockercourse.checks import Result, load_exercises, progress_text
from dockercourse.checks.api import Exercise, _short_names
from dockercourse.checks.loader import course_root
from dockercourse.core import chapters

pytestmark = pytest.mark.unit


def _failed(show: str, nudge: str = "Look at containers.run.") -> Result:
    return Result(
        "02.hello",
        "run it",
        False,
        "there is no container named dc02-hello",
        "Run BUSYBOX named name('hello') (CLI: docker run ...).",
        nudge=nudge,
        show=show,
    )


def test_first_failure_nudges_without_the_answer():
    r = _failed("nudge")
    assert r.line.splitlines() == [
        "✗ 02.hello not yet: there is no container named dc02-hello",
        "  Nudge: Look at containers.run.",
        "  For a fuller hint, run the check again or check('02.hello', hint=True).",
    ]
    assert "docker run" not in r.line and "Hint" not in r.line
    html = r._repr_mimebundle_()["text/html"]
    assert "✗" in html and "#c62828" in html and "Nudge" in html and "docker run" not in html


def test_asking_again_gives_the_hint():
    r = _failed("hint")
    assert r.line.splitlines()[1] == "  Hint: Run BUSYBOX named name('hello') (CLI: docker run ...)."
    assert "fuller hint" not in r.line
    assert _failed("nudge", nudge="").line == r.line  # no nudge written: the hint at once


def test_passed_and_errors_show_no_help():
    ok = Result("02.hello", "run it", True, "", "", nudge="n", show="nudge")
    assert ok.line == "✓ 02.hello passed: run it"
    bundle = ok._repr_mimebundle_()
    assert bundle["text/plain"] == ok.line and "#2e7d32" in bundle["text/html"]
    err = Result("02.hello", "run it", False, "the Docker engine does not answer", "h", error=True, nudge="n")
    assert err.line == "✗ 02.hello not yet: the Docker engine does not answer"


def test_html_escapes_what_the_engine_said():
    r = Result("02.x", "t", False, "its output is '<script>'", "h")
    assert "<script>" not in r._repr_html_() and "&lt;script&gt;" in r._repr_html_()


def test_progress_is_a_summary_without_hints():
    text = progress_text([Result("02.a", "first", True, "", ""), _failed("hint")])
    assert text.splitlines() == [
        "Chapter progress: 1/2 exercises passing",
        "  ✓ 02.a: first",
        "  ✗ 02.hello: run it (not yet: there is no container named dc02-hello)",
    ]


def test_names_read_from_the_checks():
    def check(ctx):
        c = ctx.container("web")
        ctx.image(ctx.name("img") + ":1")
        ctx.volume("data"), ctx.network("net")
        _helper(ctx, "reg", 5)
        other.container("not-ctx")  # noqa: F821 (never run)
        ctx.container(f"dyn-{c}")

    assert _short_names(check) == ["web", "img", "data", "net", "reg"]
    ex = Exercise("99.x", "t", "h", check, names=("a", "b"))
    assert ex.resource_names == ["a", "b"]


def _helper(ctx, short, n):
    return ctx, short, n


@pytest.mark.parametrize("chapter", [c.number for c in chapters.load(course_root())])
def test_every_exercise_has_a_nudge_and_names(chapter):
    for ex_id, ex in load_exercises(chapter).items():
        assert ex.nudge and ex.nudge != ex.hint, f"{ex_id} has no nudge"
        assert ex.resource_names, f"{ex_id}: no names for course.reset (give names=...)"
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", n) for n in ex.resource_names), ex.resource_names
        # a nudge points the way; it does not hand over the course name or a command line
        assert "name('" not in ex.nudge and "dc" + chapter + "-" not in ex.nudge, ex_id


def test_points_and_partial_credit_are_declared_and_bounded():
    from dockercourse.checks import NotYet
    from dockercourse.checks.api import exercise
    from dockercourse.checks.runner import _run_one

    @exercise("99.demo", title="demo", hint="do it", points=3)
    def demo(ctx):
        raise NotYet("the registry runs, but its storage is not on the volume", credit=0.5)

    assert demo.points == 3.0
    assert _run_one(demo.func, None) == (
        False,
        "the registry runs, but its storage is not on the volume",
        False,
        0.5,
    )
    assert NotYet("plain").credit == 0.0 and str(NotYet("plain")) == "plain"
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="credit"):
            NotYet("x", credit=bad)
    with pytest.raises(ValueError, match="points"):
        exercise("99.zero", title="t", hint="h", points=0)
    # the course's exercises: 1 point each unless declared, 05.registry 2 with half for a running registry
    points = {
        e.id: e.points
        for ch in chapters.load(course_root())
        for e in load_exercises(ch.number, course_root()).values()
    }
    assert points["05.registry"] == 2 and points["02.hello"] == 1
