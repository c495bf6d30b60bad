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

from dockercourse.checks.api import FAIL, PASS, Ctx, Exercise, NotYet, exercise
from dockercourse.checks.loader import checks_file, course_root, load_exercises
from dockercourse.checks.runner import Result, progress_text, run_chapter, run_exercise

__all__ = [
    "exercise",
    "NotYet",
    "Ctx",
    "Exercise",
    "Result",
    "PASS",
    "FAIL",
    "course_root",
    "checks_file",
    "load_exercises",
    "run_exercise",
    "run_chapter",
    "progress_text",
]
