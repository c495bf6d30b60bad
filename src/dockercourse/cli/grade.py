"""``dockercourse grade SUBMISSIONS``: grade a folder of submitted notebooks (one per student).

    dockercourse grade SUBMISSIONS [--out DIR] [--chapter N] [-j N] [--force]
                       [--cell-timeout S] [--timeout S] [--root DIR] [--kernel NAME]
                       [--no-progress] [--engine host|vm] [--vm-memory MB]

The work is :func:`dockercourse.grading.batch.grade_folder`; see docs/grading.md.
"""

from __future__ import annotations

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
    p.add_argument("submissions", type=Path, help="folder of submitted notebooks (any file names)")
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
        choices=("host", "vm"),
        default="host",
        help="host: the engine DOCKER_HOST/the default socket points at (shared); vm: each worker "
        "gets its own throwaway engine in a qemu VM (isolated; slower)",
    )
    p.add_argument("--vm-memory", type=int, default=None, help="MB of memory per worker VM")
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.submissions.is_dir():
        raise UsageError(f"{args.submissions} is not a folder")
    if args.jobs < 1:
        raise UsageError("-j must be at least 1")
    from dockercourse.grading.batch import grade_folder
    from dockercourse.grading.namespaces import engine

    sub = args.submissions.resolve()
    out = args.out or sub.parent / (sub.name + "-grades")
    if args.engine == "host":
        engine()  # fail early, with the course's explanation, when no engine answers
    rep = grade_folder(
        args.submissions,
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
    )
    counts = rep.status_counts()
    print(
        f"chapter {rep.chapter}: {len(rep.grades)} submissions ({rep.graded} graded now, {rep.reused} from "
        f"an earlier run) in {rep.seconds:.1f} s; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    )
    print(f"wrote {out / 'grades.csv'} and {out / 'feedback'}/")
    return 0
