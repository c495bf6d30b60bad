"""The engine matrix's results as text: the table (engine x chapter), the figures, docs/engines.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockercourse.engines.matrix import EngineResult


def machine_line() -> str:
    try:
        mem = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        mem_txt = f"{mem / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem_txt = "?"
    cg = "cgroup v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v1"
    osr = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            osr[k] = v.strip('"')
    except OSError:
        pass
    return (
        f"{osr.get('PRETTY_NAME', platform.system())}, kernel {platform.release()}, {os.cpu_count()} cores, "
        f"{mem_txt}, host {cg}"
    )


def table(results: list[EngineResult]) -> str:
    chapters = sorted({ch for r in results for ch in r.chapters})
    head = "| engine | " + " | ".join(chapters) + " | grading | toolkit tests |"
    sep = "|---|" + "---|" * len(chapters) + "---|---|"
    rows = [head, sep]
    for r in results:
        cells = []
        for ch in chapters:
            row = r.chapters.get(ch)
            if not row or not row.get("cells"):
                cells.append("—")
                continue
            mark = "✓" if row["nbval"] == "pass" else f"✗ {row['failed']}"
            cells.append(f"{mark} {row['s']:.0f} s")
        grades = [row.get("grade") for row in r.chapters.values() if row.get("grade")]
        grading = (
            "✓"
            if grades and all(g == "pass" for g in grades)
            else f"✗ {sum(g == 'fail' for g in grades)}"
            if grades
            else "—"
        )
        tk = r.toolkit
        ran = tk and (tk.get("passed") or tk.get("failed"))
        tk_txt = f"{tk.get('passed', 0)} ✓, {tk.get('failed', 0)} ✗" if ran else "—"
        name = f"{r.title}" + (
            f" ({r.server_version}, {r.image_store} store, {r.cgroup})" if r.server_version else ""
        )
        if r.error and not r.chapters:
            rows.append(f"| {name} | " + " | ".join("—" for _ in chapters) + f" | — | not run: {r.error} |")
        else:
            rows.append(f"| {name} | " + " | ".join(cells) + f" | {grading} | {tk_txt} |")
    return "\n".join(rows)


def bench_table(results: list[EngineResult]) -> str:
    def f(v, unit="s", digits=1):
        return "—" if v is None else f"{v:.{digits}f} {unit}"

    rows = [
        "| engine | start to API (empty / with the kit) | `docker run` p50 / p95 | image kit cold / warm "
        "| nbval, all notebooks | whole pytest run |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.title} | {f(r.start_to_api_s, 's', 2)} / {f(r.start_to_api_warm_s, 's', 2)} "
            f"| {f(r.run_p50_ms, 'ms', 0)} / {f(r.run_p95_ms, 'ms', 0)} "
            f"| {f(r.kit_cold_s)} / {f(r.kit_warm_s)} | {f(r.nbval_s)} | {f(r.pytest_s)} |"
        )
    return "\n".join(rows)


BEGIN, END = "<!-- matrix:begin (written by ./course test --matrix) -->", "<!-- matrix:end -->"


def results_markdown(results: list[EngineResult], started: str, seconds: float | None) -> str:
    notes = []
    for r in results:
        for n in r.notes:
            notes.append(f"- {r.title}: {n}")
        for fail in r.failures[:20]:
            notes.append(f"- {r.title}: failed `{fail}`")
        if r.error:
            notes.append(f"- {r.title}: {r.error}")
    dated = {r.finished[:10] for r in results if r.finished}
    if len(dated) > 1:  # put together from runs of several days (--report)
        notes.append("- each engine's run ended: " + ", ".join(f"{r.name} {r.finished}" for r in results))
    took = (
        f", {seconds / 60:.0f} minutes"
        if seconds is not None
        else " (engines run one after another in parts)"
    )
    return f"""{BEGIN}
**Last run:** {started} UTC{took}, on {machine_line()}.

A chapter's cell shows ✓ (or ✗ and the number of failing cells) and the seconds its notebook took under
strict nbval; *grading* is the non-vacuity test (each chapter's student copy released and graded: every
check fails; the master graded: every check passes); *toolkit tests* are the rest of the test suite.

{table(results)}

Start to API: from starting `dockerd` to the first answer of `/_ping`, with an empty data root and again
with the kit's images in it (the VM engine: `dockercourse engine vm up`, boot included). `docker run`:
`docker run --rm busybox:1.35.0 true` through docker-py, 20 runs after one warm-up (10 on the VM engine).
Image kit cold: every course image built from Debian's packages (no registry can be reached here) and the
mirror seeded; warm: the second run, which only verifies.

{bench_table(results)}
{chr(10).join(notes)}
{END}"""


def write_docs(results: list[EngineResult], path: Path, started: str, seconds: float | None) -> None:
    """Replace the generated part of ``docs/engines.md`` (between the markers) with this run's results."""
    block = results_markdown(results, started, seconds)
    text = path.read_text() if path.exists() else f"# The engine matrix\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


# --------------------------------------------------------------------------- command line
