#!/usr/bin/env python3
"""Benchmark: grading N copies of a chapter on each isolation tier, one and two workers.

    .venv/bin/python benchmarks/bench_isolation.py [-n 8] [--chapter 02] [--tiers host,rootless,vm]
                                                   [--jobs 1,2]

For each tier (``dockercourse grade --engine TIER``) and each number of workers, grades the
N copies of the chapter's master (``--force``, a fresh output folder) and prints the wall time,
the time per submission and whether every copy got full marks (it must). A tier this machine
cannot run is reported as skipped, with what it lacks. Figures in docs/grading.md ("Isolation")
come from this script; the VM tier's say whether qemu had KVM or emulated (TCG).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_grade import grade  # noqa: E402 (grading a folder, timed: one copy of it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=8, help="copies of the chapter (default 8)")
    ap.add_argument("--chapter", default="02", help="chapter (default 02)")
    ap.add_argument("--root", type=Path, default=HERE.parent, help="course folder (default: the repo)")
    ap.add_argument("--tiers", default="host,rootless,vm", help="tiers to measure (default all three)")
    ap.add_argument("--jobs", default="1,2", help="worker counts (default 1,2)")
    a = ap.parse_args(argv)
    root = a.root.resolve()
    os.environ["DOCKERCOURSE_ROOT"] = str(root)
    import nbformat

    from dockercourse.errors import CourseError
    from dockercourse.grading.batch import choose_engine
    from dockercourse.vm.qemu import kvm_usable

    master = sorted((root / "notebooks").glob(f"{a.chapter}_*.ipynb"))[0]
    folder = Path(tempfile.mkdtemp(prefix="dcbench-iso-subs-"))
    nb = nbformat.read(master, as_version=4)
    for k in range(a.n):
        nbformat.write(nb, folder / f"student{k + 1:02d}.ipynb")
    print(f"grading {a.n} copies of chapter {a.chapter} ({master.name}); {os.cpu_count()} CPUs")
    print(f"{'tier':<10} {'-j':>3} {'seconds':>9} {'s/submission':>13}  full marks")
    ok = True
    try:
        for tier in a.tiers.split(","):
            try:
                choose_engine(tier)
            except CourseError as e:
                print(f"{tier:<10} skipped: {e}")
                continue
            if tier != "host":  # made once per toolkit version (about 30 s): not part of the figures
                from dockercourse.grading import sandbox

                sandbox.kernel_python(root)
            label = tier
            if tier == "vm":
                label += " (kvm)" if kvm_usable() else " (tcg)"
            for jobs in (int(j) for j in a.jobs.split(",")):
                took, grades = grade(folder, root, jobs, a.chapter, engine=tier)
                full = all(g.status == "ok" and g.total == g.possible for g in grades) and len(grades) == a.n
                ok &= full
                print(f"{label:<10} {jobs:>3} {took:>9.1f} {took / a.n:>13.1f}  {'yes' if full else 'NO'}")
                sys.stdout.flush()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
