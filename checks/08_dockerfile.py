"""Checks for chapter 08, the Dockerfile: images built by the learner, read back from the engine."""

import re

import docker.errors

from dockercourse import BUSYBOX
from dockercourse.checks import NotYet, exercise


def _run(ctx, ref, command=None):
    """Run ``ref`` once (removed afterwards, also when it cannot start); its exit code and output
    text. An image whose container cannot start (an unknown USER, no such binary) is not done yet."""
    # the run's labels: a check stopped half-way (the grader's timeout) leaves nothing that the
    # chapter's cleanup does not find
    c = ctx.client.containers.create(ref, command, labels=ctx.ns.labels)
    try:
        try:
            c.start()
        except docker.errors.APIError as e:
            raise NotYet(f"a container of {ref} does not start: {e.explanation or e}") from None
        res = c.wait(timeout=20)
        return res.get("StatusCode", -1), c.logs().decode("utf-8", "replace")
    finally:
        c.remove(force=True, v=True)


def _base_layers(ctx, ref):
    return ctx.client.images.get(ref).attrs["RootFS"]["Layers"]


@exercise(
    "08.cmd",
    title="an image whose CMD greets",
    nudge="Section 2 explains how CMD sets what a container runs by default; write a small Dockerfile from "
    "BUSYBOX and build it with the tag.",
    hint='A Dockerfile with `FROM busybox:1.35.0` and `CMD ["echo", "hello from my Dockerfile"]`, '
    "built with the tag name('greeter') + ':1' (CLI: docker build -t dc08-greeter:1 <folder>).",
)
def greeter(ctx):
    ref = ctx.name("greeter") + ":1"
    ctx.image(ref)
    code, out = _run(ctx, ref)
    ctx.require(
        "hello from my Dockerfile" in out,
        f"running {ref} printed {out.strip()[:60]!r}, not 'hello from my Dockerfile'",
    )


@greeter.hidden
def greeter_from_busybox(ctx):
    img = ctx.image(ctx.name("greeter") + ":1")
    base = _base_layers(ctx, BUSYBOX)
    ctx.require(img.attrs["RootFS"]["Layers"][: len(base)] == base, f"it is not built FROM {BUSYBOX}")


@exercise(
    "08.nonroot",
    title="an image that runs as a non-root user",
    nudge="Section 2 lists USER among the configuration instructions; busybox already has an unprivileged "
    "user you can switch to.",
    hint="Add `USER nobody` (or a user you create in a RUN step) to a Dockerfile FROM busybox:1.35.0 and "
    "build it as name('nonroot') + ':1'.",
)
def nonroot(ctx):
    ref = ctx.name("nonroot") + ":1"
    img = ctx.image(ref)
    user = (img.attrs["Config"].get("User") or "").split(":")[0]
    ctx.require(user not in ("", "root", "0"), f"{ref} has no USER (or USER root): its processes run as root")
    code, out = _run(ctx, ref, ["id", "-u"])
    ctx.require(
        code == 0 and out.strip().isdigit() and out.strip() != "0",
        f"`id -u` in {ref} printed {out.strip()[:40]!r}, not a non-zero user id",
    )


@exercise(
    "08.health",
    title="a health check that turns healthy",
    nudge="Section 2 explains HEALTHCHECK: the image needs a long-running service to test and a short "
    "interval, and the container must stay up.",
    wait=15,
    hint="Put `HEALTHCHECK --interval=1s CMD <test>` in the Dockerfile, build name('web') + ':1', and run "
    "it in the background as name('web'); its status starts as 'starting' and should become 'healthy'.",
)
def health(ctx):
    img = ctx.image(ctx.name("web") + ":1")
    hc = (img.attrs["Config"].get("Healthcheck") or {}).get("Test") or []
    ctx.require(hc and hc[0] != "NONE", f"{ctx.name('web')}:1 has no HEALTHCHECK")
    c = ctx.container("web")
    ctx.require(c.image.id == img.id, f"the container {c.name} is not made from {ctx.name('web')}:1")
    ctx.require(c.status == "running", f"{c.name} is {c.status}, not running")
    status = ((c.attrs["State"].get("Health") or {}).get("Status")) or "none"
    ctx.require(status == "healthy", f"{c.name}'s health is {status!r}, not 'healthy'")


def _fired_triggers(parent, child, triggers) -> bool:
    """Whether the child's history shows the parent's triggers firing.

    The classic builder writes the ONBUILD instruction into the child's history. BuildKit writes the
    trigger itself (``COPY message.txt /message.txt # buildkit``) right after the parent's history: the
    child's entries beyond the parent's must then be the triggers, in order. (A child FROM busybox
    that runs exactly the trigger's instruction itself looks the same to the engine under BuildKit:
    an ONBUILD-only parent adds no history entry of its own.)"""
    mine = [h.get("CreatedBy") or "" for h in reversed(child.history())]
    if any("ONBUILD" in c for c in mine):
        return True
    base = [h.get("CreatedBy") or "" for h in reversed(parent.history())]
    extra = mine[len(base) :]
    if mine[: len(base)] != base or len(extra) < len(triggers):
        return False
    fired = [
        re.sub(r"^RUN (\|\d+ (\S+=\S* )*)?/bin/sh -c ", "RUN ", c.removesuffix(" # buildkit").strip())
        for c in extra[: len(triggers)]
    ]
    return all(c.endswith(" # buildkit") for c in extra[: len(triggers)]) and fired == [
        t.strip() for t in triggers
    ]


@exercise(
    "08.onbuild",
    title="an ONBUILD trigger fired in a child build",
    nudge="The ONBUILD part of section 2 shows how a parent image leaves instructions that run when a child "
    "is built FROM it.",
    hint="Parent: `FROM busybox:1.35.0` + `ONBUILD COPY message.txt /message.txt`, "
    "tagged name('base') + ':1'. "
    "Child: a folder with message.txt and a Dockerfile `FROM dc08-base:1`, tagged name('app') + ':1'.",
)
def onbuild(ctx):
    parent = ctx.image(ctx.name("base") + ":1")
    triggers = parent.attrs["Config"].get("OnBuild") or []
    ctx.require(
        any(t.upper().startswith(("COPY", "ADD")) and "message.txt" in t for t in triggers),
        f"{ctx.name('base')}:1 has no ONBUILD trigger that copies message.txt (its OnBuild: {triggers})",
    )
    child = ctx.image(ctx.name("app") + ":1")
    pl = parent.attrs["RootFS"]["Layers"]
    ctx.require(
        child.attrs["RootFS"]["Layers"][: len(pl)] == pl, f"{ctx.name('app')}:1 is not built FROM the parent"
    )
    ctx.require(
        _fired_triggers(parent, child, triggers),
        f"{ctx.name('app')}:1 is not built FROM {ctx.name('base')}:1 (its history shows no trigger of it)",
    )
    c = ctx.client.containers.create(child.id, ["true"], labels=ctx.ns.labels)
    try:
        data = ctx.read_file(c, "/message.txt")
    finally:
        c.remove(force=True)
    ctx.require(data.strip(), "/message.txt in the child is empty")


@exercise(
    "08.tiny",
    title="an image under 1 MB that runs a static binary",
    nudge="Section 7 on multi-stage builds shows how to compile in one stage and copy only a static binary "
    "into an empty scratch stage.",
    hint="Stage 1 `FROM gcc:12 AS build` compiles with `gcc -static -O2`; stage 2 `FROM scratch` does "
    "`COPY --from=build` of the binary and sets `ENTRYPOINT`. Tag it name('tiny') + ':1'.",
)
def tiny(ctx):
    ref = ctx.name("tiny") + ":1"
    img = ctx.image(ref)
    size = img.attrs["Size"]
    ctx.require(size < 1_000_000, f"{ref} is {size / 1e6:.1f} MB, not under 1 MB")
    code, out = _run(ctx, ref)
    ctx.require(
        "tiny and static" in out, f"running {ref} printed {out.strip()[:60]!r}, not 'tiny and static'"
    )


@tiny.hidden
def tiny_holds_only_the_binary(ctx):
    # An image does not record the stages it was built in: a binary compiled elsewhere and copied in
    # looks the same. What can be seen: few layers, and no shell (nothing of a base image's userland).
    img = ctx.image(ctx.name("tiny") + ":1")
    ctx.require(len(img.attrs["RootFS"]["Layers"]) <= 3, "the image has more layers than a binary needs")
