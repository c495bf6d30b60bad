"""Checks for chapter 05, registries: your own registry, push, pull, basic auth.

The checks find the learner's registry container by name, read the host port it
publishes, and ask the registry's HTTP API (on 127.0.0.1 only).
"""

import json

from dockercourse import BUSYBOX, REGISTRY
from dockercourse.checks import NotYet, exercise
from dockercourse.lessonkit.registry import MANIFEST_TYPES, RegistryAPI


def _registry(ctx, short):
    """(container, RegistryAPI) of the learner's registry ``name(short)``, running and published."""
    c = ctx.container(short)
    ctx.require(c.status == "running", f"{c.name} is {c.status}, not running")
    ctx.require(c.image.id == ctx.client.images.get(REGISTRY).id, f"{c.name} was not made from {REGISTRY}")
    host, port = ctx.published_port(c, "5000/tcp")
    ctx.require(
        host in ("127.0.0.1", "0.0.0.0", ""),
        f"{c.name} publishes port 5000 on {host}; publish it on 127.0.0.1",
    )
    api = RegistryAPI(f"http://127.0.0.1:{port}", timeout=3)
    api.port = port
    return c, api


def _get(ctx, api, path):
    """(status, body) of an anonymous GET on the registry."""
    return ctx.http_get("127.0.0.1", api.port, path)


@exercise(
    "05.registry",
    title="run your own registry with its storage on a named volume",
    nudge="Section 2 runs a registry and section 6 keeps its storage on a volume: create the volume, then "
    "mount it where the registry stores data.",
    wait=5,
    points=2,
    hint="Create the volume name('regdata'), then run REGISTRY detached as name('myreg') with "
    "ports={'5000/tcp': ('127.0.0.1', course.free_port())} and "
    "volumes={name('regdata'): {'bind': '/var/lib/registry', 'mode': 'rw'}}.",
)
def registry(ctx):
    c, api = _registry(ctx, "myreg")
    status, _ = _get(ctx, api, "/v2/")
    ctx.require(status == 200, f"GET /v2/ on {c.name} answers {status}, not 200 (is it still starting?)")
    # The registry runs and answers: half the points; the other half for its storage.
    half = f"{c.name} runs and answers, but "
    try:
        vol = ctx.volume("regdata")
    except NotYet as e:
        raise NotYet(half + str(e), credit=0.5) from None
    mounts = {m.get("Destination"): m for m in c.attrs.get("Mounts") or []}
    m = mounts.get("/var/lib/registry")
    if m is None:
        raise NotYet(half + "it has nothing mounted at /var/lib/registry", credit=0.5)
    if not (m.get("Type") == "volume" and m.get("Name") == vol.name):
        raise NotYet(
            half + f"/var/lib/registry in it is not the volume {vol.name} "
            f"(it is {m.get('Type')} {m.get('Name') or m.get('Source')})",
            credit=0.5,
        )


@exercise(
    "05.push",
    title="push an image into your registry",
    nudge="A push goes to the registry named at the start of the image's name; section 3 shows how to tag an "
    "image for your own registry.",
    wait=3,
    hint="Tag BUSYBOX as 127.0.0.1:<port of dc05-myreg>/"
    "dc05-mybox:v1 (the port: "
    "client.containers.get(name('myreg')).ports['5000/tcp'][0]['HostPort']) and push that name; "
    "then GET /v2/_catalog on that port lists it.",
)
def push(ctx):
    c, api = _registry(ctx, "myreg")
    repo = ctx.name("mybox")
    status, body = _get(ctx, api, "/v2/_catalog")
    ctx.require(status == 200, f"GET /v2/_catalog on {c.name} answers {status}")
    repos = json.loads(body or b"{}").get("repositories") or []
    ctx.require(repo in repos, f"the catalog of {c.name} does not list {repo} (it lists {repos[:5]})")
    status, body = _get(ctx, api, f"/v2/{repo}/tags/list")
    tags = (json.loads(body or b"{}").get("tags") or []) if status == 200 else []
    ctx.require("v1" in tags, f"{repo} in {c.name} has no tag v1 (its tags: {tags})")


@push.hidden
def push_is_busybox(ctx):
    _, api = _registry(ctx, "myreg")
    ids = api.image_ids(ctx.name("mybox"), "v1")
    ctx.require(ids, f"the manifest of {ctx.name('mybox')}:v1 cannot be read")
    ctx.require(
        ctx.client.images.get(BUSYBOX).id in ids, f"{ctx.name('mybox')}:v1 is not the {BUSYBOX} image"
    )


@exercise(
    "05.pull",
    title="pull an image back from your registry under another name",
    nudge="Section 4 pulls an image back from your registry by its full address; then give the pulled image "
    "its new local name with a tag.",
    hint="Pull 127.0.0.1:<port of dc05-myreg>/"
    "dc05-mybox:v1 (client.images.pull(ref, 'v1')), then "
    "tag the pulled image as name('frommyreg') with tag 'v1'.",
)
def pull(ctx):
    local = ctx.image(ctx.name("frommyreg") + ":v1")
    c, api = _registry(ctx, "myreg")
    repo = ctx.name("mybox")
    r = api.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_TYPES})
    ctx.require(r.status_code == 200, f"{c.name} has no {repo}:v1 to pull (push it first: exercise 2)")
    ctx.require(
        local.id in api.image_ids(repo, "v1"),
        f"{ctx.name('frommyreg')}:v1 is not the image {c.name} holds as {repo}:v1",
    )
    digest = r.headers.get("Docker-Content-Digest")
    port = api.port
    wanted = f"127.0.0.1:{port}/{repo}@{digest}"
    ctx.require(
        wanted in (local.attrs.get("RepoDigests") or []),
        f"the engine does not know {ctx.name('frommyreg')}:v1 as pulled from {c.name} "
        f"(its repo digests lack 127.0.0.1:{port}/{repo}@...)",
    )
    if ctx.events_kept():  # a push records the digest too: only a pull event tells a pull from a tag
        pulled = {
            (e.get("Actor") or {}).get("ID", "")
            for e in ctx.events(since=c.attrs["Created"], type="image", actions=("pull",))
        }
        ctx.require(
            any(_from_registry(ref, port, repo) for ref in pulled),
            f"the engine saw no pull from {c.name} (127.0.0.1:{port}/{repo}): pull it, do not only tag "
            "the local image",
        )


def _from_registry(ref: str, port: int, repo: str) -> bool:
    """Whether an image reference names ``repo`` in the registry on this host's ``port``."""
    name = ref.split("@")[0]
    if name.rsplit("/", 1)[-1].count(":"):
        name = name.rsplit(":", 1)[0]
    return name in (f"127.0.0.1:{port}/{repo}", f"localhost:{port}/{repo}")


@exercise(
    "05.auth",
    title="a registry that refuses anonymous requests",
    nudge="Section 7 builds a registry with basic auth: it needs the REGISTRY_AUTH* settings and an htpasswd "
    "file in place before it starts.",
    wait=5,
    hint="Create REGISTRY as name('authreg') with REGISTRY_AUTH=htpasswd, REGISTRY_AUTH_HTPASSWD_REALM "
    "and REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd, put the file there with "
    "put_archive('/', tar_files({'auth/htpasswd': htpasswd_line('learner', password)})), publish "
    "5000 on 127.0.0.1, start it.",
)
def auth(ctx):
    c, api = _registry(ctx, "authreg")
    status, body = _get(ctx, api, "/v2/")
    ctx.require(status == 401, f"an anonymous GET /v2/ on {c.name} answers {status}, not 401")
    ctx.require(b"UNAUTHORIZED" in (body or b""), f"the 401 of {c.name} is not the registry's own")


@auth.hidden
def auth_user_learner(ctx):
    c, _ = _registry(ctx, "authreg")
    env = dict(e.split("=", 1) for e in c.attrs["Config"].get("Env") or [] if "=" in e)
    ctx.require(env.get("REGISTRY_AUTH") == "htpasswd", f"{c.name} does not use REGISTRY_AUTH=htpasswd")
    path = env.get("REGISTRY_AUTH_HTPASSWD_PATH", "")
    ctx.require(path, f"{c.name} has no REGISTRY_AUTH_HTPASSWD_PATH")
    text = ctx.read_file(c, path).decode("utf-8", "replace")
    ctx.require(
        any(line.startswith("learner:$2") for line in text.splitlines()),
        f"{path} in {c.name} has no bcrypt entry for the user learner",
    )
