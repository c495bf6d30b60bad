"""Benchmark the VM engine (issue 9): boot-to-API time, container run latency inside the
VM vs the host's engine, and qemu's RSS, with KVM and with TCG where each is usable.

    python benchmarks/bench_vm_engine.py [--runs 3] [--images busybox:1.35.0,...]
        [--flavor docker|podman|both] [--json]

Each VM is a throwaway one (``vm_engine``), destroyed at the end: nothing is left running.
The first run builds and seeds the system disk for the image list (minutes under TCG);
that time is not part of the figures (it is reported from the disk's metadata). Under TCG
every figure is an emulated one. ``--flavor``: the Docker 28.5 guest (default), the Podman
guest, or both.
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


def _cli_latency(docker_host: str, runs: int) -> list[float]:
    """``docker run --rm busybox:1.35.0 true`` with the docker CLI (when installed)."""
    import shutil
    import subprocess

    cli = shutil.which("docker")
    if not cli:
        return []
    out = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run(
            [cli, "run", "--rm", "busybox:1.35.0", "true"],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_HOST": docker_host},
            timeout=300,
        )
        out.append(time.monotonic() - t)
    return out


def _host_client():
    """The host's engine when it has busybox (for the comparison), else None."""
    import docker.errors

    from dockercourse.vm.seed import host_engine

    c = host_engine()
    try:
        if c is not None:
            c.images.get("busybox:1.35.0")
        return c
    except (docker.errors.DockerException, OSError) as e:
        print(f"no host engine to compare with: {e}", file=sys.stderr)
        return None


def main(argv=None) -> int:
    from dockercourse.vm.boot import kvm_usable
    from dockercourse.vm.engine import (
        DEFAULT_IMAGES,
        DEFAULT_MEMORY_MB,
        build,
        vm_engine,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", default=",".join(DEFAULT_IMAGES))
    ap.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB)
    ap.add_argument("--accel", choices=("both", "kvm", "tcg"), default="both")
    ap.add_argument("--flavor", choices=("docker", "podman", "both"), default="docker")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    images = [i for i in args.images.split(",") if i]

    def log(m):
        print(m, file=sys.stderr, flush=True)

    accels = (
        ["tcg"]
        if args.accel == "tcg"
        else ["kvm"]
        if args.accel == "kvm"
        else (["kvm", "tcg"] if kvm_usable() else ["tcg"])
    )
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "load1": round(os.getloadavg()[0], 2),
            "kvm_usable": kvm_usable(),
        },
        "vm": {},
        "host": None,
    }
    host = _host_client()
    if host is not None:
        _run_latency(host, 1)
        lat = _run_latency(host, args.runs)
        results["host"] = {
            "run_s": [round(x, 3) for x in lat],
            "run_median_s": round(statistics.median(lat), 3),
        }
        host.close()
    flavors = ["docker", "podman"] if args.flavor == "both" else [args.flavor]
    for flavor in flavors:
        art = build(
            images, log=log, flavor=flavor
        )  # built once (not timed here); its time is in the metadata
        try:
            meta = json.loads(art.disk.with_suffix(".json").read_text())
        except (OSError, ValueError):
            meta = {}
        for accel in accels:
            t0 = time.monotonic()
            with vm_engine(memory_mb=args.memory, images=images, accel=accel, log=log, flavor=flavor) as env:
                rss_boot = env.rss_bytes()
                c = env.client()
                first = _run_latency(c, 1)[0]
                lat = _run_latency(c, args.runs)
                cli = _cli_latency(env.docker_host, args.runs)
                results["vm"][f"{flavor}/{accel}"] = {
                    "cli_run_s": [round(x, 3) for x in cli],
                    "cli_run_median_s": round(statistics.median(cli), 3) if cli else None,
                    "engine": env.engine,
                    "disk_build_s": meta.get("seconds"),
                    "boot_to_api_s": env.boot_seconds,
                    "first_run_s": round(first, 3),
                    "run_s": [round(x, 3) for x in lat],
                    "run_median_s": round(statistics.median(lat), 3),
                    "qemu_rss_after_boot_mb": round(rss_boot / 2**20),
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
        print(
            f"host engine      : busybox run median {results['host']['run_median_s']:.2f} s "
            f"{results['host']['run_s']}"
        )
    for which, r in results["vm"].items():
        flavor, accel = which.split("/")
        print(
            f"VM engine {flavor} ({accel.upper()}{', emulated' if accel == 'tcg' else ''}; {r['engine']}): "
            f"disk built in {r['disk_build_s']} s; boot-to-API {r['boot_to_api_s']:.1f} s; "
            f"busybox run median {r['run_median_s']:.2f} s {r['run_s']} (first {r['first_run_s']:.1f} s); "
            f"`docker run --rm busybox true` median {r['cli_run_median_s']} s {r['cli_run_s']}; "
            f"qemu RSS {r['qemu_rss_after_boot_mb']} MB after boot, {r['qemu_rss_mb']} MB after the runs, "
            f"with {r['images']} images, {r['guest_mb']} MB guest"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
