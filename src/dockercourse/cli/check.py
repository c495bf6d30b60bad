"""``dockercourse check CHAPTER [EXERCISE] [--hidden]``: a chapter's exercise checks, from a terminal."""

from __future__ import annotations

from dockercourse.cli._args import chapter, namespace
from dockercourse.errors import CourseError, UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="run a chapter's exercise checks against the engine",
        description=(
            "Run a chapter's exercise checks (checks/NN_*.py) against the engine and print pass / not yet, "
            "with a hint. Exits 1 while an exercise is not done."
        ),
    )
    p.add_argument("chapter", type=chapter, help="the chapter: 02, or 02_core_concepts")
    p.add_argument("exercise", nargs="?", help="only this exercise: hello, or 02.hello (default: all)")
    p.add_argument("--hidden", action="store_true", help="also run hidden checks (as the grader does)")
    p.set_defaults(run=run)


def exercises(num: str, exercise: str | None = None) -> dict:
    """The exercises to run, by id; an unknown chapter or exercise is a UsageError (no engine needed)."""
    from dockercourse.checks import checks_file, course_root, load_exercises

    try:
        root = course_root()
    except FileNotFoundError as e:
        raise CourseError(str(e)) from None
    try:
        checks_file(num, root)
    except FileNotFoundError:
        have = sorted({f.name[:2] for f in (root / "checks").glob("[0-9][0-9]_*.py")})
        raise UsageError(f"no chapter {num}; the course's chapters are {', '.join(have) or 'none'}") from None
    exs = load_exercises(num, root)
    if exercise is None:
        return exs
    key = exercise if "." in exercise else f"{num}.{exercise}"
    if key not in exs:
        raise UsageError(f"no exercise {key}; chapter {num} has: {', '.join(exs) or 'none'}")
    return {key: exs[key]}


def run(args) -> int:
    from dockercourse.checks import progress_text, run_exercise
    from dockercourse.core.engine import connect

    exs = exercises(args.chapter, args.exercise)
    ns = namespace(args.chapter)
    client = connect()
    results = [run_exercise(ex, client, ns, hidden=args.hidden) for ex in exs.values()]
    if len(results) == 1:  # one exercise asked for: what is missing, and the hint
        print(results[0].line)
    else:
        print(progress_text(results))
        if not all(results):
            print(f"For an exercise's hint: dockercourse check {ns.chapter} EXERCISE")
    return 0 if all(results) else 1
