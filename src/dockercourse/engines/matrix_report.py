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
    """Replace the generated part of ``docs/engines.md`` (between the markers) with this run's results.

    The rows of engines this run did not start are kept as the docs had them (their table row, figures
    row, notes and end time): a run of one engine must not wipe the others' rows from the docs, also on a
    machine that has none of their stored results."""
    text = path.read_text() if path.exists() else f"# The engine matrix\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        old, tail = rest.split(END, 1)
        text = head + merge_block(old, results, started, seconds) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + results_markdown(results, started, seconds) + "\n"
    path.write_text(text)


def merge_block(old: str, results: list[EngineResult], started: str, seconds: float | None) -> str:
    """This run's block, with the rows ``old`` (a block written before) has for the other engines."""
    from dockercourse.engines.specs import ENGINES

    block = results_markdown(results, started, seconds)
    ran = {r.name for r in results}
    kept = {n: s.title for n, s in ENGINES.items() if n not in ran}
    if not kept or "Start to API:" not in old:
        return block

    def owner(line: str, lead: str) -> str | None:
        for n, title in kept.items():
            if line.startswith(f"{lead}{title} (") or line.startswith(f"{lead}{title} |"):
                return n
            if lead == "- " and line.startswith(f"- {title}:"):
                return n
        return None

    grid, figures = old.split("Start to API:", 1)
    rows = {n: line for line in grid.splitlines() if (n := owner(line, "| "))}
    fig_rows = {n: line for line in figures.splitlines() if (n := owner(line, "| "))}
    ran_titles = tuple(f"- {ENGINES[n].title}" for n in ran if n in ENGINES)
    notes = [  # the kept engines' notes, and those of no one engine (they speak of the kept rows)
        line
        for line in figures.splitlines()
        if line.startswith("- ")
        and not line.startswith(ran_titles)
        and not line.startswith("- each engine's run ended")
    ]
    ended = {}
    for line in figures.splitlines():
        if line.startswith("- each engine's run ended: "):
            for part in line.split(": ", 1)[1].split(", "):
                name, _, when = part.partition(" ")
                if name in kept:
                    ended[name] = when
    if not rows:
        return block
    order = list(ENGINES)
    out, new_rows, new_figs = [], {}, {}
    for r in results:
        new_rows[r.name] = table([r]).splitlines()[2]
        new_figs[r.name] = bench_table([r]).splitlines()[2]
    lines = block.splitlines()
    table_at = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    fig_at = next(i for i, line in enumerate(lines) if i > table_at + 1 and line.startswith("|---"))
    for i, line in enumerate(lines):
        if i == table_at:
            out.append(line)
            out += [rows.get(n) or new_rows[n] for n in order if n in rows or n in new_rows]
        elif i == fig_at:
            out.append(line)
            out += [fig_rows.get(n) or new_figs[n] for n in order if n in fig_rows or n in new_figs]
        elif line in new_rows.values() or line in new_figs.values() or line.startswith("- each engine's"):
            continue
        elif line.startswith("**Last run:**"):
            out.append(line.replace("**Last run:**", "**Last run** (of " + ", ".join(sorted(ran)) + "):", 1))
            out.append("")
            out.append(
                "The other rows are from earlier runs, kept as they were: "
                + ", ".join(f"{n} ended {ended.get(n, 'earlier')}" for n in order if n in rows)
                + "."
            )
        elif line == END:
            out += notes
            ends = {**ended, **{r.name: r.finished for r in results if r.finished}}
            done = ", ".join(f"{n} {ends[n]}" for n in order if n in ends)
            out.append("- each engine's run ended: " + done)
            out.append(line)
        else:
            out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------- command line
