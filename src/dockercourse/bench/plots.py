"""Plots of the chapter 01 measurements; published figures are drawn hatched and marked *reference*.

Every function draws one figure from the numbers it is given and shows it (``plt.show()``),
so a notebook cell that calls it gets a static image that reads well on GitHub.
"""

from __future__ import annotations

import random
import statistics

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from dockercourse.bench import reference
from dockercourse.i18n.figures import figure_text, use_language

LIVE = "#3b78b5"
LIVE2 = "#6aaed6"
VMC = "#d9822b"
REF = "#bbbbbb"
MiB = 2**20


def _vm_name(vm) -> str:
    return vm.label if vm is not None and vm.available else "VM"


def _ref_bar(ax, x, h, label):
    ax.bar(x, h, color="white", edgecolor="#777777", hatch="//", label=label)


def _done(fig, show: bool):
    fig.tight_layout()
    if show:
        plt.show()
    return None if show else fig


def start_latency(runs: dict[str, list[dict]], vm=None, show: bool = True):
    """Left: every container start (jittered dots, box = quartiles); right: medians vs the VM boot."""
    use_language()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1]})
    rnd = random.Random(1)
    labels = list(runs)
    data = [[r["seconds"] * 1000 for r in runs[k]] for k in labels]
    a1.boxplot(data, showfliers=False, widths=0.5)
    for i, ys in enumerate(data, 1):
        a1.scatter([i + rnd.uniform(-0.15, 0.15) for _ in ys], ys, s=14, color=LIVE, alpha=0.7, zorder=3)
    a1.set_xticks(
        range(1, len(labels) + 1), [figure_text(f"network={k}\n({len(runs[k])} runs)") for k in labels]
    )
    a1.set_ylabel(figure_text("docker run -d, create + start (ms)"))
    a1.set_title(figure_text("Container start on this machine"))
    a1.set_ylim(bottom=0)

    names, vals, kinds = [], [], []
    for k in labels:
        names.append(figure_text(f"container\n{k}\nmedian"))
        vals.append(statistics.median(r["seconds"] for r in runs[k]))
        kinds.append("live")
    if vm is not None and vm.available:
        how = figure_text("TCG, emulated") if vm.emulated else "KVM"
        names.append(figure_text(f"tiny VM\n{how}\nboot to init"))
        vals.append(vm.boot_seconds)
        kinds.append("vm")
    fc, _, _ = reference.figure("firecracker_microvm", "boot_to_init")
    names.append(figure_text("Firecracker\nmicroVM\n(reference)"))
    vals.append(fc / 1000)
    kinds.append("ref")
    seen = set()
    for i, (v, kd) in enumerate(zip(vals, kinds, strict=True)):
        lab = {
            "live": figure_text("container, measured here"),
            "vm": figure_text(f"{_vm_name(vm)}, measured here"),
            "ref": figure_text("reference (published)"),
        }[kd]
        lab = None if kd in seen else lab
        seen.add(kd)
        if kd == "ref":
            _ref_bar(a2, i, v, lab)
        else:
            a2.bar(i, v, color=LIVE if kd == "live" else VMC, label=lab)
        a2.text(i, v * 1.15, f"{v:.2f} s" if v >= 0.1 else f"{v * 1000:.0f} ms", ha="center", fontsize=9)
    a2.set_yscale("log")
    a2.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    a2.yaxis.set_minor_formatter(NullFormatter())
    a2.set_xticks(range(len(names)), names, fontsize=8)
    a2.set_ylabel(figure_text("seconds (log scale)"))
    a2.set_title(figure_text("Start-up: container vs VM"))
    a2.set_ylim(min(vals) / 3, max(vals) * 8)
    a2.legend(fontsize=8, loc="upper left")
    return _done(fig, show)


def memory(container_mem: dict, vm=None, show: bool = True):
    """One idle container (its cgroup + its shim) vs the tiny VM's qemu process (MiB)."""
    use_language()
    fig, ax = plt.subplots(figsize=(8, 4))
    cg = (container_mem.get("cgroup_bytes") or 0) / MiB
    shim = (container_mem.get("shim_pss") or container_mem.get("shim_rss") or 0) / MiB
    ax.bar(0, cg, color=LIVE, label=figure_text("container cgroup (its processes)"))
    ax.bar(0, shim, bottom=cg, color=LIVE2, label=figure_text("containerd-shim (PSS)"))
    ax.text(0, (cg + shim) * 1.03, f"{cg + shim:.1f} MiB", ha="center")
    names = [figure_text("idle container\n(sleep)")]
    x = 1
    if vm is not None and vm.available and vm.rss_bytes:
        v = vm.rss_bytes / MiB
        ax.bar(x, v, color=VMC, label=figure_text(f"qemu process RSS ({vm.memory_mb} MiB guest)"))
        ax.text(x, v * 1.03, f"{v:.0f} MiB", ha="center")
        names.append(figure_text(f"tiny {_vm_name(vm)}\n(qemu, at init)"))
        x += 1
    shim_ref, _, _ = reference.figure("containerd_shim_runc_v2", "rss_per_container")
    fc, _, _ = reference.figure("firecracker_microvm", "vmm_memory_overhead")
    refs = (
        (shim_ref, figure_text("shim RSS\n(ref.)")),
        (fc, figure_text("Firecracker VMM\noverhead (ref.)")),
    )
    for i, (v, n) in enumerate(refs):
        _ref_bar(ax, x, v, figure_text("reference (published)") if i == 0 else None)
        ax.text(x, v * 1.03, f"{v:.0f} MiB", ha="center")
        names.append(n)
        x += 1
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylabel("MiB")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    ax.set_title(figure_text("Memory of one idle instance"))
    ax.legend(fontsize=8)
    return _done(fig, show)


def density(rows: list[dict], show: bool = True):
    """Start time and memory against the number of idle containers N."""
    use_language()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ns = [r["n"] for r in rows]
    a1.plot(ns, [r["seconds"] for r in rows], "o-", color=LIVE, label=figure_text("total time to start N"))
    a1b = a1.twinx()
    a1b.plot(
        ns,
        [r["seconds_per_start"] * 1000 for r in rows],
        "s--",
        color=VMC,
        label=figure_text("ms per start (last step)"),
    )
    a1.set_xlabel(figure_text("N idle containers"))
    a1.set_ylabel(figure_text("seconds since the first start"))
    a1b.set_ylabel(figure_text("ms per container"))
    a1b.set_ylim(0, max(r["seconds_per_start"] for r in rows) * 1000 * 1.6)
    a1.set_ylim(0, max(r["seconds"] for r in rows) * 1.25)
    a1.set_title(figure_text("Starting N containers"))
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a1b.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    a2.plot(
        ns,
        [r["cgroup_bytes"] / MiB for r in rows],
        "o-",
        color=LIVE,
        label=figure_text("containers' cgroups"),
    )
    a2.plot(
        ns, [r["shim_pss"] / MiB for r in rows], "o-", color=LIVE2, label=figure_text("their shims (PSS)")
    )
    a2.plot(
        ns, [(r["cgroup_bytes"] + r["shim_pss"]) / MiB for r in rows], "k:", label=figure_text("together")
    )
    a2.set_xlabel(figure_text("N idle containers"))
    a2.set_ylabel("MiB")
    a2.set_title(figure_text("Memory of N containers"))
    a2.legend(fontsize=8)
    return _done(fig, show)


def cpu(native: float, container: float, vm=None, mb: int | None = None, show: bool = True):
    """Relative speed of the same workload (native = 1.0), beside the published linpack figures.

    ``mb`` is the size the native and container runs hashed; the VM's time is scaled to it when
    the VM hashed a different amount (``vm.cpu_mb``).
    """
    ref = reference.relative_speed("linpack_two_sockets")
    use_language()
    fig, ax = plt.subplots(figsize=(8, 4))
    names, vals, kinds = [figure_text("native")], [1.0], ["live"]
    names.append(figure_text("container"))
    vals.append(native / container)
    kinds.append("live")
    if vm is not None and vm.available and vm.cpu_seconds:
        names.append(_vm_name(vm))
        scale = (mb / vm.cpu_mb) if (mb and vm.cpu_mb) else 1.0
        vals.append(native / (vm.cpu_seconds * scale))
        kinds.append("vm")
    for k in ("docker", "kvm"):
        names.append(figure_text(f"{'Docker' if k == 'docker' else 'KVM'}\nlinpack (ref.)"))
        vals.append(ref[k])
        kinds.append("ref")
    for i, (v, kd) in enumerate(zip(vals, kinds, strict=True)):
        if kd == "ref":
            _ref_bar(ax, i, v, figure_text("reference: Felter et al. 2014") if "Docker" in names[i] else None)
        else:
            ax.bar(
                i,
                v,
                color=LIVE if kd == "live" else VMC,
                label=figure_text("measured here")
                if i == 0
                else figure_text("VM, measured here")
                if kd == "vm"
                else None,
            )
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center")
    ax.axhline(1.0, color="#555555", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylabel(figure_text("speed relative to native"))
    ax.set_ylim(0, 1.25)
    ax.set_title(figure_text("CPU-bound work (busybox sha256sum), higher is faster"))
    ax.legend(fontsize=8, loc="upper right")
    return _done(fig, show)


def sizes(items: list[tuple[str, int, str]], show: bool = True):
    """Bars of sizes in MB (log scale); ``items`` are (label, bytes, "container" | "vm")."""
    use_language()
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (_lab, b, kind) in enumerate(items):
        v = b / 1e6
        ax.bar(
            i,
            v,
            color=LIVE if kind == "container" else VMC,
            label={"container": figure_text("container image"), "vm": figure_text("VM disk / boot files")}[
                kind
            ]
            if kind not in [k for _, _, k in items[:i]]
            else None,
        )
        ax.text(i, v * 1.1, f"{v:.1f} MB", ha="center", fontsize=9)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.set_xticks(range(len(items)), [lab for lab, _, _ in items], fontsize=8)
    ax.set_ylabel(figure_text("MB (log scale)"))
    ax.set_ylim(top=max(b for _, b, _ in items) / 1e6 * 5)
    ax.set_title(figure_text("Disk: container images vs VM images of the same userland"))
    ax.legend(fontsize=8, loc="upper left")
    return _done(fig, show)


def summary(rows: list[tuple[str, str, str, str]], show: bool = True):
    """The comparison table as a figure: (row, container measured, VM measured, textbook claim)."""
    use_language()
    fig, ax = plt.subplots(figsize=(11, 0.5 + 0.42 * (len(rows) + 1)))
    ax.axis("off")
    table = ax.table(
        cellText=[list(r[1:]) for r in rows],
        rowLabels=[r[0] for r in rows],
        colLabels=[
            figure_text("container (measured here)"),
            figure_text("VM (measured here)"),
            figure_text("textbook"),
        ],
        cellLoc="center",
        rowLoc="right",
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.5)
    for (r, c), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#e8e8e8")
            cell.set_text_props(weight="bold")
        elif c == 0:
            cell.set_facecolor("#eaf2fa")
        elif c == 1:
            cell.set_facecolor("#fbeee0")
    ax.set_title(figure_text("Containers vs virtual machines on this machine"), pad=4)
    return _done(fig, show)
