"""Print the chapter 01 figures: containers vs a tiny VM, measured on this machine.

    .venv/bin/python benchmarks/bench_chapter01.py                # 30 starts each way, density to 100
    .venv/bin/python benchmarks/bench_chapter01.py --full         # density to 500 (a few minutes)
    .venv/bin/python benchmarks/bench_chapter01.py --csv out/     # also write every measurement as CSV

A thin wrapper around ``dockercourse bench`` with the settings the chapter's report uses:
container start p50/p95 with and without networking, the tiny VM's boot time and
accelerator, memory per container vs the qemu process, density at N=100 (or 500), CPU-bound
relative speed, image vs VM disk sizes. Not a test: it prints figures and leaves nothing
behind (its containers are named dc01bench-... and removed, also on Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import time

from dockercourse.cli import main as dockercourse


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--runs") for a in argv):
        argv += ["--runs", "30"]
    if "--full" not in argv and not any(a.startswith("--density") for a in argv):
        argv += ["--density", "100"]
    print(f"chapter 01 benchmarks on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    rc = dockercourse(["bench", *argv])
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
