"""The check runner: one deterministic line, never a traceback, real engine state."""

import textwrap

import pytest

from dockercourse import checks
from dockercourse.core.engine import connect


@pytest.fixture
def course_dir(tmp_path, monkeypatch):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "97_test.py").write_text(
        textwrap.dedent("""
        from dockercourse.checks import exercise

        @exercise("97.box", title="a container named box", hint="Run one named name('box').")
        def box(ctx):
            c = ctx.container("box")
            ctx.require(c.status == "exited", f"it is {c.status}")

        @box.hidden
        def box_output(ctx):
            ctx.require(b"secret" in ctx.container("box").logs(), "it did not print the secret")

        @exercise("97.broken", title="a check with a bug", hint="-")
        def broken(ctx):
            return 1 / 0
    """)
    )
    monkeypatch.setenv("DOCKERCOURSE_ROOT", str(tmp_path))
    return tmp_path


def test_not_yet_then_pass_then_hidden(engine, busybox, ns, course_dir):
    exs = checks.load_exercises("97")
    assert list(exs) == ["97.box", "97.broken"]
    r = checks.run_exercise(exs["97.box"], engine, ns)
    assert not r.passed and r.line == (
        f"✗ 97.box not yet: there is no container named {ns.name('box')}\n  Hint: Run one named name('box')."
    )
    c = connect(namespace=ns).containers.run(busybox, ["echo", "hello"], name=ns.name("box"), detach=True)
    c.wait()
    assert checks.run_exercise(exs["97.box"], engine, ns).line == "✓ 97.box passed: a container named box"
    hidden = checks.run_exercise(exs["97.box"], engine, ns, hidden=True)
    assert not hidden.passed and "secret" in hidden.message


def test_a_buggy_check_reports_without_traceback(engine, ns, course_dir):
    r = checks.run_exercise(checks.load_exercises("97")["97.broken"], engine, ns)
    assert r.error and not r.passed
    assert "ZeroDivisionError" in r.message and "Traceback" not in r.line


def test_wait_polls_until_state_settles(engine, busybox, ns, course_dir):
    ex = checks.load_exercises("97")["97.box"]
    connect(namespace=ns).containers.run(busybox, ["sh", "-c", "sleep 2"], name=ns.name("box"), detach=True)
    assert not checks.run_exercise(ex, engine, ns, wait=0).passed  # still running
    assert checks.run_exercise(ex, engine, ns, wait=15).passed  # exited within the wait


def test_course_check_unknown_exercise(course_dir, engine):
    from dockercourse.errors import CourseError
    from dockercourse.notebook.course import setup

    course = setup("97", quiet=True)
    with pytest.raises(CourseError, match="No exercise 97.nope"):
        course.check("nope")


def test_check_from_a_terminal_gives_the_hint(engine, ns):
    """`dockercourse check 02 hello` (one exercise) shows what is missing and the hint; the whole chapter
    gives the summary and says how to get an exercise's hint."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKERCOURSE_NS": "t" + os.urandom(3).hex()}
    env.pop("DOCKERCOURSE_ROOT", None)
    one = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "check", "02", "hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert one.returncode == 1, one.stderr
    assert "✗ 02.hello not yet: there is no container named dc02t" in one.stdout
    assert "Hint: Run BUSYBOX" in one.stdout
    whole = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "check", "02"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert whole.returncode == 1 and "Chapter progress: 0/3 exercises passing" in whole.stdout
    assert "For an exercise's hint: dockercourse check 02 EXERCISE" in whole.stdout
