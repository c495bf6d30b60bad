"""Benchmark the VM engine (issue 9): boot-to-API time, container run latency inside the
VM vs the host's engine, and qemu's RSS, with KVM and with TCG where each is usable.

    python benchmarks/bench_vm_engine.py [--runs 3] [--images busybox:1.35.0,...] [--json]

Each VM is a throwaway one (``vm_engine``), destroyed at the end: nothing is left running.
The first run builds and seeds the system disk for the image list (minutes under TCG);
that time is not part of the figures. Under TCG every figure is an emulated one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def _run_latency(client, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.monotonic()
        client.containers.run("busybox:1.35.0", ["true"], remove=True)
        out.append(time.monotonic() - t)
    return out


def _host_client():
    import docker

    try:
        c = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="auto", timeout=120)
        c.ping()
        c.images.get("busybox:1.35.0")
        return c
    except Exception:
        return None


def main(argv=None) -> int:
    from dockercourse.qemu.boot import kvm_usable
    from dockercourse.qemu.engine import DEFAULT_IMAGES, DEFAULT_MEMORY_MB, vm_engine

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", default=",".join(DEFAULT_IMAGES))
    ap.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB)
    ap.add_argument("--accel", choices=("both", "kvm", "tcg"), default="both")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    images = [i for i in args.images.split(",") if i]
    log = (lambda m: print(m, file=sys.stderr, flush=True))
    accels = ["tcg"] if args.accel == "tcg" else ["kvm"] if args.accel == "kvm" else \
        (["kvm", "tcg"] if kvm_usable() else ["tcg"])
    results = {"machine": {"cpus": os.cpu_count(), "load1": round(os.getloadavg()[0], 2),
                           "kvm_usable": kvm_usable()}, "vm": {}, "host": None}
    host = _host_client()
    if host is not None:
        _run_latency(host, 1)
        lat = _run_latency(host, args.runs)
        results["host"] = {"run_s": [round(x, 3) for x in lat], "run_median_s": round(statistics.median(lat), 3)}
        host.close()
    for accel in accels:
        t0 = time.monotonic()
        with vm_engine(memory_mb=args.memory, images=images, accel=accel, log=log) as env:
            c = env.client()
            first = _run_latency(c, 1)[0]
            lat = _run_latency(c, args.runs)
            results["vm"][accel] = {
                "boot_to_api_s": env.boot_seconds,
                "first_run_s": round(first, 3),
                "run_s": [round(x, 3) for x in lat],
                "run_median_s": round(statistics.median(lat), 3),
                "qemu_rss_mb": round(env.rss_bytes() / 2**20),
                "guest_mb": args.memory,
                "images": len(env.images),
                "wall_s": round(time.monotonic() - t0, 1),
            }
            c.close()
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"machine: {results['machine']}")
    if results["host"]:
        print(f"host engine      : busybox run median {results['host']['run_median_s']:.2f} s {results['host']['run_s']}")
    for accel, r in results["vm"].items():
        print(f"VM engine ({accel.upper()}{', emulated' if accel == 'tcg' else ''}): boot-to-API {r['boot_to_api_s']:.1f} s; "
              f"busybox run median {r['run_median_s']:.2f} s {r['run_s']} (first {r['first_run_s']:.1f} s); "
              f"qemu RSS {r['qemu_rss_mb']} MB with {r['images']} images, {r['guest_mb']} MB guest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
