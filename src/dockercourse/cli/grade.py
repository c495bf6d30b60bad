"""``dockercourse grade SUBMISSIONS``: grade a folder of submitted notebooks (one per student),
or the zip file an LMS exported.

    dockercourse grade SUBMISSIONS [--out DIR] [--chapter N] [-j N] [--force]
                       [--cell-timeout S] [--timeout S] [--root DIR] [--kernel NAME]
                       [--no-progress] [--engine auto|rootless|vm|host [--trust-submissions]]
                       [--vm-memory MB]
                       [--map CSV] [--deadline TIME] [--late-policy POLICY] [--grace MIN]
                       [--gradebook FILE | --no-gradebook] [--release-feedback DIR]

The work is :func:`dockercourse.grading.batch.grade_folder`; a zip (or ``--map``,
``--deadline``) goes through :mod:`dockercourse.grading.intake` first. See docs/grading.md.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dockercourse.cli._args import chapter
from dockercourse.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "grade",
        help="grade a folder of submitted notebooks",
        description="Grade a folder of submitted notebooks (one per student): each runs cell by "
        "cell in a fresh kernel and namespace, its checks are run by the grader. "
        "Writes grades.csv, feedback/<student>.html and results/<student>.json.",
    )
    p.add_argument(
        "submissions",
        type=Path,
        help="folder of submitted notebooks (any file names), or the .zip an LMS (Canvas, Moodle) exported",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <submissions>-grades)")
    p.add_argument(
        "--chapter",
        type=chapter,
        default=None,
        help="chapter to grade (default: from the notebooks' metadata)",
    )
    p.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--force", action="store_true", help="grade again submissions already graded in --out")
    p.add_argument("--cell-timeout", type=float, default=60, help="seconds one cell may run (default 60)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one submission may run (default 600)")
    p.add_argument(
        "--root", type=Path, default=None, help="the course folder holding checks/ (default: found)"
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel to run the cells in (default python3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--engine",
        choices=("auto", "rootless", "vm", "host"),
        default="auto",
        help="where submissions run. rootless: each worker gets a throwaway user and its own rootless "
        "engine (needs root; native speed); vm: each worker gets its own engine in a qemu VM (no "
        "privileges; slower without KVM); auto (default): rootless where it can run, else vm; "
        "host: the engine DOCKER_HOST names, shared with everything on it (needs --trust-submissions)",
    )
    p.add_argument(
        "--trust-submissions",
        action="store_true",
        help="allow --engine host: every submission's code gets this machine's engine (root on it)",
    )
    p.add_argument("--vm-memory", type=int, default=None, help="MB of memory per worker VM")
    p.add_argument(
        "--map", type=Path, default=None, help="CSV lms_id,student[,submitted_at]: the LMS's ids to yours"
    )
    p.add_argument("--deadline", default=None, help="ISO 8601 date and time (no zone: UTC)")
    p.add_argument(
        "--late-policy", default="none", help="none (default), zero, or a share per day started: 10%%/day"
    )
    p.add_argument("--grace", type=float, default=0.0, help="minutes after the deadline still on time")
    p.add_argument(
        "--gradebook",
        type=Path,
        default=None,
        help="the course gradebook (SQLite) this run updates (default: gradebook.sqlite beside --out)",
    )
    p.add_argument("--no-gradebook", action="store_true", help="do not update a gradebook")
    p.add_argument(
        "--release-feedback",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write each student's feedback page into DIR/<student>/ (an LMS upload, a shared drive)",
    )
    p.set_defaults(run=run)


TIERS = {
    "rootless": "a rootless Docker engine per submission, under a throwaway user its kernel runs as",
    "vm": "a Docker engine in a qemu VM per worker (as root: each kernel as a throwaway user)",
    "host": "this machine's engine, shared (--trust-submissions)",
}


def run(args) -> int:
    from dockercourse.grading.late import Policy, parse_time

    src = args.submissions
    zipped = src.is_file() and src.suffix.lower() == ".zip"
    if not (src.is_dir() or zipped):
        raise UsageError(f"{src} is neither a folder nor a .zip file")
    if args.jobs < 1:
        raise UsageError("-j must be at least 1")
    policy = Policy.parse(args.late_policy, grace_minutes=args.grace)
    if args.deadline:
        parse_time(args.deadline, "--deadline")
    elif args.late_policy.strip().lower() != "none":
        raise UsageError("--late-policy needs --deadline (when the work was due)")
    from dockercourse.grading.batch import choose_engine, grade_folder
    from dockercourse.grading.namespaces import engine

    sub = src.resolve()
    stem = sub.stem if zipped else sub.name
    out = args.out or sub.parent / (stem + "-grades")
    _writable(out)
    db = None if args.no_gradebook else (args.gradebook or out.parent / "gradebook.sqlite")
    for d in [p for p in (args.release_feedback, db and db.parent) if p]:
        _writable(d)  # before grading, not after it
    if args.chapter:
        _known_chapter(args.chapter, args.root)
    if args.engine == "host":
        if not args.trust_submissions:
            raise UsageError(
                "--engine host runs every submission's code with this machine's engine, which is root "
                "on it: add --trust-submissions if you trust them all, or leave --engine out to grade "
                "each submission behind an isolated engine (rootless or vm)"
            )
        engine()  # fail early, with the course's explanation, when no engine answers
    if choose_engine(args.engine) != "host":  # fails early, with what to install, when it cannot run here
        _warn_readable([src, out])
    folder, extra = src, {}
    if zipped or args.map or args.deadline:
        folder, extra = _intake(src, out, args.map, args.deadline, policy)
    rep = grade_folder(
        folder,
        out,
        chapter=args.chapter,
        root=args.root,
        jobs=args.jobs,
        force=args.force,
        cell_timeout=args.cell_timeout,
        submission_timeout=args.timeout,
        kernel_name=args.kernel,
        progress=not args.no_progress,
        engine=args.engine,
        vm_memory_mb=args.vm_memory,
        **extra,
    )
    counts = rep.status_counts()
    print(
        f"chapter {rep.chapter}: {len(rep.grades)} submissions ({rep.graded} graded now, {rep.reused} from "
        f"an earlier run) in {rep.seconds:.1f} s; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    )
    print(f"graded on: {TIERS[rep.engine]}" + (f" ({rep.engine_note})" if rep.engine_note else ""))
    print(f"wrote {out / 'grades.csv'} and {out / 'feedback'}/")
    if db:
        _record(db, rep)
    if args.release_feedback:
        from dockercourse.grading.report import release_feedback

        n = release_feedback(rep.grades, out, args.release_feedback, rep.chapter)
        print(f"released {n} feedback pages into {args.release_feedback}/")
    return 0


def _known_chapter(chapter: str, root: Path | None) -> None:
    """One line, before any grading, for a chapter the course has no checks for."""
    from dockercourse.checks.loader import checks_file, course_root

    try:
        checks_file(chapter, root)
    except FileNotFoundError:
        have = sorted(
            p.name.split("_")[0] for p in (Path(root or course_root()) / "checks").glob("[0-9]*_*.py")
        )
        raise UsageError(
            f"chapter {chapter} has no checks in this course (its chapters: {', '.join(have)})"
        ) from None


def _warn_readable(paths: list[Path]) -> None:
    """The sandboxed kernels run as throwaway users, who read what any user may: say so when the
    submissions or the grades are among that (one line; the grading goes on)."""
    if os.geteuid() != 0:
        return
    from dockercourse.grading.kernelpy import readable_by_others

    open_ = [str(p) for p in paths if p.exists() and readable_by_others(p)]
    if open_:
        print(
            f"note: {' and '.join(open_)} can be read by any user of this machine, so also by the kernels of "
            "the submissions being graded: `chmod 700` them to keep students' work and grades private",
            file=sys.stderr,
        )


def _writable(out: Path) -> None:
    """One clear line, before any grading, when the output folder cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write the folder {out}: {e.strerror or e}") from None


def _intake(src: Path, out: Path, mapping: Path | None, deadline: str | None, policy) -> tuple[Path, dict]:
    """Stage ``src`` (a zip or a folder) as one notebook per student under ``out/submissions``;
    print each problem; the staged folder and grade_folder's ``students``/``annotate``."""
    from dockercourse.grading.intake import prepare

    staging = out / "submissions"
    marker = out / ".submissions-staged"  # out/submissions is ours: every run replaces it
    if staging.exists():
        if not marker.exists():
            raise UsageError(f"{staging} exists and was not made by dockercourse grade; move it away")
        shutil.rmtree(staging)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("out/submissions was staged by dockercourse grade; every run replaces it\n")
    intake = prepare(src, staging, mapping=mapping)
    for line in intake.problems:
        print(f"intake: {line}", file=sys.stderr)
    students = {e.file: e.student for e in intake.entries}
    annotate = {e.file: _late_fields(e, deadline, policy) for e in intake.entries}
    return staging, dict(files=intake.files, students=students, annotate=annotate)


def _late_fields(e, deadline: str | None, policy) -> dict:
    """The grade fields of one staged entry: its LMS file name, when it came in, how late, the penalty."""
    fields = {"file": e.original, "submitted_at": e.submitted_at}
    if not deadline:
        return fields
    if e.lms == "canvas" and e.time_from != "mapping":
        # Canvas stamps every zip entry with the export's time: only its LATE flag is known.
        if not e.late_flag:
            return dict(fields, late_days=0, penalty=0.0)
        note = (
            "Canvas marked this submission late, and its zip gives no submission time: it counts as 1 day "
            "late (give submitted_at in --map for the exact time)."
        )
        return dict(fields, late_days=1, penalty=policy.penalty(1), notes=[note])
    if not e.submitted_at:
        note = "No submission time is known, so it was not checked against the deadline."
        return dict(fields, notes=[note])
    days, penalty = policy.apply(e.submitted_at, deadline)
    return dict(fields, late_days=days, penalty=penalty)


def _record(db: Path, rep) -> None:
    from dockercourse.grading import gradebook

    changed, same = gradebook.record(db, rep.grades, rep.chapter)
    print(f"gradebook {db}: {changed} submissions recorded, {same} unchanged")
