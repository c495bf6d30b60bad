"""Checks for chapter 01, virtualization and containers: namespaces, cgroups, start latency."""

import statistics

from dockercourse import BUSYBOX
from dockercourse.bench.containers import engine_time
from dockercourse.checks import exercise

MiB = 2**20


@exercise(
    "01.isolation",
    title="a container with its own host name and PID 1",
    nudge="Section 1 shows that a container gets its own host name and process list; look for the run option "
    "(docker run) that sets the host name.",
    hint="Run BUSYBOX with `sleep 3600`, detached, named name('iso'), with hostname='island' "
    "(CLI: docker run -d --name dc01-iso --hostname island busybox:1.35.0 sleep 3600).",
)
def isolation(ctx):
    c = ctx.container("iso")
    ctx.require(c.status == "running", f"{c.name} is {c.status}; it should keep running (sleep 3600)")
    code, host = ctx.exec(c, ["hostname"])
    ctx.require(host.strip() == "island", f"its host name is {host.strip()!r}, not 'island'")
    code, comm = ctx.exec(c, ["cat", "/proc/1/comm"])
    ctx.require(comm.strip() == "sleep", f"PID 1 inside it is {comm.strip()!r}, not sleep")


@isolation.hidden
def isolation_private_pid_namespace(ctx):
    c = ctx.container("iso")
    ctx.require(
        c.attrs["HostConfig"].get("PidMode") in ("", "private", None),
        "it shares another PID namespace (--pid); leave the default",
    )
    ctx.require(c.image.id == ctx.client.images.get(BUSYBOX).id, f"it was not made from {BUSYBOX}")


@exercise(
    "01.memlimit",
    title="a container capped at 64 MiB",
    nudge="Memory caps are enforced by cgroups (section 1); look for the memory option of "
    "client.containers.run (docker run).",
    hint="Run BUSYBOX with `sleep 3600`, detached, named name('capped'), with mem_limit='64m' "
    "(CLI: docker run -d --name dc01-capped --memory 64m busybox:1.35.0 sleep 3600).",
)
def memlimit(ctx):
    c = ctx.container("capped")
    code, out = ctx.exec(
        c,
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
        ],
    )
    value = out.strip()
    ctx.require(value.isdigit(), f"inside it, the cgroup says there is no memory limit ({value[:40]!r})")
    ctx.require(int(value) == 64 * MiB, f"the limit inside it is {int(value) // MiB} MiB, not 64 MiB")


@memlimit.hidden
def memlimit_engine_agrees(ctx):
    c = ctx.container("capped")
    ctx.require(
        c.attrs["HostConfig"].get("Memory") == 64 * MiB, "the engine's HostConfig.Memory is not 64 MiB"
    )


@exercise(
    "01.latency",
    title="the median start latency, by the engine's clock",
    nudge="The engine timestamps when each container was created and when it started (its attrs); the end of "
    "section 3.1 points at them.",
    hint="Run BUSYBOX `true` five times as name('lat-1') ... name('lat-5'); take the median of "
    "StartedAt - Created in ms (rounded) and write it into /result.txt of a container "
    "named name('report') (sh -c 'echo N > /result.txt').",
    names=("lat-1", "lat-2", "lat-3", "lat-4", "lat-5", "report"),
)
def latency(ctx):
    lats = []
    for i in range(1, 6):
        c = ctx.container(f"lat-{i}")
        started = c.attrs["State"].get("StartedAt") or ""
        ctx.require(not started.startswith("0001-"), f"{c.name} was never started")
        lats.append(engine_time(started) - engine_time(c.attrs["Created"]))
    expected = statistics.median(lats) * 1000
    report = ctx.container("report")
    text = ctx.read_file(report, "/result.txt").decode("utf-8", "replace").strip()
    try:
        value = float(text)
    except ValueError:
        value = None
    ctx.require(value is not None, f"/result.txt holds {text[:30]!r}, not a number of milliseconds")
    ctx.require(
        abs(value - expected) <= max(2.0, 0.05 * expected),
        f"/result.txt says {value:g} ms; the engine's median for lat-1..lat-5 is {expected:.0f} ms",
    )


@latency.hidden
def latency_from_busybox_true(ctx):
    img = ctx.client.images.get(BUSYBOX).id
    for i in range(1, 6):
        c = ctx.container(f"lat-{i}")
        ctx.require(c.image.id == img, f"{c.name} was not made from {BUSYBOX}")
        ctx.require(c.attrs["Config"]["Cmd"] == ["true"], f"{c.name} does not run `true`")
