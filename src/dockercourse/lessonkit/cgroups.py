"""A container's limits as the kernel holds them, read inside the container from its cgroup.

cgroup v2 (today's distributions, Docker Desktop, the course's VM engine) has one tree with
``memory.max``, ``cpu.max`` and ``pids.max``; cgroup v1 (the seed's Docker, older hosts) has one
tree per controller. :func:`read` reads the v2 files and falls back to v1's where the engine uses
v1 (``docker info``'s ``CgroupVersion``), so a chapter shows the same limits on both::

    from dockercourse.lessonkit.cgroups import show_limits
    show_limits(container)
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What each limit is read from: cgroup v2's file, cgroup v1's file(s).
FILES = {
    "memory": ("memory.max", "memory/memory.limit_in_bytes"),
    "cpu": ("cpu.max", "cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us"),
    "pids": ("pids.max", "pids/pids.max"),
}

# v1 writes "no memory limit" as the largest page-aligned 64-bit number.
_V1_NO_LIMIT = 2**62

# One exec, builtins only where a limit may be reached (a fork can fail at pids.max): `read` and `echo`.
_SCRIPT = r"""
r() { v=; for f in "$@"; do if [ -r "/sys/fs/cgroup/$f" ]; then read x < "/sys/fs/cgroup/$f"; v="$v $x"; \
else v="$v ?"; fi; done; echo "$v"; }
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo 2; r %s; r %s; r %s;
else echo 1; r %s; r %s; r %s; fi
"""


@dataclass
class Limits:
    version: int  # the cgroup version the container's files are in
    memory: int | None  # bytes; None: no limit
    cpus: float | None  # CPUs per period; None: no limit
    pids: int | None  # processes; None: no limit
    files: list[str] = field(default_factory=list)  # what was read, relative to /sys/fs/cgroup

    def lines(self) -> list[str]:
        mem = "no limit" if self.memory is None else f"{self.memory / 2**20:g} MiB"
        cpu = "no limit" if self.cpus is None else f"{self.cpus:g} CPU"
        pids = "no limit" if self.pids is None else str(self.pids)
        return [
            f"memory limit : {mem}",
            f"CPU limit    : {cpu}",
            f"process limit: {pids}",
            f"read from    : cgroup v{self.version}: {', '.join(self.files)}",
        ]


def _number(text: str) -> int | None:
    return None if text in ("max", "-1", "?", "") else int(text)


def parse(output: str) -> Limits:
    """Parse :data:`_SCRIPT`'s output (``"2\\n max\\n 50000 100000\\n 8\\n"``)."""
    lines = [ln.split() for ln in output.strip().splitlines()]
    version = int(lines[0][0])
    mem, cpu, pids = lines[1], lines[2], lines[3]
    memory = _number(mem[0])
    if memory is not None and memory >= _V1_NO_LIMIT:
        memory = None
    quota, period = _number(cpu[0]), _number(cpu[1]) if len(cpu) > 1 else None
    cpus = quota / period if quota is not None and period else None
    idx = 0 if version == 2 else 1
    files = [FILES[k][idx] for k in ("memory", "cpu", "pids")]
    files = [f.replace(" ", " + ") for f in files]
    return Limits(version, memory, cpus, _number(pids[0]), files)


def script() -> str:
    v2 = [FILES[k][0] for k in ("memory", "cpu", "pids")]
    v1 = [FILES[k][1] for k in ("memory", "cpu", "pids")]
    return _SCRIPT % (*v2, *v1)


def read(container) -> Limits:
    """The container's memory, CPU and process limits, read inside it (it must be running)."""
    res = container.exec_run(["sh", "-c", script()])
    if res.exit_code != 0:
        raise RuntimeError(f"could not read the cgroup of {container.name}: {res.output.decode().strip()}")
    return parse(res.output.decode())


def show_limits(container) -> Limits:
    """Print the limits as the kernel holds them (and which files said so); return them."""
    limits = read(container)
    print("\n".join(limits.lines()))
    return limits


_FORKS = r"""
import os, sys, time
kids, refused = [], 0
for _ in range(int(sys.argv[1])):
    try:
        pid = os.fork()
    except OSError:  # EAGAIN: the cgroup's pids.max is reached
        refused += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print(len(kids), refused)
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


def try_processes(container, n: int) -> tuple[int, int]:
    """Ask for ``n`` more processes in the container (``python3`` forks them; the image needs
    Python); return how many the kernel started and how many it refused. They are ended before
    this returns."""
    res = container.exec_run(["python3", "-c", _FORKS, str(n)])
    if res.exit_code != 0:
        raise RuntimeError(f"could not start processes in {container.name}: {res.output.decode().strip()}")
    started, refused = map(int, res.output.split())
    return started, refused
