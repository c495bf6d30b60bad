"""Checks for chapter 02, core concepts: images, containers, the writable layer, tags."""

from dockercourse import BUSYBOX
from dockercourse.checks import exercise


@exercise(
    "02.hello",
    title="run your first container",
    nudge="A container runs one command from an image: look at client.containers.run (docker run) and how to "
    "give the container a name.",
    hint="Run BUSYBOX with the command `echo hello, docker` in a container named name('hello') "
    "(CLI: docker run --name dc02-hello busybox:1.35.0 echo hello, docker).",
)
def hello(ctx):
    c = ctx.container("hello")
    out = c.logs().decode("utf-8", "replace")
    ctx.require("hello, docker" in out, f"its output is {out.strip()[:60]!r}, not 'hello, docker'")


@hello.hidden
def hello_from_busybox_and_exited(ctx):
    c = ctx.container("hello")
    ctx.require(c.image.id == ctx.client.images.get(BUSYBOX).id, f"it was not made from {BUSYBOX}")
    ctx.require(
        c.status == "exited" and c.attrs["State"]["ExitCode"] == 0,
        f"it should have finished with exit status 0 (it is {c.status})",
    )


@exercise(
    "02.writable",
    title="write into a container's writable layer",
    nudge="Whatever a container writes lands in its own writable layer (section 3); let its command write "
    "the file, then try container.diff().",
    hint="Run BUSYBOX with `sh -c 'echo layers are neat > /notes.txt'` in a container named "
    "name('notes'); then container.diff() lists /notes.txt as added (Kind 1).",
)
def writable(ctx):
    c = ctx.container("notes")
    changes = {d["Path"]: d["Kind"] for d in (c.diff() or [])}
    ctx.require("/notes.txt" in changes, "/notes.txt is not in the container's changes (container.diff())")
    ctx.require(changes["/notes.txt"] == 1, "/notes.txt should be added (Kind 1), not changed")
    data = ctx.read_file(c, "/notes.txt").decode("utf-8", "replace").strip()
    ctx.require(data == "layers are neat", f"/notes.txt holds {data[:40]!r}, not 'layers are neat'")


@writable.hidden
def writable_image_untouched(ctx):
    c = ctx.container("notes")
    img = ctx.client.images.get(BUSYBOX)
    ctx.require(c.image.id == img.id, f"the container was not made from {BUSYBOX}")
    # The file lives in the container's layer only: the image's layers do not hold it.
    ctx.require(
        all("notes.txt" not in (h.get("CreatedBy") or "") for h in img.history()),
        "the image itself was changed",
    )


@exercise(
    "02.tag",
    title="give an image a second name",
    nudge="An image can have several names; the section on tags shows how to add one without copying "
    "anything.",
    hint="Tag the BUSYBOX image as repository name('mybox') with tag 'v1' "
    "(image.tag(name('mybox'), 'v1'); CLI: docker tag busybox:1.35.0 dc02-mybox:v1).",
)
def tag(ctx):
    img = ctx.image(ctx.name("mybox") + ":v1")
    ctx.require(
        img.id == ctx.client.images.get(BUSYBOX).id,
        f"{ctx.name('mybox')}:v1 is a different image, not {BUSYBOX} under a second name",
    )
