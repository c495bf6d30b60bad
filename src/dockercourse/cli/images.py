"""``dockercourse images [--offline|--online] [--check|--remove] [--quiet]``: the image kit."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "images",
        help="pull or build the course images and the local mirror",
        description=(
            "Make the course's pinned images present (pulled online, built from Debian packages offline) and "
            "serve them from the local registry mirror. See docs/image-kit.md."
        ),
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--offline",
        action="store_const",
        dest="mode",
        const="offline",
        help="build every missing image from the host's Debian packages",
    )
    g.add_argument(
        "--online",
        action="store_const",
        dest="mode",
        const="online",
        help="pull every missing image (an error if the engine cannot)",
    )
    a = p.add_mutually_exclusive_group()
    a.add_argument("--check", action="store_true", help="only report; exit 1 when something is missing")
    a.add_argument(
        "--remove",
        action="store_true",
        help="remove the kit's own images, the mirror container and its volume",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, only errors and the summary")
    p.set_defaults(run=run, mode="auto", interrupted="run it again: it resumes and cleans up")


def run(args) -> int:
    from dockercourse import imagekit
    from dockercourse.core.engine import connect

    client = connect()
    if args.check:
        st = imagekit.status(client)
        print(st.report())
        return 0 if st.ok else 1
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    if args.remove:
        imagekit.remove(client, log=log)
        return 0
    st = imagekit.ensure(client, mode=args.mode, progress=not args.quiet, log=log)
    print(st.report())
    return 0
