"""``dockercourse bench``: measure chapter 01's figures (containers vs a VM) and print them.

Everything it starts is named ``dc01bench-...``, labelled, and removed before the command
ends, also on Ctrl-C. The measuring is :mod:`dockercourse.bench`'s; this module prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARTS = ("start", "memory", "density", "vm", "cpu", "sizes")


def _parts(text: str) -> set[str]:
    """argparse ``type=`` of ``--only``: a comma-separated subset of :data:`PARTS`."""
    got = {p.strip() for p in text.split(",") if p.strip()}
    bad = sorted(got - set(PARTS))
    if bad or not got:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or 'nothing'}: choose from {','.join(PARTS)}")
    return got


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run the chapter 01 benchmarks and print figures",
        description=(
            "Chapter 01's benchmarks on this machine: container start latency, memory of an idle container, "
            "density, a tiny VM's boot and memory, CPU-bound work natively, in a container and in the VM, "
            "image vs VM disk sizes."
        ),
    )
    p.add_argument("--runs", type=int, default=10, help="container starts per network mode (default 10)")
    p.add_argument("--density", type=int, default=30, metavar="N", help="density sweep up to N containers")
    p.add_argument("--full", action="store_true", help="density sweep up to 500 containers")
    p.add_argument(
        "--only",
        type=_parts,
        default=set(PARTS),
        metavar=",".join(PARTS),
        help="comma-separated subset of the measurements (default: all)",
    )
    p.add_argument("--cpu-mb", type=int, default=64, help="MiB hashed by the CPU-bound workload")
    p.add_argument("--csv", metavar="DIR", type=Path, help="write every measurement as CSV into DIR")
    p.set_defaults(run=run)


def _counts(n: int) -> list[int]:
    from dockercourse.bench import FULL_COUNTS

    if n >= 500:
        return list(FULL_COUNTS)
    return sorted({1, n} | {max(1, round(n * f)) for f in (0.1, 0.25, 0.5, 0.75)})


def _mib(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f} MiB"


class _Dots:
    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, k: int) -> None:
        self.done += k
        print(f"\r  {self.done}/{self.total}", end="" if self.done < self.total else "\n", flush=True)


class _Run:
    """One ``bench`` run: the client, its namespace, the options, and where CSV goes."""

    def __init__(self, args):
        from dockercourse.bench import containers as C
        from dockercourse.cli._args import namespace
        from dockercourse.core.engine import connect

        self.a, self.C = args, C
        self.ns = namespace("01", tag="bench")
        self.client = connect(namespace=self.ns)
        self.busybox = C.busybox_binary(self.client)
        self.vm = None  # the tiny VM's result, once booted

    def csv(self, rows: list[dict], fname: str) -> None:
        from dockercourse.bench import save_csv

        if self.a.csv is not None:
            print(f"  -> {save_csv(rows, self.a.csv / fname)}")

    def start(self) -> None:
        C = self.C
        for net in ("bridge", "none"):
            rows = C.start_latency(self.client, self.ns.name, self.a.runs, net)
            s, e = C.summarize(rows), C.summarize(rows, "engine_seconds")
            print(
                f"container start, network={net:<6}: p50 {s['p50'] * 1000:.0f} ms, p95 "
                f"{s['p95'] * 1000:.0f} ms over {s['n']} runs (engine Created->StartedAt p50 "
                f"{e['p50'] * 1000:.0f} ms)"
            )
            self.csv(rows, f"start_{net}.csv")

    def memory(self) -> None:
        m = self.C.idle_container_memory(self.client, self.ns.name)
        print(
            f"idle container memory: cgroup {_mib(m['cgroup_bytes'])} ({m['cgroup_source']}), "
            f"shim RSS {_mib(m['shim_rss'])}, shim PSS {_mib(m['shim_pss'])}"
        )
        self.csv([m], "memory_container.csv")

    def vm_boot(self) -> None:
        from dockercourse.bench import vm as V

        self.vm = v = V.boot_tiny_vm(self.busybox, cpu_mb=self.a.cpu_mb if "cpu" in self.a.only else 0)
        if v.available:
            print(
                f"tiny VM ({v.label}): boot to init {v.boot_seconds:.2f} s, qemu RSS {_mib(v.rss_bytes)} "
                f"({v.memory_mb} MiB guest), kernel {v.kernel_bytes / 1e6:.1f} MB + initramfs "
                f"{v.initramfs_bytes / 1e6:.1f} MB"
            )
            print("  " + V.accel_note(v.accel))
        else:
            print(f"tiny VM: not measured ({v.reason}); see the reference figures")
        self.csv([v.as_dict()], "vm.csv")

    def cpu(self) -> None:
        mb, v = self.a.cpu_mb, self.vm
        cc = self.C.cpu_compare(self.client, self.ns.name, self.busybox, mb, repeat=5)
        nat, con = cc["native"], cc["container"]
        rows = [
            {"where": "native", "seconds": nat, "relative_speed": 1.0},
            {"where": "container", "seconds": con, "relative_speed": nat / con},
        ]
        line = f"CPU-bound ({mb} MiB sha256): native {nat:.2f} s, container {con:.2f} s ({nat / con:.2f}x)"
        if v is not None and v.available and v.cpu_seconds:
            line += f", {v.label} {v.cpu_seconds:.2f} s ({nat / v.cpu_seconds:.2f}x)"
            rows.append({"where": v.label, "seconds": v.cpu_seconds, "relative_speed": nat / v.cpu_seconds})
        print(line)
        self.csv(rows, "cpu.csv")

    def sizes(self) -> None:
        from dockercourse.bench import vm as V
        from dockercourse.core.images import BUSYBOX, DEBIAN
        from dockercourse.vm import kernel as qk

        try:
            kern = qk.get_kernel(log=lambda *_: None)
        except Exception:  # noqa: BLE001 - no kernel: the disk sizes say why
            kern = None
        rows = []
        for img in (BUSYBOX, DEBIAN):
            isz = self.C.image_size(self.client, img)
            d = V.vm_disk_image(self.client, img, kern)
            rows.append({"image": img, "image_bytes": isz, **d})
            if d.get("available"):
                print(
                    f"size {img}: image {isz / 1e6:.1f} MB; VM disk of the same userland + kernel: "
                    f"qcow2 {d['qcow2_bytes'] / 1e6:.1f} MB (raw {d['raw_bytes'] / 1e6:.1f} MB)"
                )
            else:
                print(f"size {img}: image {isz / 1e6:.1f} MB; VM disk: {d.get('reason')}")
        self.csv(rows, "sizes.csv")

    def density(self) -> None:
        n = 500 if self.a.full else self.a.density
        print(f"density: starting up to {n} idle containers (they are removed at the end, also on Ctrl-C)")
        rows = self.C.density(
            self.client, self.ns.name, _counts(n), progress=_Dots(n) if sys.stdout.isatty() else None
        )
        for r in rows:
            print(
                f"  N={r['n']:>4}: {r['seconds']:7.1f} s in total, {r['seconds_per_start'] * 1000:5.0f} ms "
                f"per start; cgroups {_mib(r['cgroup_bytes'])}, shims PSS {_mib(r['shim_pss'])} "
                f"(RSS {_mib(r['shim_rss'])}), host MemAvailable drop {_mib(r['host_used_bytes'])}"
            )
        self.csv(rows, f"density_{n}.csv")

    def left(self) -> int:
        return sum(self.C.count_labelled(self.client, w) for w in ("start", "memory", "density", "cpu"))


def run(args) -> int:
    b = _Run(args)
    only = args.only
    try:
        if "start" in only:
            b.start()
        if "memory" in only:
            b.memory()
        if "vm" in only or "cpu" in only:
            b.vm_boot()
        if "cpu" in only:
            b.cpu()
        if "sizes" in only:
            b.sizes()
        if "density" in only:
            b.density()
    finally:
        print(f"benchmark containers left on the engine: {b.left()}")
    return 0
