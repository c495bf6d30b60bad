"""`dockercourse images [--offline|--online] [--check] [--remove] [--quiet]`."""

from __future__ import annotations

import argparse
import sys

from dockercourse.core.engine import connect
from dockercourse.errors import CourseError, ImageKitError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dockercourse images",
        description="Make the course's pinned images present (pulled online, built from Debian packages "
        "offline) and serve them from the local registry mirror.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--offline", action="store_const", dest="mode", const="offline",
                   help="build every missing image from the host's Debian packages")
    g.add_argument("--online", action="store_const", dest="mode", const="online",
                   help="pull every missing image (an error if the engine cannot)")
    a = p.add_mutually_exclusive_group()
    a.add_argument("--check", action="store_true", help="only report; exit 1 when something is missing")
    a.add_argument("--remove", action="store_true",
                   help="remove the kit's own images, the mirror container and its volume")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, only errors and the summary")
    p.set_defaults(mode="auto")
    return p


def main(argv=None) -> int:
    from dockercourse.imagekit import ensure
    from dockercourse.imagekit import remove
    from dockercourse.imagekit import status

    args = parser().parse_args(argv)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    try:
        client = connect()
        if args.check:
            st = status(client)
            print(st.report())
            return 0 if st.ok else 1
        if args.remove:
            remove(client, log=log)
            return 0
        st = ensure(client, mode=args.mode, progress=not args.quiet, log=log)
        print(st.report())
        return 0
    except (ImageKitError, CourseError) as e:
        print(f"dockercourse images: error: {str(e).strip()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dockercourse images: interrupted (run it again: it resumes and cleans up)", file=sys.stderr)
        return 130
