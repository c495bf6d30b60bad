"""Checks for chapter 03, images: tag, commit, import, load, push."""

import json
import re

from dockercourse import BUSYBOX
from dockercourse.checks import exercise
from dockercourse.lessonkit.registry import RegistryAPI


def _busybox(ctx):
    return ctx.client.images.get(BUSYBOX)


@exercise(
    "03.tag",
    title="give an image two more names",
    nudge="A tag is just another name for the same image ID; section 3 shows how to add names with image.tag "
    "(docker tag), one per tag.",
    hint="Tag the BUSYBOX image as name('mybox') with the tags '1.35' and 'stable' "
    "(CLI: docker tag busybox:1.35.0 dc03-mybox:1.35 ; docker tag busybox:1.35.0 dc03-mybox:stable).",
)
def tag(ctx):
    want = _busybox(ctx).id
    for t in ("1.35", "stable"):
        img = ctx.image(ctx.name("mybox") + ":" + t)
        ctx.require(img.id == want, f"{ctx.name('mybox')}:{t} is another image, not {BUSYBOX}")


@exercise(
    "03.commit",
    title="commit a container with author and message",
    nudge="Committing turns a container's changes into an image; section 6 shows container.commit (docker "
    "commit) with author and message.",
    hint="Run BUSYBOX as name('diary') with `sh -c 'echo dear diary > /diary.txt'`, then "
    "container.commit(repository=name('diary'), tag='v1', author='Student <student@example.com>', "
    "message='first entry') (CLI: docker commit -a ... -m ... dc03-diary dc03-diary:v1).",
)
def commit(ctx):
    img = ctx.image(ctx.name("diary") + ":v1")
    author, comment = img.attrs.get("Author") or "", img.attrs.get("Comment") or ""
    ctx.require(
        author == "Student <student@example.com>",
        f"its author is {author!r}, not 'Student <student@example.com>'",
    )
    ctx.require(comment == "first entry", f"its message (Comment) is {comment!r}, not 'first entry'")
    base = _busybox(ctx).attrs["RootFS"]["Layers"]
    layers = img.attrs["RootFS"]["Layers"]
    ctx.require(
        layers[: len(base)] == base and len(layers) == len(base) + 1,
        f"it should be {BUSYBOX}'s layers plus one layer from the container",
    )


@commit.hidden
def commit_has_file(ctx):
    c = ctx.container("diary")
    data = ctx.read_file(c, "/diary.txt").decode("utf-8", "replace").strip()
    ctx.require(data == "dear diary", f"/diary.txt in {c.name} holds {data[:40]!r}, not 'dear diary'")
    img = ctx.image(ctx.name("diary") + ":v1")
    source = img.attrs.get("Container")  # engines before API 1.45 record the committed container
    if not source:  # newer ones do not: their commit event names the container and the new image
        commits = ctx.events(since=c.attrs["Created"], type="container", actor=c.id, actions=("commit",))
        source = (
            c.id
            if any((e["Actor"].get("Attributes") or {}).get("imageID") == img.id for e in commits)
            else None
        )
    ctx.require(source == c.id, f"{ctx.name('diary')}:v1 was committed from another container")


# Podman's import writes the entry a classic `ADD <tarball> /` would (`... ADD file:<digest> in /`)
_PODMAN_IMPORT = re.compile(r"/bin/sh -c #\(nop\) ADD file:[0-9a-f]{64} in /")


def _imported(entry: dict) -> bool:
    """Whether an image's only history entry is an import's: Docker's names no instruction, Podman's the ADD
    of the tarball. A build can give the same ADD entry, but never as the only one of an image with a
    command (its CMD is an entry of its own), so the checks on the number of entries and on Cmd tell them
    apart."""
    made_by = (entry.get("CreatedBy") or "").strip()
    return not made_by or bool(_PODMAN_IMPORT.fullmatch(made_by))


@exercise(
    "03.import",
    title="import a root file system tarball",
    nudge="An exported container file system can become an image again; section 7 on docker import also "
    "shows how to set its command.",
    hint="Export a BUSYBOX container (container.export(), CLI docker export) into a tar file, then "
    "client.api.import_image_from_file(path, repository=name('template'), tag='v1', "
    "changes=['CMD [\"sh\"]']) (CLI: docker import -c 'CMD [\"sh\"]' FILE dc03-template:v1).",
)
def import_(ctx):
    img = ctx.image(ctx.name("template") + ":v1")
    hist = img.history()
    ctx.require(
        len(img.attrs["RootFS"]["Layers"]) == 1 and len(hist) == 1 and _imported(hist[0]),
        "it was not made by import (an imported image has one layer and one history entry, made by no "
        "instruction; its comment is 'Imported from ...' or the message given with -m)",
    )
    cmd = (img.attrs.get("Config") or {}).get("Cmd")
    ctx.require(cmd == ["sh"], f"its command is {cmd}, not ['sh'] (use changes=['CMD [\"sh\"]'])")
    ctx.require(img.attrs["Size"] > 500_000, "its file system is too small to be busybox's")


@exercise(
    "03.load",
    title="load an image from a tar file",
    nudge="Images saved to a tar file go back into the engine with the opposite of save; section 9 shows the "
    "pair.",
    hint="client.images.load(open(workdir / 'gift.tar', 'rb').read()) "
    "(CLI: docker load -i /tmp/dc03-images/gift.tar).",
)
def load(ctx):
    img = ctx.image(ctx.name("gift") + ":1.0")
    ctx.require(
        (img.attrs.get("Comment") or "") == "a gift from a colleague",
        f"{ctx.name('gift')}:1.0 is not the image from gift.tar (its message differs)",
    )
    if ctx.events_kept():  # the same commit made again has the same message: only a load says "load"
        loads = ctx.events(since=0, type="image", actor=img.id, actions=("load",))
        ctx.require(
            loads,
            f"the engine saw no load of {ctx.name('gift')}:1.0: load it from gift.tar (docker load / "
            "images.load); if you did long ago, load it again and re-check",
        )


@exercise(
    "03.push",
    title="push an image to your registry",
    nudge="A push goes to the registry named at the start of the image's name; section 10 shows how to tag "
    "for your registry, then push.",
    hint="Tag BUSYBOX as f'{registry}/' + name('mine') + ':1.35.0' and push that name "
    "(client.images.push(..., stream=True, decode=True); CLI: docker push 127.0.0.1:PORT/dc03-mine:1.35.0).",
)
def push(ctx):
    reg = ctx.container("registry")
    host, port = ctx.published_port(reg, "5000/tcp")
    status, body = ctx.http_get(host, port, "/v2/_catalog")
    ctx.require(status == 200, f"the registry's catalog answered HTTP {status}")
    repos = json.loads(body).get("repositories") or []
    ctx.require(
        ctx.name("mine") in repos, f"the registry's catalog has no {ctx.name('mine')} (it has {repos})"
    )
    status, body = ctx.http_get(host, port, f"/v2/{ctx.name('mine')}/tags/list")
    tags = (json.loads(body).get("tags") or []) if status == 200 else []
    ctx.require("1.35.0" in tags, f"{ctx.name('mine')} in the registry has the tags {tags}, not 1.35.0")
    api = RegistryAPI(f"http://127.0.0.1:{port}", timeout=3)
    ctx.require(
        ctx.client.images.get(BUSYBOX).id in api.image_ids(ctx.name("mine"), "1.35.0"),
        f"{ctx.name('mine')}:1.35.0 in the registry is not the {BUSYBOX} image",
    )
