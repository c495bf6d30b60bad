"""Container measurements on the learner's own engine: start latency, memory, density, CPU.

Everything here creates containers through the client it is given (so they carry the
course's labels) with names from the ``name`` function it is given, adds the label
``io.dockercourse.bench=<what>`` and removes what it created before returning, also when
interrupted (Ctrl-C in a terminal, "interrupt kernel" in Jupyter).

What the memory figures count (be honest about it):

* ``cgroup_bytes`` - the container's memory cgroup usage (cgroup v1 ``memory.usage_in_bytes``,
  cgroup v2 ``memory.current``, or the engine's stats API when the cgroup files are not
  readable): the container's processes and the page cache charged to them.
* ``shim_rss`` / ``shim_pss`` - the ``containerd-shim-runc-v2`` process that supervises the
  container on the host. RSS counts every page it maps, shared ones included; PSS divides
  shared pages between the processes sharing them, so PSS adds up correctly over many shims.
* Not counted: the kernel's own structures (namespaces, cgroups, the overlay mount) and the
  share of ``dockerd``/``containerd`` each container costs.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker
import docker.errors

from dockercourse.core.images import BUSYBOX

#: Label on every container a benchmark creates (value: which benchmark).
LABEL = "io.dockercourse.bench"

#: The CPU-bound workload: hash 64 MiB of zeros with busybox, timed inside by /proc/uptime.
CPU_SCRIPT = (
    "read a b </proc/uptime; dd if=/dev/zero bs=1048576 count={mb} 2>/dev/null | sha256sum >/dev/null; "
    "read c d </proc/uptime; echo cpu-work $a $c"
)

Progress = Callable[[int], None]  # called with the number of steps done since the last call


# --------------------------------------------------------------------------- helpers


def engine_time(ts: str) -> float:
    """An engine timestamp (RFC 3339 with nanoseconds) as POSIX seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", ts)
    if not m:
        raise ValueError(f"not an engine timestamp: {ts!r}")
    base, frac, tz = m.groups()
    dt = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _prefix_filter(client) -> list[str]:
    """The label filter of the client's course namespace (empty for a plain client)."""
    ns = getattr(client.api, "namespace", None)
    return [f"io.dockercourse.ns={ns.prefix}"] if ns is not None else []


def helper_name(client, short: str) -> str:
    """A unique course name for a short-lived helper container (``dc01-export-1a2b3c``)."""
    import uuid

    ns = getattr(client.api, "namespace", None)
    short = f"{short}-{uuid.uuid4().hex[:6]}"
    return ns.name(short) if ns is not None else f"dc01bench-{short}"


def remove_labelled(client, what: str, workers: int = 8) -> int:
    """Remove every container of this namespace labelled ``LABEL=what``; how many were removed.

    Safe against Ctrl-C: an interrupt during the removal is remembered, the removal goes on
    until nothing is left, then the interrupt is raised again. It looks until the listing is empty
    twice, 0.3 s apart, while an exception ends the measurement (a create may be in flight), else once.
    """
    flt = {"label": [f"{LABEL}={what}"] + _prefix_filter(client)}
    removed, interrupted, quiet_rounds = 0, False, 0
    rounds = 2 if sys.exc_info()[0] is not None else 1  # empty listings in a row that end it

    def rm(cid):
        try:
            client.api.remove_container(cid, force=True, v=True)
            return 1
        except docker.errors.NotFound:
            return 0
        except docker.errors.APIError as e:  # "removal already in progress"
            if e.response is not None and e.response.status_code == 409:
                return 0
            raise

    while quiet_rounds < rounds:
        try:
            ids = [c["Id"] for c in client.api.containers(all=True, filters=flt)]
            if not ids:
                quiet_rounds += 1
                if quiet_rounds < rounds:
                    time.sleep(0.3)
                continue
            quiet_rounds = 0
            with ThreadPoolExecutor(max_workers=workers) as ex:
                removed += sum(ex.map(rm, ids))
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    return removed


def count_labelled(client, what: str) -> int:
    """How many containers of this namespace carry ``LABEL=what`` right now."""
    flt = {"label": [f"{LABEL}={what}"] + _prefix_filter(client)}
    return len(client.api.containers(all=True, filters=flt))


# --------------------------------------------------------------------------- start latency


def start_latency(
    client,
    name: Callable[[str], str],
    runs: int = 10,
    network: str = "bridge",
    image: str = BUSYBOX,
    progress: Progress | None = None,
) -> list[dict]:
    """Start ``runs`` containers one after the other; how long each took.

    Each run is ``docker run -d --network <network> <image> true``: the client's clock from
    sending the create request to the start request's answer (``seconds``), and the engine's
    own view, from the container's ``Created`` to its ``State.StartedAt`` (``engine_seconds``).
    ``network="none"`` leaves out the network setup (veth pair, bridge, iptables). The exited
    containers are removed together at the end (in parallel), not between the runs.
    """
    rows = []
    try:
        for i in range(runs):
            t0 = time.perf_counter()
            c = client.containers.run(
                image,
                ["true"],
                detach=True,
                name=name(f"start-{network}-{i}"),
                network_mode=network,
                labels={LABEL: "start"},
            )
            t1 = time.perf_counter()
            c.reload()  # the start request has returned: State.StartedAt is set
            st = c.attrs["State"]
            rows.append(
                {
                    "run": i,
                    "network": network,
                    "seconds": t1 - t0,
                    "engine_seconds": engine_time(st["StartedAt"]) - engine_time(c.attrs["Created"]),
                }
            )
            if progress:
                progress(1)
    finally:
        remove_labelled(client, "start")
    return rows


def summarize(rows: list[dict], key: str = "seconds") -> dict:
    """n, median (p50), p95, min and max of ``key`` over ``rows``."""
    xs = [r[key] for r in rows]
    return {
        "n": len(xs),
        "p50": statistics.median(xs),
        "p95": percentile(xs, 95),
        "min": min(xs),
        "max": max(xs),
    }


# --------------------------------------------------------------------------- memory


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cgroup_memory(cid: str) -> int | None:
    """Bytes charged to the container's memory cgroup, from the host's cgroup files."""
    root = Path("/sys/fs/cgroup")
    for p in (
        root / "memory/docker" / cid / "memory.usage_in_bytes",  # v1, cgroupfs driver
        root / "memory/system.slice" / f"docker-{cid}.scope" / "memory.usage_in_bytes",  # v1, systemd
        root / "system.slice" / f"docker-{cid}.scope" / "memory.current",  # v2, systemd
        root / "docker" / cid / "memory.current",
    ):  # v2, cgroupfs
        v = _read_int(p)
        if v is not None:
            return v
    return None


def process_memory(pid: int) -> dict:
    """RSS and PSS of a host process, in bytes (None when it cannot be read)."""
    rss = pss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"rss": rss, "pss": pss}


def shim_pids() -> dict[str, int]:
    """container id -> pid of its ``containerd-shim-runc-v2`` (only when the engine runs on this host)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and b"containerd-shim" in args[0] and b"-id" in args:
            i = args.index(b"-id")
            if i + 1 < len(args):
                out[args[i + 1].decode()] = int(d.name)
    return out


def shim_memory(client, name: Callable[[str], str], cids: Iterable[str]) -> dict[str, dict]:
    """container id -> PSS/RSS of its shim, read where the engine runs.

    This machine's /proc when the shims are here; otherwise (Docker Desktop, a VM engine) a helper
    container that shares the engine host's PID namespace reads that host's (lessonkit.enginehost).
    """
    cids = list(cids)
    here = shim_pids()
    if any(c in here for c in cids):
        return {c: process_memory(here[c]) for c in cids if c in here}
    from dockercourse.lessonkit import enginehost

    try:
        return enginehost.shim_memory(client, name)
    except docker.errors.APIError:  # an engine that refuses the helper (--pid host): no shim figures
        return {}


def container_memory(client, container, shims: dict[str, dict] | None = None, name=None) -> dict:
    """Memory of one running container: its cgroup and its shim process (see the module doc).

    ``shims`` is :func:`shim_memory`'s answer for several containers at once; without it, ``name``
    (the chapter's naming function) lets the shim be read on the engine's host when it is not here.
    """
    cg = cgroup_memory(container.id)
    source = "cgroup"
    if cg is None:  # engine elsewhere (Docker Desktop, a VM): ask the engine
        stats = container.stats(stream=False).get("memory_stats") or {}
        cg, source = stats.get("usage"), "stats API"
    if shims is None:
        shims = shim_memory(client, name, [container.id]) if name else {}
    pm = shims.get(container.id) or {"rss": None, "pss": None}
    return {"cgroup_bytes": cg, "cgroup_source": source, "shim_rss": pm["rss"], "shim_pss": pm["pss"]}


def idle_container_memory(
    client, name: Callable[[str], str], image: str = BUSYBOX, settle: float = 0.3
) -> dict:
    """Start one idle container (``sleep 3600``), let it settle, measure its memory, remove it. (After
    0.3 s as after 1 s: cgroup 0.4 to 0.7 MB, shim PSS 11.1 to 11.5 MB; three runs each, 2026-12-07.)"""
    try:
        c = client.containers.run(
            image,
            ["sleep", "3600"],
            detach=True,
            name=name("idle-mem"),
            network_mode="none",
            labels={LABEL: "memory"},
        )
        time.sleep(settle)
        return container_memory(client, c, name=name)
    finally:
        remove_labelled(client, "memory")


# --------------------------------------------------------------------------- density


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def density(
    client,
    name: Callable[[str], str],
    counts: Iterable[int] = (1, 5, 10, 20),
    image: str = BUSYBOX,
    progress: Progress | None = None,
    keep: bool = False,
) -> list[dict]:
    """Start idle containers one after the other up to ``max(counts)``; measure at each count.

    Each container is ``docker run -d --network none <image> sleep 3600`` named
    ``name("idle-<i>")``. At each count N in ``counts`` the row holds: ``n``, ``seconds``
    (time since the first start), ``seconds_per_start`` of the last stretch, the summed
    cgroup memory and shim PSS/RSS of all N, and the drop of the host's MemAvailable.

    All of them are removed at the end - also after an error or Ctrl-C - unless ``keep``.
    """
    counts = sorted(set(int(n) for n in counts if int(n) > 0))
    rows: list[dict] = []
    started: list = []
    avail0 = _mem_available()
    try:
        t0 = last_t = time.perf_counter()
        last_n = 0
        for i in range(1, counts[-1] + 1):
            started.append(
                client.containers.run(
                    image,
                    ["sleep", "3600"],
                    detach=True,
                    name=name(f"idle-{i}"),
                    network_mode="none",
                    labels={LABEL: "density"},
                )
            )
            if progress:
                progress(1)
            if i in counts:
                now = time.perf_counter()
                shims = shim_memory(client, name, [c.id for c in started])
                mems = [container_memory(client, c, shims) for c in started]
                avail = _mem_available()
                rows.append(
                    {
                        "n": i,
                        "seconds": now - t0,
                        "seconds_per_start": (now - last_t) / (i - last_n),
                        "cgroup_bytes": sum(m["cgroup_bytes"] or 0 for m in mems),
                        "shim_pss": sum(m["shim_pss"] or 0 for m in mems),
                        "shim_rss": sum(m["shim_rss"] or 0 for m in mems),
                        "host_used_bytes": (avail0 - avail) if (avail0 and avail) else None,
                    }
                )
                last_t, last_n = time.perf_counter(), i
    finally:
        if not keep:
            remove_labelled(client, "density")
    return rows


# --------------------------------------------------------------------------- CPU-bound work


def busybox_binary(client, image: str = BUSYBOX, dest_dir: Path | None = None) -> Path:
    """Copy ``/bin/busybox`` out of the image (the very binary the container runs).

    It lands in its own directory as ``busybox``, beside links named after the applets the
    CPU workload uses, so that directory on ``PATH`` runs the workload with that binary only.
    """
    d = Path(dest_dir or Path(tempfile.gettempdir()) / f"dockercourse-busybox-{os.getuid()}")
    dest = d / "busybox"
    if dest.exists() and dest.stat().st_size > 0:
        return dest
    d.mkdir(parents=True, exist_ok=True)
    c = client.containers.create(
        image, ["true"], name=helper_name(client, "extract"), labels={LABEL: "extract"}, network_mode="none"
    )
    try:
        stream, _ = c.get_archive("/bin/busybox")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            data = tar.extractfile(member).read()
    finally:
        c.remove(force=True)
    tmp = d / "busybox.part"
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    for applet in ("sh", "dd", "sha256sum", "cat"):
        link = d / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    tmp.replace(dest)
    return dest


def parse_cpu_output(text: str) -> float:
    """Seconds from the workload's ``cpu-work <uptime before> <uptime after>`` line."""
    m = re.search(r"cpu-work ([\d.]+) ([\d.]+)", text)
    if not m:
        raise ValueError(f"no cpu-work line in {text[-200:]!r}")
    return float(m.group(2)) - float(m.group(1))


def cpu_native(busybox: Path, mb: int = 64, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of the workload directly on the host, in seconds."""
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [str(busybox), "sh", "-c", CPU_SCRIPT.format(mb=mb)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            env={"PATH": str(Path(busybox).parent), "LC_ALL": "C"},
        ).stdout
        times.append(parse_cpu_output(out))
    return min(times)


def _cpu_box(client, name: Callable[[str], str], image: str):
    """An idle container to run the workload in (``docker run -d --network none IMAGE sleep 3600``)."""
    return client.containers.run(
        image, ["sleep", "3600"], detach=True, name=name("cpu"), network_mode="none", labels={LABEL: "cpu"}
    )


def _cpu_in(container, mb: int) -> float:
    """One run of the workload in ``container``, in seconds."""
    code, out = container.exec_run(["sh", "-c", CPU_SCRIPT.format(mb=mb)])
    if code != 0:
        raise RuntimeError(f"the workload failed in the container: {out!r}")
    return parse_cpu_output(out.decode())


def cpu_container(
    client, name: Callable[[str], str], mb: int = 64, repeat: int = 3, image: str = BUSYBOX
) -> float:
    """Best of ``repeat`` runs of the workload inside one container, in seconds."""
    try:
        c = _cpu_box(client, name, image)
        return min(_cpu_in(c, mb) for _ in range(repeat))
    finally:
        remove_labelled(client, "cpu")


def cpu_compare(
    client, name: Callable[[str], str], busybox: Path, mb: int = 64, repeat: int = 3, image: str = BUSYBOX
) -> dict:
    """The workload natively and in one container, alternating; best of ``repeat`` each (seconds).

    Alternating the two keeps a busy neighbour on a shared machine from favouring one side.
    """
    nat, con = [], []
    try:
        c = _cpu_box(client, name, image)
        for _ in range(repeat):
            nat.append(cpu_native(busybox, mb, repeat=1))
            con.append(_cpu_in(c, mb))
    finally:
        remove_labelled(client, "cpu")
    return {"native": min(nat), "container": min(con), "mb": mb, "repeat": repeat}


# --------------------------------------------------------------------------- sizes


def image_size(client, image: str) -> int:
    """The image's size on the engine (all its layers, uncompressed), in bytes."""
    return int(client.images.get(image).attrs["Size"])
