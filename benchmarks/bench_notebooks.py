"""Print how long each chapter takes under strict nbval on the engine in use, against issue 14's goals.

    .venv/bin/python benchmarks/bench_notebooks.py              # every chapter, once
    .venv/bin/python benchmarks/bench_notebooks.py 08 04        # some chapters
    .venv/bin/python benchmarks/bench_notebooks.py --runs 3     # each chapter three times: min/median/max

Each chapter runs in its own ``pytest --nbval`` (the test command's options and sanitizer), warm: the
course images are on the engine. The goals: no chapter over 20 s, the whole course within 90 s. Not a
test: it prints figures. The chapters clean up after themselves as in any run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_GOAL_S, COURSE_GOAL_S = 20.0, 90.0


def run_chapter(nb: Path) -> tuple[float, bool]:
    """Seconds the notebook's cells took (nbval's own count) and whether every cell passed."""
    cmd = [
        sys.executable, "-m", "pytest", str(nb), "--nbval", "--nbval-current-env",
        "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "-p", "no:cacheprovider", "-q",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    m = re.search(rf"{re.escape(nb.stem)} ([\d.]+) s", r.stdout)
    return (float(m.group(1)) if m else float("nan")), r.returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers (default: all)")
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args(argv)
    nbs = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if a.chapters:
        nbs = [nb for nb in nbs if nb.name[:2] in {c.zfill(2) for c in a.chapters}]
    from dockercourse.core.buildcache import build_cache
    from dockercourse.core.engine import connect, engine_info

    client = connect()
    info = engine_info(client)
    print(
        f"strict nbval on {info.kind} {info.server_version}, {info.store_text}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; {a.runs} run(s) per chapter"
    )
    # an engine's history counts (docs/engines.md): on the containerd store, every image removal waits for
    # a garbage collection over all the build cache's records, so a long-used engine is slower
    print(
        f"the engine's history: {len(build_cache(client.api))} build cache records, "
        f"{len(client.api.images(all=True))} images"
    )
    total, t0 = 0.0, time.perf_counter()
    for nb in nbs:
        got = [run_chapter(nb) for _ in range(a.runs)]
        secs = [s for s, _ in got]
        med = statistics.median(secs)
        total += med
        ok = "passed" if all(p for _, p in got) else "FAILED"
        spread = f" (min {min(secs):.1f}, max {max(secs):.1f})" if a.runs > 1 else ""
        goal = "within" if med <= CHAPTER_GOAL_S else "over"
        print(f"{nb.stem:<22} {med:6.1f} s{spread}  {ok}, {goal} the {CHAPTER_GOAL_S:.0f} s goal")
    if len(nbs) > 1:
        goal = "within" if total <= COURSE_GOAL_S else "over"
        print(f"{'all chapters':<22} {total:6.1f} s  {goal} the {COURSE_GOAL_S:.0f} s goal")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
