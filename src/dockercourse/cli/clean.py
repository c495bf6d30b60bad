"""``dockercourse clean``: remove course resources, selected by label only."""

from __future__ import annotations

from dockercourse.cli._args import chapter, namespace
from dockercourse.errors import UsageError

KINDS = ("containers", "volumes", "networks", "images")


def register(sub) -> None:
    p = sub.add_parser(
        "clean",
        help="remove course resources (by label only)",
        description=(
            "Remove containers, volumes, networks and images the course created. Only resources carrying the "
            "course's labels are touched; your own never are. The image kit (course images, local mirror) "
            "stays: remove it with `dockercourse images --remove`."
        ),
    )
    p.add_argument("--chapter", type=chapter, help="only this chapter (e.g. 02); default: every chapter")
    p.add_argument("--ns", help="only this namespace tag (a grading worker's, e.g. g1); needs --chapter")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(run=run)


def run(args) -> int:
    from dockercourse.core.cleanup import clean, leftovers
    from dockercourse.core.engine import connect

    if args.ns is not None and not args.chapter:
        raise UsageError("--ns needs --chapter (a namespace lives in one chapter)")
    ns = namespace(args.chapter, tag=args.ns) if args.ns is not None else None
    client = connect()
    if args.dry_run:
        left = leftovers(client, namespace=ns, chapter=args.chapter)
        for kind in KINDS:
            for name in left.get(kind, ()):
                print(f"would remove {kind[:-1]} {name}")
        print(f"{sum(len(v) for v in left.values())} course resource(s)")
        return 0
    rep = clean(client, namespace=ns, chapter=args.chapter)
    for kind in KINDS:
        for name in getattr(rep, kind):
            print(f"removed {kind[:-1]} {name}")
    print(rep.summary())
    return 1 if rep.errors else 0
