"""The engine matrix: the whole course verified on every engine learners run, one after another.

    ./course test --matrix [--engines 28-containerd,28-classic,26,system,vm] [--no-docs] [-k EXPR]
    ./course test --matrix --report [RUN_DIR ...]   # the table again from stored results, no engine
    python -m dockercourse.engines.matrix ...

For each engine: start it from a clean state (a fresh data root of its own under the state
folder), build the image kit (timed cold, then warm), time ``docker run`` and the engine's
start, run the README's test command's pytest (every notebook under strict nbval with the
sanitizer, the toolkit tests, and the non-vacuity test, which releases each chapter's student
copy and grades it and the master through the grader), then stop the engine and delete its
data. The engine that ran before is started again at the end. The table (engine x chapter:
pass/fail and seconds) and the figures are printed and written to ``docs/engines.md``.

Each engine's result is kept as soon as it is done (``RUN_DIR/<engine>/result.json``), so a
matrix can be run in parts (``--engines vm`` one day, the local engines another): ``--report``
builds the table from the newest result of each engine in the run folders given (default: every
run under the state folder), with each row's date, and starts no engine.

Local engines run one at a time (two dockerd on one machine fight over docker0 and
iptables); an engine the course did not start must not be running. The VM engine runs beside
the primary engine, whose registry mirror seeds its disk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dockercourse.engines import local
from dockercourse.engines.matrix_report import bench_table, table, write_docs
from dockercourse.engines.procs import rmtree_unmounted
from dockercourse.engines.specs import ENGINES, PRIMARY, state_dir
from dockercourse.errors import EngineError, UsageError
from dockercourse.i18n import LANGUAGES

ROOT = Path(__file__).resolve().parents[3]  # the course's checkout
ORDER = ["28-containerd", "28-classic", "26", "system", "vm", "podman"]
#: pytest selection per engine. The slow VM tests boot VMs of their own, whatever engine runs:
#: they run once, with the primary engine.
SELECT = {
    "28-containerd": [],
    "vm": ["notebooks", "tests/test_nonvacuity.py"],
    "podman": ["notebooks", "tests/test_nonvacuity.py"],
}
DEFAULT_SELECT = ["-m", "not slow"]
TIMEOUT = 3 * 3600


def log(msg: str) -> None:
    print(f"matrix: {msg}", flush=True)


@dataclass
class EngineResult:
    name: str
    title: str
    server_version: str = ""
    api_version: str = ""
    image_store: str = ""
    cgroup: str = ""
    started: bool = False
    error: str = ""
    start_to_api_s: float | None = None
    start_to_api_warm_s: float | None = None
    run_p50_ms: float | None = None
    run_p95_ms: float | None = None
    kit_cold_s: float | None = None
    kit_warm_s: float | None = None
    nbval_s: float | None = None
    pytest_s: float | None = None
    chapters: dict = field(
        default_factory=dict
    )  # "02": {"nbval": "pass", "cells": 28, "failed": 0, "s": 6.1, "grade": "pass"}
    toolkit: dict = field(default_factory=dict)  # {"passed": n, "failed": n, "skipped": n}
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    finished: str = ""  # UTC, when this engine's run ended


# --------------------------------------------------------------------------- one engine


def _env(docker_host: str, vm: bool = False) -> dict:
    env = {**os.environ, "DOCKER_HOST": docker_host}
    if vm:
        env["DOCKERCOURSE_ENGINE"] = "vm"
    else:
        env.pop("DOCKERCOURSE_ENGINE", None)
    return env


def _timed(cmd: list[str], env: dict, timeout: float, logfile: Path) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(logfile, "ab") as f:
        f.write(f"\n$ {' '.join(cmd)}\n".encode())
        f.flush()
        r = subprocess.run(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, round(time.monotonic() - t0, 1)


def _describe(res: EngineResult, docker_host: str) -> None:
    import docker

    from dockercourse.core.engine import engine_info

    c = docker.DockerClient(base_url=docker_host, version="auto", timeout=60)
    info = engine_info(c)
    res.server_version, res.api_version = info.server_version, info.api_version
    res.image_store, res.cgroup = info.image_store, f"v{info.cgroup_version}"


def run_latency(docker_host: str, runs: int = 20) -> tuple[float, float]:
    """p50 and p95 of ``docker run --rm busybox:1.35.0 true`` in ms (after one warm-up run)."""
    import docker

    from dockercourse.core.images import BUSYBOX

    c = docker.DockerClient(base_url=docker_host, version="auto", timeout=300)
    c.containers.run(BUSYBOX, ["true"], remove=True, labels={"io.dockercourse.bench": "matrix"})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        c.containers.run(BUSYBOX, ["true"], remove=True, labels={"io.dockercourse.bench": "matrix"})
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return round(statistics.median(times), 1), round(times[min(len(times) - 1, int(0.95 * len(times)))], 1)


def parse_junit(path: Path, res: EngineResult) -> None:
    """Per chapter: the nbval cells (pass/fail, seconds) and the grading (non-vacuity) result."""
    tree = ET.parse(path)
    tk = {"passed": 0, "failed": 0, "skipped": 0}
    nb_s = 0.0
    for tc in tree.iter("testcase"):
        cls, name = tc.get("classname", ""), tc.get("name", "")
        t = float(tc.get("time") or 0)
        bad = tc.find("failure") is not None or tc.find("error") is not None
        skipped = tc.find("skipped") is not None
        if "ipynb" in cls:  # an nbval cell: classname "notebooks.02_core_concepts.ipynb"
            parts = cls.replace("/", ".").split(".")
            ch = next((p[:2] for p in parts if p[:2].isdigit() and p[2:3] == "_"), "??")
            ch += "".join(f" {p}" for p in parts if p in LANGUAGES)  # a translated notebook: its own column
            row = res.chapters.setdefault(ch, {"cells": 0, "failed": 0, "s": 0.0})
            row["cells"] += 1
            row["s"] = round(row["s"] + t, 1)
            nb_s += t
            if bad:
                row["failed"] += 1
                res.failures.append(f"{cls}::{name}")
            continue
        # [course-02_core_concepts], [course-zh-02_core_concepts] (a translation); the fixture's are 90+
        m = re.search(r"\[[\w.]+-(?:[a-z]{2}-)?(\d\d)_", name)
        if "test_checks_fail_on_student_copy_and_pass_on_master" in name and m and m.group(1) < "90":
            ch = m.group(1)
            res.chapters.setdefault(ch, {"cells": 0, "failed": 0, "s": 0.0})["grade"] = (
                "fail" if bad else "pass"
            )
            if bad:
                res.failures.append(f"{cls}::{name}")
            continue
        key = "skipped" if skipped else "failed" if bad else "passed"
        tk[key] += 1
        if bad:
            res.failures.append(f"{cls}::{name}")
    for row in res.chapters.values():
        row["nbval"] = "pass" if row["cells"] and not row["failed"] else ("fail" if row["cells"] else "-")
    res.nbval_s = round(nb_s, 1)
    res.toolkit = tk


def _sanitizer(vm: bool, workdir: Path, podman: bool = False) -> str:
    cfg = (ROOT / "tests" / "nbval_sanitize.cfg").read_text()
    if vm:
        cfg += "\n" + (ROOT / "tests" / "nbval_sanitize_vm.cfg").read_text()
    if podman:
        cfg += "\n" + (ROOT / "tests" / "nbval_sanitize_podman.cfg").read_text()
    out = workdir / "sanitize.cfg"
    out.write_text(cfg)
    return str(out)


def run_one(name: str, workdir: Path, pytest_args: list[str]) -> EngineResult:
    """Start ``name`` from a clean state, measure it, run the test command on it, remove it."""
    spec = ENGINES[name]
    res = EngineResult(name, spec.title)
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = workdir / "run.log"
    vm = spec.kind in ("vm", "podman")
    data_root = state_dir() / "matrix" / name / "data"
    try:
        docker_host = _vm_up(res, logfile, spec.kind) if vm else _local_up(name, data_root, res)
        res.started = True
        _describe(res, docker_host)
        env = _env(docker_host, vm)
        if vm:
            res.notes.append(
                "course images come seeded in the VM's disk (from the host's mirror): no kit run"
            )
        else:
            _kit(res, env, logfile)
        res.run_p50_ms, res.run_p95_ms = run_latency(docker_host, runs=10 if vm else 20)
        _pytest(name, res, env, workdir, vm, pytest_args)
        if not vm:
            local.stop(quiet=True)
            t0 = time.monotonic()
            rec = local.up(name, data_root=str(data_root))
            res.start_to_api_warm_s = rec.get("api_seconds") or round(time.monotonic() - t0, 2)
    except (EngineError, OSError, subprocess.SubprocessError) as e:
        res.error = str(e).splitlines()[0][:300]
        log(f"{name}: {res.error}")
    except Exception as e:  # a result for every engine, whatever went wrong with one
        res.error = f"{e.__class__.__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        log(f"{name}: {res.error}")
    finally:
        _take_down(vm, data_root, res, logfile)
        res.finished = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        (workdir / "result.json").write_text(json.dumps(asdict(res), indent=1))
    return res


def stored_results(runs: list[Path]) -> list[EngineResult]:
    """The newest stored result of each engine in the run folders ``runs``, in the matrix's order."""
    newest: dict[str, EngineResult] = {}
    for f in sorted(p for run in runs for p in Path(run).glob("*/result.json")):
        try:
            d = json.loads(f.read_text())
            r = EngineResult(**{k: v for k, v in d.items() if k in EngineResult.__dataclass_fields__})
        except (OSError, ValueError, TypeError) as e:
            log(f"skipping {f}: {e}")
            continue
        junit = f.parent / "junit.xml"
        if junit.exists():  # read again: the table's reading of it may have improved since
            r.chapters, r.toolkit, r.failures = {}, {}, []
            parse_junit(junit, r)
        if r.name not in newest or r.finished >= newest[r.name].finished:
            newest[r.name] = r
    return [newest[n] for n in ORDER if n in newest]


def _local_up(name: str, data_root: Path, res: EngineResult) -> str:
    local.stop(quiet=True)
    if data_root.exists():
        rmtree_unmounted(data_root)
    t0 = time.monotonic()
    rec = local.up(name, data_root=str(data_root))
    res.start_to_api_s = rec.get("api_seconds") or round(time.monotonic() - t0, 2)
    return rec["docker_host"]


def _kit(res: EngineResult, env: dict, logfile: Path) -> None:
    """The image kit on the fresh engine: cold (builds everything), then warm (verifies)."""
    dc = [sys.executable, "-m", "dockercourse.cli"]
    rc, res.kit_cold_s = _timed([*dc, "images"], env, 1800, logfile)
    if rc != 0:
        raise EngineError(f"dockercourse images failed (see {logfile})")
    _, res.kit_warm_s = _timed([*dc, "images"], env, 600, logfile)


def _pytest(name: str, res: EngineResult, env: dict, workdir: Path, vm: bool, pytest_args: list[str]) -> None:
    """The README's test command's pytest on this engine; the results from its JUnit file."""
    sel = SELECT.get(name, DEFAULT_SELECT)
    targets = sel if sel and not sel[0].startswith("-") else ["tests", "notebooks"]
    marks = sel if sel and sel[0].startswith("-") else []
    junit = workdir / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        _sanitizer(vm, workdir, podman=ENGINES[name].kind == "podman"),
        "--ignore=tests/fixtures",
        # the translated notebooks (notebooks/zh/) run the masters' code cells unchanged: the matrix runs
        # the masters, the test command both (docs/i18n.md)
        *(f"--ignore=notebooks/{lang}" for lang in LANGUAGES),
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={junit}",
        *marks,
        *pytest_args,
    ]
    if vm:
        cmd += ["--nbval-cell-timeout", "600"]
    rc, res.pytest_s = _timed(cmd, env, TIMEOUT, workdir / "run.log")
    if junit.exists():
        parse_junit(junit, res)
    if rc not in (0, 1):
        res.error = f"pytest exited with status {rc} (see {workdir / 'run.log'})"


def _take_down(vm: bool, data_root: Path, res: EngineResult, logfile: Path) -> None:
    if vm:
        _vm_down(logfile)
        return
    local.stop(quiet=True)
    if data_root.exists():
        try:
            rmtree_unmounted(data_root)
        except EngineError as e:
            res.notes.append(str(e))


def _vm_up(res: EngineResult, logfile: Path, kind: str) -> str:
    """The VM engine, started while the primary engine runs (its mirror seeds the VM's disk)."""
    if local.answering() is None:
        local.up(PRIMARY)
    t0 = time.monotonic()
    with open(logfile, "ab") as f:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockercourse.cli",
                "engine",
                "vm",
                "up",
                "--name",
                "matrix",
                "--flavor",
                "podman" if kind == "podman" else "docker",
                "--images",
                "all",
                "--export",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            cwd=ROOT,
        )
        f.write((r.stderr or "").encode())
    if r.returncode != 0:
        raise EngineError(f"the VM engine did not start: {(r.stderr or '').strip().splitlines()[-1:]}")
    res.start_to_api_s = round(time.monotonic() - t0, 1)
    res.notes.append("start to API includes building the VM's disk when it is not cached")
    return r.stdout.strip().split("=", 1)[1]


def _vm_down(logfile: Path) -> None:
    from dockercourse.vm.state import named_dir

    console = named_dir("matrix") / "console.log"  # the guest's own words (a restarted engine, the kernel)
    try:
        shutil.copyfile(console, logfile.parent / "console.log")
    except OSError:
        pass
    with open(logfile, "ab") as f:
        subprocess.run(
            [sys.executable, "-m", "dockercourse.cli", "engine", "vm", "down", "--name", "matrix"],
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=120,
            cwd=ROOT,
        )


# --------------------------------------------------------------------------- the table


def _restore(before: dict | None) -> None:
    """Start the engine that ran before the matrix again, with its mirror where the engine looks for it."""
    if not (before and before.get("name") in ENGINES and local.answering() is None):
        return
    try:
        rec = local.up(before["name"])
        log(f"started {before['title']} again, as before the matrix")
        # its mirror container still publishes the port of its own start, while the engine may have been
        # given another (one was taken during the matrix): `dockercourse images` puts them together again
        env = dict(os.environ, DOCKER_HOST=rec["docker_host"])
        subprocess.run(
            [sys.executable, "-m", "dockercourse.cli", "images"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=1800,
        )
    except (EngineError, subprocess.SubprocessError, OSError) as e:
        log(f"could not start {before['name']} again: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./course test --matrix", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--engines", default=",".join(ORDER), help=f"comma-separated engines (default: {','.join(ORDER)})"
    )
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/engines.md")
    ap.add_argument(
        "--out", type=Path, default=None, help="folder for logs and results (default: state folder)"
    )
    ap.add_argument(
        "--report",
        nargs="*",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="start no engine: the table from the newest stored result of each engine "
        "(in these run folders; default: every run in the state folder)",
    )
    a, pytest_args = ap.parse_known_args(argv)
    if a.report is not None:
        return report(a.report or sorted((state_dir() / "matrix" / "runs").glob("*")), a.no_docs)
    try:
        names = [local.resolve(n).name for n in a.engines.split(",") if n.strip()]
    except UsageError as e:
        print(f"matrix: {e}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("matrix: starting engines needs root (sudo ./course test --matrix)", file=sys.stderr)
        return 1
    before = local.read_record()
    now = local.answering()
    if (
        now
        and not (before and before.get("docker_host") == now[0])
        and any(ENGINES[n].kind != "vm" for n in names)
    ):
        print(
            f"matrix: an engine the course did not start answers at {now[0]}; "
            "the matrix starts engines of its own and needs the machine to itself: stop that engine first",
            file=sys.stderr,
        )
        return 1
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = a.out or (state_dir() / "matrix" / "runs" / stamp)
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), time.monotonic()
    results = []
    try:
        for n in names:
            log(f"{n}: {ENGINES[n].title} ...")
            r = run_one(n, out / n, pytest_args)
            results.append(r)
            log(
                f"{n}: {'error: ' + r.error if r.error else 'done'}; nbval "
                f"{sum(1 for c in r.chapters.values() if c.get('nbval') == 'pass')}/{len(r.chapters)} "
                "chapters pass"
            )
    finally:
        _restore(before)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    print(table(results))
    print()
    print(bench_table(results))
    if not a.no_docs:
        write_docs(results, ROOT / "docs" / "engines.md", started, time.monotonic() - t0)
        log("wrote docs/engines.md")
    log(f"logs and results.json in {out}")
    ok = all(not r.error and not r.failures for r in results)
    return 0 if ok else 1


def report(runs: list[Path], no_docs: bool) -> int:
    """``--report``: the table and figures of stored results; docs/engines.md rewritten."""
    results = stored_results(runs)
    if not results:
        print("matrix: no stored engine results in " + ", ".join(map(str, runs)), file=sys.stderr)
        return 1
    print(table(results))
    print()
    print(bench_table(results))
    if not no_docs:
        dates = sorted(r.finished for r in results if r.finished)
        span = f"{dates[0]} to {dates[-1]}" if dates and dates[0] != dates[-1] else (dates or [""])[0]
        write_docs(results, ROOT / "docs" / "engines.md", span, None)
        log("wrote docs/engines.md")
    return 0 if all(not r.error and not r.failures for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
