"""``dockercourse clean``: remove course resources, selected by label only."""

from __future__ import annotations

import argparse

from dockercourse.core.engine import connect
from dockercourse.core.namespace import Namespace
from dockercourse.core.cleanup import clean, leftovers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="dockercourse clean",
        description="Remove containers, volumes, networks and images the course created. "
                    "Only resources carrying the course's labels are touched; your own never are. "
                    "The image kit (course images, local mirror) stays: remove it with "
                    "`dockercourse images --remove`.")
    ap.add_argument("--chapter", help="only this chapter (e.g. 02); default: every chapter")
    ap.add_argument("--ns", help="only this namespace tag (a grading worker's, e.g. g1)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be removed")
    a = ap.parse_args(argv)
    client = connect()
    ns = Namespace.for_chapter(a.chapter, tag=a.ns) if (a.chapter and a.ns is not None) else None
    if a.dry_run:
        left = leftovers(client, namespace=ns, chapter=a.chapter)
        total = sum(len(v) for v in left.values())
        for kind, names in left.items():
            for n in names:
                print(f"would remove {kind[:-1]} {n}")
        print(f"{total} course resource(s)")
        return 0
    rep = clean(client, namespace=ns, chapter=a.chapter)
    for kind in ("containers", "volumes", "networks", "images"):
        for n in getattr(rep, kind):
            print(f"removed {kind[:-1]} {n}")
    print(rep.summary())
    return 1 if rep.errors else 0
