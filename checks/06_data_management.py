"""Checks for chapter 06, data management: volumes, bind mounts, volume containers, backups, tmpfs."""

from dockercourse.checks import NotYet, exercise
from dockercourse.lessonkit.mounts import mount_table, tree_digests


def _mount_at(ctx, container, destination):
    """The mount of ``container`` at ``destination`` (a MountRow); NotYet when there is none."""
    for row in mount_table([container]):
        if row.destination.rstrip("/") == destination:
            return row
    raise NotYet(f"{container.name} mounts nothing at {destination}")


@exercise(
    "06.volume",
    title="a named volume that keeps a file",
    nudge="Section 1 covers named volumes: create one, mount it into a container (volumes= or docker run "
    "-v), and write your file inside it.",
    hint="client.volumes.create(name=name('notes'), driver='local'), then run BUSYBOX named "
    "name('notes-writer') with volumes={name('notes'): {'bind': '/notes', 'mode': 'rw'}} and "
    "`sh -c 'echo volumes keep data > /notes/todo.txt'` (CLI: docker volume create dc06-notes; "
    "docker run --name dc06-notes-writer -v dc06-notes:/notes busybox:1.35.0 sh -c '...').",
)
def volume(ctx):
    vol = ctx.volume("notes")
    ctx.require(
        vol.attrs.get("Driver") == "local", f"{vol.name} uses the driver {vol.attrs.get('Driver')}, not local"
    )
    c = ctx.container("notes-writer")
    m = _mount_at(ctx, c, "/notes")
    ctx.require(
        m.type == "volume" and m.source == vol.name,
        f"{c.name} mounts a {m.type} {m.source[:20]!r} at /notes, not the volume {vol.name}",
    )
    text = ctx.read_file(c, "/notes/todo.txt").decode("utf-8", "replace").strip()
    ctx.require(text == "volumes keep data", f"/notes/todo.txt holds {text[:40]!r}, not 'volumes keep data'")


@volume.hidden
def volume_not_in_layer(ctx):
    c = ctx.container("notes-writer")
    ctx.require(
        all(d["Path"] != "/notes/todo.txt" for d in (c.diff() or [])),
        "todo.txt is in the container's writable layer, not in the volume",
    )


@exercise(
    "06.readonly",
    title="a read-only bind mount",
    nudge="Section 2 on bind mounts shows how to mount a host folder into a container and make it read-only; "
    "the host path must be absolute.",
    hint="Run BUSYBOX `sleep 600` detached, named name('ro'), with "
    "volumes={str(folder): {'bind': '/config', 'mode': 'ro'}} for an existing absolute host folder "
    '(CLI: docker run -d --name dc06-ro -v "$HOST/config":/config:ro busybox:1.35.0 sleep 600).',
)
def readonly(ctx):
    c = ctx.container("ro")
    m = _mount_at(ctx, c, "/config")
    ctx.require(
        m.type == "bind", f"/config in {c.name} is a {m.type} mount, not a bind mount of a host folder"
    )
    ctx.require(not m.rw, f"/config in {c.name} is mounted read-write; add :ro (mode 'ro') or readonly")
    code, out = ctx.exec(c, ["sh", "-c", "touch /config/.dc06-write-test 2>&1"])
    ctx.require(code != 0, "a write into /config succeeded; it should fail")
    ctx.require(
        "Read-only file system" in out, f"the write failed, but not as read-only: {out.strip()[:60]!r}"
    )


@exercise(
    "06.restore",
    title="restore a backup into a named volume",
    nudge="Section 5 shows backup and restore with tar: one container mounts both the new volume and the "
    "backup folder, then unpacks.",
    hint="client.volumes.create(name=name('restored')), then run BUSYBOX named name('restorer') with "
    "volumes={name('restored'): {'bind': '/dbdata', ...}, str(host / 'backup'): {'bind': '/backup', "
    "'mode': 'ro'}}, working_dir='/' and the command `tar xvf /backup/backup.tar`.",
)
def restore(ctx):
    vol = ctx.volume("restored")
    c = ctx.container("restorer")
    m = _mount_at(ctx, c, "/dbdata")
    ctx.require(
        m.type == "volume" and m.source == vol.name,
        f"{c.name} does not mount the volume {vol.name} at /dbdata",
    )
    original = ctx.container("dbdata")  # the lesson's volume container (section 4)
    want = tree_digests(original, "/dbdata")
    ctx.require(want, "the original dc06-dbdata holds no files; run sections 4 and 5 again")
    try:
        got = tree_digests(c, "/dbdata")
    except Exception:
        got = {}
    missing = sorted(set(want) - set(got))
    ctx.require(not missing, f"not restored: {', '.join(missing)}")
    differ = sorted(p for p in want if want[p] != got[p])
    ctx.require(not differ, f"restored but different (SHA-256): {', '.join(differ)}")


@exercise(
    "06.volumes-from",
    title="your own volume container",
    nudge="Section 4 covers volume containers: one holds an anonymous volume, and another container borrows "
    "it with volumes_from (--volumes-from).",
    hint="client.containers.create(BUSYBOX, ['true'], mounts=[Mount('/store', None)], name=name('store')) "
    "(CLI: docker create -v /store --name dc06-store busybox:1.35.0), then run BUSYBOX named "
    "name('store-user') with volumes_from=[name('store')] and `sh -c 'echo shared > /store/hello.txt'`.",
)
def volumes_from(ctx):
    store = ctx.container("store")
    m = _mount_at(ctx, store, "/store")
    ctx.require(m.type == "volume", f"/store in {store.name} is a {m.type} mount, not a volume")
    user = ctx.container("store-user")
    sources = [s.split(":")[0] for s in (user.attrs["HostConfig"].get("VolumesFrom") or [])]
    ctx.require(store.name in sources, f"{user.name} does not use --volumes-from {store.name}")
    text = ctx.read_file(store, "/store/hello.txt").decode("utf-8", "replace").strip()
    ctx.require(text == "shared", f"/store/hello.txt holds {text[:40]!r}, not 'shared'")


@volumes_from.hidden
def volumes_from_same_volume(ctx):
    store, user = ctx.container("store"), ctx.container("store-user")
    ctx.require(
        _mount_at(ctx, user, "/store").source == _mount_at(ctx, store, "/store").source,
        "the two containers do not share one volume at /store",
    )


@exercise(
    "06.tmpfs",
    title="scratch space in memory",
    nudge="Section 3 covers tmpfs mounts, which live in memory; look at docker.types.Mount (docker run "
    "--mount) and its size option.",
    hint="Run BUSYBOX `sleep 600` detached, named name('ram'), with "
    "mounts=[docker.types.Mount('/cache', None, type='tmpfs', tmpfs_size='8m')] "
    "(CLI: --mount type=tmpfs,destination=/cache,tmpfs-size=8m).",
)
def tmpfs(ctx):
    c = ctx.container("ram")
    code, out = ctx.exec(c, ["grep", " /cache ", "/proc/mounts"])
    ctx.require(code == 0 and out.split()[2:3] == ["tmpfs"], f"/cache in {c.name} is not a tmpfs mount")
    ctx.require("size=8192k" in out, f"the tmpfs at /cache is not limited to 8 MB: {out.split()[3][:60]!r}")
