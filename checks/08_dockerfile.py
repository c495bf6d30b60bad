"""Checks for chapter 08, the Dockerfile: images built by the learner, read back from the engine."""

import docker.errors

from dockercourse import BUSYBOX
from dockercourse.checks import NotYet, exercise


def _run(ctx, ref, command=None):
    """Run ``ref`` once (removed afterwards); its exit code and output text."""
    c = ctx.client.containers.run(ref, command, detach=True)
    try:
        res = c.wait(timeout=20)
        return res.get("StatusCode", -1), c.logs().decode("utf-8", "replace")
    finally:
        c.remove(force=True, v=True)


def _base_layers(ctx, ref):
    return ctx.client.images.get(ref).attrs["RootFS"]["Layers"]


@exercise(
    "08.cmd",
    title="an image whose CMD greets",
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


@exercise(
    "08.onbuild",
    title="an ONBUILD trigger fired in a child build",
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
    c = ctx.client.containers.create(child.id, ["true"])
    try:
        data = ctx.read_file(c, "/message.txt")
    finally:
        c.remove(force=True)
    ctx.require(data.strip(), "/message.txt in the child is empty")


@exercise(
    "08.tiny",
    title="a multi-stage image under 1 MB",
    hint="Stage 1 `FROM gcc:12 AS build` compiles with `gcc -static -O2`; stage 2 `FROM scratch` does "
    "`COPY --from=build` of the binary and sets `ENTRYPOINT`. Tag it name('tiny') + ':1'.",
)
def tiny(ctx):
    ref = ctx.name("tiny") + ":1"
    img = ctx.image(ref)
    size = img.attrs["Size"]
    ctx.require(size < 1_000_000, f"{ref} is {size / 1e6:.1f} MB, not under 1 MB")
    try:
        code, out = _run(ctx, ref)
    except docker.errors.APIError as e:
        raise NotYet(f"{ref} does not start: {e.explanation}") from None
    ctx.require(
        "tiny and static" in out, f"running {ref} printed {out.strip()[:60]!r}, not 'tiny and static'"
    )


@tiny.hidden
def tiny_is_multistage(ctx):
    img = ctx.image(ctx.name("tiny") + ":1")
    ctx.require(len(img.attrs["RootFS"]["Layers"]) <= 3, "the image has more layers than a binary needs")
