"""Benchmark the image kit: cold and warm times, and the size of each course image.

    .venv/bin/python benchmarks/bench_imagekit.py            # cold = no kit images, no caches
    .venv/bin/python benchmarks/bench_imagekit.py --keep-cache   # cold images, warm .deb cache
    .venv/bin/python benchmarks/bench_imagekit.py --warm-only    # only the second-run time

Cold removes the kit's own images (kit-labelled only), the mirror and its
volume (imagekit.remove) and the kit's caches, then runs ensure(). Warm runs
ensure() again. Goals on 2 cores: cold <= 90 s, warm <= 5 s. Not a test: it
prints figures. It leaves the kit (images and mirror) in place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from dockercourse import imagekit
from dockercourse.core.engine import connect
from dockercourse.imagekit import debian


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep-cache", action="store_true", help="keep the .deb cache for the cold run")
    ap.add_argument("--warm-only", action="store_true", help="skip the cold run")
    ap.add_argument("--mode", default="auto", choices=imagekit.MODES)
    args = ap.parse_args(argv)
    client = connect(timeout=600)
    quiet = lambda *a, **k: None  # noqa: E731
    info = client.info()
    print(
        f"engine {client.version().get('Version')} on {info.get('NCPU')} CPUs; mirrors: "
        f"{(info.get('RegistryConfig') or {}).get('Mirrors')}"
    )
    cold = None
    if not args.warm_only:
        imagekit.remove(client, log=quiet)
        if not args.keep_cache and debian.CACHE_DIR.exists():
            shutil.rmtree(debian.CACHE_DIR)
        left = [s.ref for s in imagekit.status(client) if s.present]
        if left:
            print(f"note: present but not the kit's (kept, so not part of the cold run): {', '.join(left)}")
        t = time.monotonic()
        imagekit.ensure(
            client, mode=args.mode, progress=False, log=lambda *a, **k: print("  ", *a, flush=True)
        )
        cold = time.monotonic() - t
    t = time.monotonic()
    st = imagekit.ensure(client, mode=args.mode, progress=False, log=quiet)
    warm = time.monotonic() - t
    cache = "kept" if args.keep_cache else "emptied"
    if cold is not None:
        print(f"cold ensure ({cache} .deb cache): {cold:6.1f} s   (goal <= 90 s)")
    print(f"warm ensure:                      {warm:6.1f} s   (goal <= 5 s)")
    print("images:")
    for s in st:
        size = f"{s.size / 1e6:7.1f} MB" if s.size else "      ?"
        print(f"  {s.ref:<27} {size}  {s.source}")
    print(f"  total {sum(s.size or 0 for s in st) / 1e6:.0f} MB (virtual sizes; debian layers are shared)")
    print(f"mirror: {st.mirror.message if st.mirror else '-'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    sys.exit(main())
