"""Published figures the live measurements are shown beside, with their sources.

The CSV files live in ``dockercourse/data/reference/`` (copied from the course's steering
folder); each row names its source. Plots mark these figures as *reference*.
"""

from __future__ import annotations

import csv
from importlib import resources


def _read(name: str) -> list[dict]:
    path = resources.files("dockercourse") / "data" / "reference" / name
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def startup_and_footprint() -> list[dict]:
    """Firecracker boot/overhead, crun vs runc start, shim RSS (system, metric, value, unit, source)."""
    return _read("startup_and_footprint.csv")


def vm_vs_container() -> list[dict]:
    """Felter et al. (IBM, 2014): native vs Docker vs KVM benchmarks
    (benchmark, unit, native, docker, kvm)."""
    return _read("vm_vs_container.csv")


def figure(system: str, metric: str) -> tuple[float, str, str]:
    """(value, unit, source) of one row of startup_and_footprint.csv."""
    for r in startup_and_footprint():
        if r["system"] == system and r["metric"] == metric:
            return float(r["value"]), r["unit"], r["source"]
    raise KeyError(f"no reference figure {system}/{metric}")


def relative_speed(benchmark: str = "linpack_two_sockets") -> dict:
    """Docker and KVM speed relative to native (1.0) for one published benchmark."""
    for r in vm_vs_container():
        if r["benchmark"] == benchmark:
            native = float(r["native"])
            hib = r["higher_is_better"].strip().lower() == "true"

            def rel(v, native=native, hib=hib):
                if not v:
                    return None
                v = float(v)
                return v / native if hib else native / v

            return {
                "benchmark": benchmark,
                "native": 1.0,
                "docker": rel(r["docker"]),
                "kvm": rel(r["kvm"]),
                "source": r["source"],
                "note": r["note"],
            }
    raise KeyError(f"no reference benchmark {benchmark}")
