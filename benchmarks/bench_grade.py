#!/usr/bin/env python3
"""Benchmark: grading N copies of a chapter vs executing the same notebooks bare.

    .venv/bin/python benchmarks/bench_grade.py [-n 4] [--chapter 02] [--root DIR] [--skip-bare-j2]

Measures, on the real engine (every run in a namespace of its own):

* bare -j1:  the N notebooks executed one after the other with plain nbclient
  (``NotebookClient.execute()``, a fresh kernel each), as ``tools/execute.py`` does;
* bare -j2:  the same, two at a time (how well the engine and machine scale at all);
* grade -j1: ``dockercourse grade`` of the N copies, one worker;
* grade -j2: the same with two workers.

and prints the overhead of grading (grade -j1 / bare -j1; goal ≤ 1.15) and the
speed-up of two workers (grade -j1 / grade -j2; goal ≥ 1.7). The copies are of the
master, so every grade must be full marks; the script says so if not.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bare_one(path: str, root: str, tag: str) -> float:
    """Execute one notebook with plain nbclient in namespace ``tag``; seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    work = tempfile.mkdtemp(prefix="dcbench-")
    env = dict(
        os.environ, DOCKERCOURSE_NS=tag, DOCKERCOURSE_RUN=uuid.uuid4().hex[:12], DOCKERCOURSE_ROOT=root
    )
    t0 = time.monotonic()
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": work}}
        ).execute(env=env)
        return time.monotonic() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bare(paths: list[Path], root: Path, jobs: int) -> float:
    tags = [f"b{uuid.uuid4().hex[:6]}{k}" for k in range(len(paths))]
    t0 = time.monotonic()
    if jobs == 1:
        for p, tag in zip(paths, tags, strict=True):
            bare_one(str(p), str(root), tag)
    else:
        with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(bare_one, [str(p) for p in paths], [str(root)] * len(paths), tags))
    took = time.monotonic() - t0
    _clean(paths, root, tags)
    return took


def _clean(paths, root, tags):
    import nbformat

    from dockercourse.core.engine import connect
    from dockercourse.core.namespace import Namespace
    from dockercourse.core.notebooks import chapter_of
    from dockercourse.grading.namespaces import clean_namespace

    client = connect()
    chapter = chapter_of(nbformat.read(paths[0], as_version=4), paths[0])
    for tag in tags:
        clean_namespace(client, Namespace(chapter=chapter, tag=tag))


def grade(folder: Path, root: Path, jobs: int, chapter: str, engine: str = "host") -> tuple[float, list]:
    from dockercourse.grading.batch import grade_folder

    out = Path(tempfile.mkdtemp(prefix="dcbench-out-"))
    try:
        t0 = time.monotonic()
        rep = grade_folder(
            folder,
            out,
            chapter=chapter,
            root=root,
            jobs=jobs,
            force=True,
            progress=False,
            cell_timeout=300,
            submission_timeout=1200,
            engine=engine,  # host: the same engine as the bare runs (the others: bench_isolation.py)
        )
        return time.monotonic() - t0, rep.grades
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4, help="copies of the chapter (default 4)")
    ap.add_argument(
        "--chapter", default=None, help="chapter (default: 02 if the course has it, else the fixture)"
    )
    ap.add_argument(
        "--root", type=Path, default=None, help="course folder (default: the repo, or the fixture)"
    )
    ap.add_argument("--skip-bare-j2", action="store_true", help="skip the bare two-at-a-time run")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of all measurements; the best of each is reported (default 1)",
    )
    a = ap.parse_args(argv)

    repo = HERE.parent
    root = a.root or (
        repo if list((repo / "notebooks").glob("02_*.ipynb")) else repo / "tests/fixtures/course"
    )
    root = root.resolve()
    chapter = a.chapter or ("02" if list((root / "notebooks").glob("02_*.ipynb")) else "90")
    master = sorted((root / "notebooks").glob(f"{chapter}_*.ipynb"))[0]
    os.environ["DOCKERCOURSE_ROOT"] = str(root)

    folder = Path(tempfile.mkdtemp(prefix="dcbench-subs-"))
    try:
        paths = []
        for k in range(1, a.n + 1):
            p = folder / f"student{k:03d}.ipynb"
            shutil.copyfile(master, p)
            paths.append(p)
        print(f"chapter {chapter} ({master.name}), {a.n} copies, {os.cpu_count()} CPUs", flush=True)
        fig: dict[str, float] = {}
        g1: list = []
        g2: list = []

        def keep(key, secs):
            fig[key] = min(secs, fig.get(key, secs))
            per = f"  ({secs / a.n:.1f} s per notebook)" if key.endswith("j1") else ""
            print(f"  {key:9s}: {secs:7.1f} s{per}", flush=True)

        for r in range(a.repeat):
            if a.repeat > 1:
                print(f" round {r + 1}/{a.repeat}", flush=True)
            keep("bare -j1", bare(paths, root, 1))
            secs, g = grade(folder, root, 1, chapter)
            g1 += g
            keep("grade -j1", secs)
            secs, g = grade(folder, root, 2, chapter)
            g2 += g
            keep("grade -j2", secs)
            if not a.skip_bare_j2:
                keep("bare -j2", bare(paths, root, 2))
        if a.repeat > 1:
            print("best of each: " + ", ".join(f"{k} {v:.1f} s" for k, v in fig.items()))
        overhead = fig["grade -j1"] / fig["bare -j1"]
        speedup = fig["grade -j1"] / fig["grade -j2"]
        print(f"grading overhead (grade -j1 / bare -j1): {overhead:.2f}x  (goal <= 1.15)")
        print(f"speed-up of -j 2 (grade -j1 / grade -j2): {speedup:.2f}x  (goal >= 1.7)")
        if "bare -j2" in fig:
            print(f"for comparison, bare speed-up of two at a time: {fig['bare -j1'] / fig['bare -j2']:.2f}x")
        bad = [g.student for g in g1 + g2 if g.status != "ok" or g.total != g.possible]
        if bad:
            print(f"WARNING: not full marks for {len(bad)} graded copies: {sorted(set(bad))}")
            for g in g1 + g2:
                if g.student in bad:
                    print(f"  {g.student}: {g.status} {g.total}/{g.possible} {g.notes[:2]}")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
