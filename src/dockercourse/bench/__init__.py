"""Chapter 01 benchmarks: containers vs a virtual machine, measured on this machine.

* :mod:`.containers` - start latency, memory of an idle container, density, CPU-bound work;
* :mod:`.vm`         - a tiny Linux guest under qemu: boot to init, qemu's memory, the same work;
* :mod:`.reference`  - published figures (with sources) plotted beside the live ones;
* :mod:`.plots`      - one figure per comparison; :mod:`.widgets` - an ipywidgets explorer.

From a terminal::

    dockercourse bench                      # quick: 10 starts each way, density up to 30, one VM boot
    dockercourse bench --runs 30 --density 100
    dockercourse bench --full               # density up to 500 containers (minutes; removes them all)
    dockercourse bench --csv results/       # also write every measurement as CSV

Everything the benchmarks start is named ``dc01bench-...`` (from a terminal) or with the
notebook's ``name()``, labelled, and removed before the command ends - also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

FULL_COUNTS = (1, 10, 25, 50, 100, 200, 300, 400, 500)


def save_csv(rows: list[dict], path: str | Path) -> Path:
    """Write measurement rows (dicts) as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def _counts(n: int) -> list[int]:
    if n >= 500:
        return list(FULL_COUNTS)
    pts = {1, n} | {max(1, round(n * f)) for f in (0.1, 0.25, 0.5, 0.75)}
    return sorted(pts)


def _mib(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f} MiB"


def main(argv=None) -> int:
    """``dockercourse bench``: measure and print the chapter 01 figures."""
    from dockercourse.core.engine import connect
    from dockercourse.core.images import BUSYBOX, DEBIAN
    from dockercourse.core.namespace import Namespace
    from dockercourse.bench import containers as C
    from dockercourse.bench import vm as V

    p = argparse.ArgumentParser(prog="dockercourse bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="container starts per network mode (default 10)")
    p.add_argument("--density", type=int, default=30, metavar="N", help="density sweep up to N containers")
    p.add_argument("--full", action="store_true", help="density sweep up to 500 containers")
    p.add_argument("--only", default="start,memory,density,vm,cpu,sizes",
                   help="comma-separated subset of start,memory,density,vm,cpu,sizes")
    p.add_argument("--cpu-mb", type=int, default=64, help="MiB hashed by the CPU-bound workload")
    p.add_argument("--csv", metavar="DIR", help="write every measurement as CSV into DIR")
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    ns = Namespace.for_chapter("01", tag="bench")
    client = connect(namespace=ns)
    out = Path(a.csv) if a.csv else None

    def csv_out(rows, fname):
        if out is not None:
            print(f"  -> {save_csv(rows, out / fname)}")

    busybox = C.busybox_binary(client)
    vmres = None
    try:
        if "start" in only:
            for net in ("bridge", "none"):
                rows = C.start_latency(client, ns.name, a.runs, net)
                s, e = C.summarize(rows), C.summarize(rows, "engine_seconds")
                print(f"container start, network={net:<6}: p50 {s['p50'] * 1000:.0f} ms, p95 "
                      f"{s['p95'] * 1000:.0f} ms over {s['n']} runs (engine Created->StartedAt p50 "
                      f"{e['p50'] * 1000:.0f} ms)")
                csv_out(rows, f"start_{net}.csv")
        if "memory" in only:
            m = C.idle_container_memory(client, ns.name)
            print(f"idle container memory: cgroup {_mib(m['cgroup_bytes'])} ({m['cgroup_source']}), "
                  f"shim RSS {_mib(m['shim_rss'])}, shim PSS {_mib(m['shim_pss'])}")
            csv_out([m], "memory_container.csv")
        if "vm" in only or "cpu" in only:
            vmres = V.boot_tiny_vm(busybox, cpu_mb=a.cpu_mb if "cpu" in only else 0)
            if vmres.available:
                print(f"tiny VM ({vmres.label}): boot to init {vmres.boot_seconds:.2f} s, qemu RSS "
                      f"{_mib(vmres.rss_bytes)} ({vmres.memory_mb} MiB guest), kernel "
                      f"{vmres.kernel_bytes / 1e6:.1f} MB + initramfs {vmres.initramfs_bytes / 1e6:.1f} MB")
                print("  " + V.accel_note(vmres.accel))
            else:
                print(f"tiny VM: not measured ({vmres.reason}); see the reference figures")
            csv_out([vmres.as_dict()], "vm.csv")
        if "cpu" in only:
            cc = C.cpu_compare(client, ns.name, busybox, a.cpu_mb, repeat=5)
            nat, con = cc["native"], cc["container"]
            rows = [{"where": "native", "seconds": nat, "relative_speed": 1.0},
                    {"where": "container", "seconds": con, "relative_speed": nat / con}]
            line = f"CPU-bound ({a.cpu_mb} MiB sha256): native {nat:.2f} s, container {con:.2f} s ({nat / con:.2f}x)"
            if vmres is not None and vmres.available and vmres.cpu_seconds:
                line += f", {vmres.label} {vmres.cpu_seconds:.2f} s ({nat / vmres.cpu_seconds:.2f}x)"
                rows.append({"where": vmres.label, "seconds": vmres.cpu_seconds,
                             "relative_speed": nat / vmres.cpu_seconds})
            print(line)
            csv_out(rows, "cpu.csv")
        if "sizes" in only:
            rows = []
            from dockercourse.vm import kernel as qk
            try:
                kern = qk.get_kernel(log=lambda *_: None)
            except Exception:  # noqa: BLE001
                kern = None
            for img in (BUSYBOX, DEBIAN):
                isz = C.image_size(client, img)
                d = V.vm_disk_image(client, img, kern)
                rows.append({"image": img, "image_bytes": isz, **d})
                if d.get("available"):
                    print(f"size {img}: image {isz / 1e6:.1f} MB; VM disk of the same userland + kernel: "
                          f"qcow2 {d['qcow2_bytes'] / 1e6:.1f} MB (raw {d['raw_bytes'] / 1e6:.1f} MB)")
                else:
                    print(f"size {img}: image {isz / 1e6:.1f} MB; VM disk: {d.get('reason')}")
            csv_out(rows, "sizes.csv")
        if "density" in only:
            n = 500 if a.full else a.density
            counts = _counts(n)
            print(f"density: starting up to {n} idle containers (they are removed at the end, also on Ctrl-C)")
            rows = C.density(client, ns.name, counts,
                             progress=_Dots(n) if sys.stdout.isatty() else None)
            for r in rows:
                print(f"  N={r['n']:>4}: {r['seconds']:7.1f} s in total, {r['seconds_per_start'] * 1000:5.0f} ms "
                      f"per start; cgroups {_mib(r['cgroup_bytes'])}, shims PSS {_mib(r['shim_pss'])} "
                      f"(RSS {_mib(r['shim_rss'])}), host MemAvailable drop {_mib(r['host_used_bytes'])}")
            csv_out(rows, f"density_{n}.csv")
    finally:
        left = sum(C.count_labelled(client, w) for w in ("start", "memory", "density", "cpu"))
        print(f"benchmark containers left on the engine: {left}")
    return 0


class _Dots:
    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, k: int) -> None:
        self.done += k
        print(f"\r  {self.done}/{self.total}", end="" if self.done < self.total else "\n", flush=True)
