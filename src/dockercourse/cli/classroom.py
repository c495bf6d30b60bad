"""``dockercourse classroom``: JupyterHub on this machine, each student with a Docker engine of their own."""

from __future__ import annotations

from dockercourse.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "classroom",
        help="a JupyterHub class on this machine, an engine per student",
        description=(
            "Start JupyterHub (on 127.0.0.1) for a class: each student is a system user with a copy of "
            "the course and a Docker engine of their own (rootless dockerd, or a VM with --engine vm), "
            "started with their server and stopped with it. Run as root. `down` removes the hub, the "
            "students and everything they ran. See docs/classroom.md."
        ),
    )
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = s.add_parser("up", help="make the students and start the hub")
    who = up.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", type=int, metavar="N", help="students student1 … studentN")
    who.add_argument("--names", help="students by name, comma-separated (e.g. ana,bo,chen)")
    up.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (default 8000)")
    up.add_argument(
        "--chapters", default="", help="the chapters whose images each engine gets, e.g. 02,07 (default: all)"
    )
    up.add_argument(
        "--engine",
        default="rootless",
        choices=("rootless", "vm"),
        help="each student's engine: rootless dockerd (default; light, the host's kernel) or a VM of their "
        "own (its own kernel; KVM where students may open /dev/kvm, else emulated). See docs/classroom.md",
    )
    up.add_argument(
        "--vm-memory", type=int, default=768, metavar="MB", help="with --engine vm: each guest's memory (768)"
    )
    up.add_argument(
        "--idle-timeout",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="stop a server (and its engine) idle that long (default 3600; 0: never)",
    )
    up.set_defaults(run=run_up)
    down = s.add_parser("down", help="stop the hub and remove every student and what they ran")
    down.set_defaults(run=run_down)
    st = s.add_parser("status", help="the hub, and each student's server and processes")
    st.set_defaults(run=run_status)


def _names(args) -> list[str]:
    if args.users is not None:
        if not 1 <= args.users <= 500:
            raise UsageError(f"--users {args.users}: give 1 to 500 students")
        return [f"student{i}" for i in range(1, args.users + 1)]
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if not names:
        raise UsageError("--names lists no student")
    return names


def _images(chapters: str) -> list[str]:
    from dockercourse.checks.loader import course_root
    from dockercourse.core import chapters as chs

    all_ = chs.load(course_root())
    want = {c.strip().zfill(2) for c in chapters.split(",") if c.strip()}
    unknown = want - {c.number for c in all_}
    if unknown:
        raise UsageError(f"--chapters: no chapter {', '.join(sorted(unknown))}")
    refs = [r for c in all_ if not want or c.number in want for r in c.image_refs]
    return list(dict.fromkeys(refs))


def run_up(args) -> int:
    from dockercourse.checks.loader import course_root
    from dockercourse.classroom import hub

    names = _names(args)
    if args.idle_timeout < 0:
        raise UsageError(f"--idle-timeout {args.idle_timeout}: give seconds, or 0 for never")
    if not 256 <= args.vm_memory <= 16384:
        raise UsageError(f"--vm-memory {args.vm_memory}: give 256 to 16384 MB")
    hubinfo = hub.up(
        names,
        args.port,
        _images(args.chapters),
        course_root(),
        idle=args.idle_timeout,
        engine=args.engine,
        vm_memory=args.vm_memory,
    )
    print(
        f"classroom: JupyterHub answers at {hubinfo.url} (pid {hubinfo.pid}), {len(names)} students, "
        f"each with {'a VM engine' if args.engine == 'vm' else 'a rootless engine'} of their own"
    )
    print(f"classroom: their passwords are in {hubinfo.passwords} (root's only)")
    print("classroom: `dockercourse classroom down` ends it (and removes the students)")
    return 0


def run_down(args) -> int:
    from dockercourse.classroom import hub

    problems = hub.down()
    for p in problems:
        print(f"classroom: {p}")
    print("classroom: nothing of the classroom is left" if not problems else "classroom: see the lines above")
    return 1 if problems else 0


def run_status(args) -> int:
    from dockercourse.classroom import hub

    st = hub.status()
    print(f"hub: {'runs, pid ' + str(st['hub']) if st['hub'] else 'not running'}")
    for name, s in st["students"].items():
        print(f"{name:<16} server {'running' if s['server'] else 'stopped':<8} processes {s['processes']}")
    return 0
