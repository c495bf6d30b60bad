"""Checks for chapter 04, containers: detached runs, cp, memory limits, rename/restart policy,
exec, SIGKILL."""

import datetime

from dockercourse import BUSYBOX
from dockercourse.checks import exercise

MiB = 2**20


def _from_busybox(ctx, c):
    ctx.require(c.image.id == ctx.client.images.get(BUSYBOX).id, f"{c.name} was not made from {BUSYBOX}")


def _cmd_text(c) -> str:
    cfg = c.attrs.get("Config") or {}
    return " ".join([*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])])


@exercise(
    "04.ticker",
    title="a detached container with a label",
    nudge="A detached container runs in the background (section 3); its command needs an endless loop, and a "
    "label is one more run option.",
    wait=3,
    hint="client.containers.run(BUSYBOX, ['sh', '-c', 'while true; do echo tick; sleep 1; done'], "
    "name=name('clock'), labels={'role': 'ticker'}, detach=True) "
    "(CLI: docker run -d --name dc04-clock --label role=ticker busybox:1.35.0 sh -c '...').",
)
def ticker(ctx):
    c = ctx.container("clock")
    ctx.require(c.labels.get("role") == "ticker", f"its label role is {c.labels.get('role')!r}, not 'ticker'")
    ctx.require(
        c.status == "running", f"it is {c.status}; it should keep running (an endless loop, detached)"
    )
    out = c.logs().decode("utf-8", "replace")
    ctx.require("tick" in out, "its log has no 'tick' yet")


@ticker.hidden
def ticker_detached_busybox(ctx):
    c = ctx.container("clock")
    _from_busybox(ctx, c)
    # detached (-d, detach=True) means the client did not attach to its output; -dit (a terminal
    # and stdin kept open, the seed's own form) is detached too
    ctx.require(not c.attrs["Config"].get("AttachStdout"), "run it detached (-d / detach=True), not attached")


@exercise(
    "04.copy",
    title="copy a file into a running container",
    nudge="You can copy a file into a running container from outside: section 8 shows docker cp and "
    "put_archive.",
    hint="Run BUSYBOX `sleep 3600` detached as name('target'), then copy a file holding 'mode=training' to "
    "/tmp/config.txt (put_archive with a tar, or CLI: docker cp config.txt dc04-target:/tmp/config.txt).",
)
def copy(ctx):
    c = ctx.container("target")
    ctx.require(c.status == "running", f"{c.name} is {c.status}, not running")
    data = ctx.read_file(c, "/tmp/config.txt").decode("utf-8", "replace").strip()
    ctx.require(data == "mode=training", f"/tmp/config.txt holds {data[:40]!r}, not 'mode=training'")
    if ctx.events_kept():
        copied = ctx.events(
            since=c.attrs["Created"], type="container", actor=c.id, actions=("extract-to-dir",)
        )
        ctx.require(
            copied,
            f"the engine saw nothing copied into {c.name}: the file was written from inside (exec?); "
            "copy it in from outside with docker cp or put_archive",
        )


@copy.hidden
def copy_not_by_command(ctx):
    c = ctx.container("target")
    _from_busybox(ctx, c)
    ctx.require(
        "config.txt" not in _cmd_text(c), "the container's own command created the file; copy it in instead"
    )


@exercise(
    "04.capped",
    title="cap a container's memory",
    nudge="Section 9 covers memory limits: you need both the memory limit and the memory-plus-swap limit, "
    "set at run time or with update.",
    hint="Run BUSYBOX `sleep 3600` detached as name('capped') with mem_limit='64m' and memswap_limit='64m' "
    "(CLI: docker run -d -m 64m --memory-swap 64m ...), or set them later with container.update().",
)
def capped(ctx):
    c = ctx.container("capped")
    hc = c.attrs["HostConfig"]
    ctx.require(
        hc.get("Memory") == 64 * MiB,
        f"its memory limit is {(hc.get('Memory') or 0) // MiB} MiB, not 64 MiB"
        if hc.get("Memory")
        else "it has no memory limit",
    )
    ctx.require(
        hc.get("MemorySwap") == 64 * MiB,
        "memory + swap should also be 64 MiB (no swap): set memswap_limit / --memory-swap to 64m",
    )
    ctx.require(c.status == "running", f"it is {c.status}; keep it running")


@capped.hidden
def capped_in_cgroup(ctx):
    c = ctx.container("capped")
    if str(ctx.client.info().get("CgroupVersion")) != "1":
        return
    code, out = ctx.exec(c, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    ctx.require(
        code == 0 and out.strip() == str(64 * MiB), "the kernel's cgroup does not show the 64 MiB limit"
    )


@exercise(
    "04.renamed",
    title="rename a container and give it a restart policy",
    nudge="A container can be renamed in place (container.rename, docker rename), and its restart policy "
    "changed later with update (section 9).",
    hint="Create BUSYBOX as name('draft'), then container.rename(name('final')) and "
    "container.update(restart_policy={'Name': 'on-failure', 'MaximumRetryCount': 3}) "
    "(CLI: docker rename dc04-draft dc04-final; docker update --restart on-failure:3 dc04-final).",
)
def renamed(ctx):
    c = ctx.container("final")
    try:
        ctx.client.containers.get(ctx.name("draft"))
        draft_left = True
    except Exception:
        draft_left = False
    ctx.require(
        not draft_left, f"there is still a container named {ctx.name('draft')}: rename it, do not copy it"
    )
    pol = c.attrs["HostConfig"].get("RestartPolicy") or {}
    ctx.require(
        pol.get("Name") == "on-failure",
        f"its restart policy is {pol.get('Name') or 'no'!r}, not 'on-failure'",
    )
    ctx.require(
        pol.get("MaximumRetryCount") == 3, f"it may retry {pol.get('MaximumRetryCount')} times, not 3"
    )


@renamed.hidden
def renamed_really(ctx):
    c = ctx.container("final")
    created = datetime.datetime.fromisoformat(c.attrs["Created"][:19]).replace(tzinfo=datetime.UTC)
    since = int(created.timestamp()) - 1
    evs = ctx.client.events(
        since=since,
        until=ctx.engine_now(),
        decode=True,
        filters={"type": "container", "container": c.id, "event": "rename"},
    )
    old = [e["Actor"]["Attributes"].get("oldName", "") for e in evs]
    ctx.require(
        any(o.lstrip("/") == ctx.name("draft") for o in old),
        f"the engine saw no rename from {ctx.name('draft')} to {ctx.name('final')}",
    )


@exercise(
    "04.exec",
    title="create a file with exec",
    nudge="exec runs an extra command inside a container that is already running; section 5 shows "
    "container.exec_run (docker exec).",
    hint="Run BUSYBOX `sleep 3600` detached as name('bench'), then "
    "bench.exec_run(['sh', '-c', 'echo exec was here > /tmp/made-by-exec.txt']) "
    "(CLI: docker exec dc04-bench sh -c '...').",
)
def exec_(ctx):
    c = ctx.container("bench")
    ctx.require(c.status == "running", f"{c.name} is {c.status}, not running")
    data = ctx.read_file(c, "/tmp/made-by-exec.txt").decode("utf-8", "replace").strip()
    ctx.require(data == "exec was here", f"/tmp/made-by-exec.txt holds {data[:40]!r}, not 'exec was here'")
    if ctx.events_kept():
        evs = ctx.events(
            since=c.attrs["Created"], type="container", actor=c.id, actions=("exec_start", "extract-to-dir")
        )
        acts = {e["Action"].split(":")[0] for e in evs}
        ctx.require("exec_start" in acts, f"the engine saw no exec in {c.name}: run the command with exec")
        ctx.require(
            "extract-to-dir" not in acts,
            f"something was copied into {c.name} (docker cp / put_archive): write the file with exec instead",
        )


@exec_.hidden
def exec_not_by_command(ctx):
    c = ctx.container("bench")
    _from_busybox(ctx, c)
    ctx.require("made-by-exec" not in _cmd_text(c), "the main command wrote the file; use exec instead")


@exercise(
    "04.killed",
    title="a stop that ends in SIGKILL",
    nudge="Section 4 explains how stop sends SIGTERM, waits a grace period, then sends SIGKILL; look at the "
    "timeout of stop.",
    hint="Run BUSYBOX `sleep 3600` detached as name('deaf') (PID 1 ignores SIGTERM), then "
    "deaf.stop(timeout=1) (CLI: docker stop -t 1 dc04-deaf): it ends with exit code 137.",
)
def killed(ctx):
    c = ctx.container("deaf")
    ctx.require(c.status == "exited", f"it is {c.status}; stop it with a 1-second timeout")
    st = c.attrs["State"]
    ctx.require(not st.get("OOMKilled"), "it was killed for using too much memory, not by stop")
    ctx.require(st.get("ExitCode") == 137, f"its exit code is {st.get('ExitCode')}, not 137 (128 + SIGKILL)")
    if ctx.events_kept():
        _stopped_after_one_second(ctx, c)


def _stopped_after_one_second(ctx, c):
    """``stop`` sends SIGTERM, then SIGKILL after its timeout: the engine's ``kill`` events carry the
    signal and the time; ``docker kill`` sends SIGKILL at once and no ``stop``."""
    evs = ctx.events(since=c.attrs["Created"], type="container", actor=c.id, actions=("kill", "stop"))
    kills = [
        (e.get("timeNano") or e["time"] * 10**9, e["Actor"]["Attributes"].get("signal"))
        for e in evs
        if e["Action"] == "kill"
    ]
    ctx.require(
        any(e["Action"] == "stop" for e in evs),
        "the engine saw no stop, only a kill: stop it (stop / docker stop) so that it gets SIGTERM first",
    )
    term = [t for t, sig in kills if sig in ("15", "SIGTERM", "TERM")]
    kill = [t for t, sig in kills if sig in ("9", "SIGKILL", "KILL")]
    ctx.require(term and kill, "the engine did not send SIGTERM and then SIGKILL: stop it with a timeout")
    waited = (min(kill) - min(term)) / 1e9
    ctx.require(waited < 5, f"the engine waited {waited:.0f} s before SIGKILL: give stop a 1-second timeout")


@killed.hidden
def killed_busybox(ctx):
    _from_busybox(ctx, ctx.container("deaf"))
