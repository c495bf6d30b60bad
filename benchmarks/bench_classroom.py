"""Size a classroom on this machine: N students at once, each with an engine of their own.

    sudo .venv/bin/python benchmarks/bench_classroom.py              # N = 1, 4, 8, rootless engines
    sudo .venv/bin/python benchmarks/bench_classroom.py 1 4 8 12
    sudo .venv/bin/python benchmarks/bench_classroom.py --engine vm 1 2 4   # a VM engine each

For each N: `classroom up --users N`; every student logs in and starts a server at once (through the
hub, as a browser does); the seconds until every student's engine has answered a first `docker run`;
the memory each student takes (the proportional set size of every process of the student's user and
subordinate ids: server, engine, kernel, containers) once the servers started, and at its peak while
chapter 02 runs;
chapter 02 under strict nbval for all N students at once (min / median / max seconds); then `down`.
Not a test: it prints figures (docs/classroom.md has them). Needs root, the rootless packages and the
course engine's mirror (./course setup).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pss_mb(uid: int, subid: int, count: int) -> float:
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            owner = p.stat().st_uid
            if owner != uid and not subid <= owner < subid + count:
                continue
            for line in (p / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def one(n: int, port: int, engine: str = "rootless") -> dict:
    from docker.utils import kwargs_from_env

    from dockercourse.classroom import session, students
    from dockercourse.core.engine import client_for
    from dockercourse.grading.users import SUBID_COUNT

    cli = [sys.executable, "-m", "dockercourse.cli", "classroom"]
    t0 = time.monotonic()
    r = subprocess.run(
        [*cli, "up", "--users", str(n), "--port", str(port), "--chapters", "02", "--engine", engine],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise SystemExit(r.stderr + r.stdout)
    up_s = time.monotonic() - t0
    try:
        url, pw = f"http://127.0.0.1:{port}/", session.passwords()
        names = sorted(pw)

        def start(name: str) -> float:
            s = session.login(url, name, pw[name])
            session.start_server(url, name, s)
            env = session.server_environment(name)  # DOCKER_HOST (and, for a VM, its TLS variables)
            kw = kwargs_from_env(
                environment=env
            )  # with TLS: the course's client (its CA, not the environment's)
            c = client_for(kw["base_url"], timeout=300, tls=kw.get("tls"))
            c.containers.run("busybox:1.35.0", ["true"], remove=True)
            c.close()
            return time.monotonic() - t1

        t1 = time.monotonic()
        with ThreadPoolExecutor(n) as pool:
            first_run = max(pool.map(start, names))
        idents = {m: students.load(m) for m in names}
        mem_started = [pss_mb(i.uid, i.subid, SUBID_COUNT) for i in idents.values()]
        master = ROOT / "notebooks" / "02_core_concepts.ipynb"
        for i in idents.values():
            v = i.home / "verify"
            v.mkdir(exist_ok=True)
            shutil.copy(master, v / master.name)
            rules = [(ROOT / "tests" / "nbval_sanitize.cfg").read_text()]
            if engine == "vm":  # what differs on a VM engine (its kernel, its host folders)
                rules.append((ROOT / "tests" / "nbval_sanitize_vm.cfg").read_text())
            (v / "nbval_sanitize.cfg").write_text("\n".join(rules))
            for p in (v, *v.iterdir()):
                os.chown(p, i.uid, i.gid)
        envs = {m: session.server_environment(m) for m in names}
        nbval = ["python", "-m", "pytest", f"verify/{master.name}", "--nbval", "--nbval-current-env", "-q",
                 "-p", "no:cacheprovider", "--nbval-sanitize-with", "verify/nbval_sanitize.cfg"]  # fmt: skip

        def chapter(name: str) -> tuple[float, bool]:
            a = time.monotonic()
            out = session.run_as(name, envs[name], *nbval)
            if out.returncode:  # why, on stderr (the table stays on stdout)
                print(f"{name}: chapter 02 failed:\n{out.stdout[-2500:]}{out.stderr[-500:]}", file=sys.stderr)
            return time.monotonic() - a, out.returncode == 0

        peak = dict.fromkeys(names, 0.0)
        running = threading.Event()
        running.set()

        def sample() -> None:  # each student's memory while chapter 02 runs (kernel and containers too)
            while running.is_set():
                for m, i in idents.items():
                    peak[m] = max(peak[m], pss_mb(i.uid, i.subid, SUBID_COUNT))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(n) as pool:
            runs = list(pool.map(chapter, names))
        running.clear()
        sampler.join()
        mem_after = list(peak.values())
    finally:
        subprocess.run([*cli, "down"], capture_output=True, text=True)
    secs = [s for s, _ in runs]
    return {
        "n": n,
        "up": up_s,
        "first_run": first_run,
        "mem_started": statistics.median(mem_started),
        "mem_after": statistics.median(mem_after),
        "mem_max": max(mem_started + mem_after),
        "ch02": (min(secs), statistics.median(secs), max(secs)),
        "passed": sum(ok for _, ok in runs),
    }


def main(argv: list[str]) -> int:
    from dockercourse.classroom.hub import _free_port, available_mb

    engine = "rootless"
    if "--engine" in argv:
        i = argv.index("--engine")
        engine, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    ns = [int(a) for a in argv] or [1, 4, 8]
    print(f"{os.cpu_count()} CPUs, {available_mb() / 1024:.1f} GB available; {engine} engines, ch02's images")
    print(
        "| students | `up` | every student's first `docker run` | memory per student: started / peak in "
        "ch02, median (max) | chapter 02, all at once: min / median / max | passed |"
    )
    print("|---|---|---|---|---|---|")
    for n in ns:
        f = one(n, _free_port(), engine)
        mem = f"{f['mem_started']:.0f} / {f['mem_after']:.0f} MB ({f['mem_max']:.0f})"
        ch02 = " / ".join(f"{x:.1f}" for x in f["ch02"])
        print(
            f"| {n} | {f['up']:.1f} s | {f['first_run']:.1f} s | {mem} | {ch02} s | {f['passed']}/{n} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
