"""Who mounts what: read containers' mounts from the engine, draw them, hash mounted files.

    from dockercourse.lessonkit.mounts import mount_table, mount_map, tree_digests

    rows = mount_table(containers)               # one row per mount, from `docker inspect` .Mounts
    mount_map(containers, rename={"/tmp/tmpabc": "$HOST"})
    digests = tree_digests(container, "/data")   # {"data/a.txt": "<sha256>", ...}

Everything comes from the engine's own data (each container's ``Mounts`` in
inspect, and the archive API for files), so the pictures show what really is
mounted, not what a notebook meant to mount.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from dockercourse.i18n.figures import figure_text, use_language
from dockercourse.lessonkit.draw import plt, show

COLORS = {"volume": "#9ecae1", "bind": "#fdae6b", "tmpfs": "#c7e9c0", "npipe": "#dadaeb"}
EDGES = {"volume": "#3182bd", "bind": "#e6550d", "tmpfs": "#31a354", "npipe": "#756bb1"}


@dataclass(frozen=True)
class MountRow:
    container: str
    type: str  # volume, bind, tmpfs
    source: str  # volume name, host path, or "" for tmpfs
    destination: str
    rw: bool
    anonymous: int = 0  # 1, 2, ... for anonymous volumes, numbered in order of first appearance

    def source_label(self, rename: dict[str, str] | None = None) -> str:
        """A short readable name for the source: ``volume dc06-data``, ``anonymous volume #1``,
        ``host $HOST/site``.

        Anonymous volumes are named by a 64-hex ID; they are numbered instead (the same
        volume gets the same number within one :func:`mount_table`).
        """
        if self.type == "volume":
            return f"anonymous volume #{self.anonymous}" if self.anonymous else f"volume {self.source}"
        if self.type == "bind":
            path = self.source
            for long, short in sorted((rename or {}).items(), key=lambda kv: -len(kv[0])):
                if path == long or path.startswith(long.rstrip("/") + "/"):
                    path = short + path[len(long.rstrip("/")) :]
                    break
            return f"host {path}"
        if self.type == "tmpfs":
            return f"tmpfs of {self.container} (memory)"
        return f"{self.type} {self.source}"


def volume_name(mount: dict) -> str:
    """The volume of one ``Mounts`` entry (docker inspect), also where the engine leaves ``Name`` out.

    Docker 28 omits ``Name`` for an anonymous volume made from a ``-v /path`` bind entry (what
    docker-py's ``volumes=["/path"]`` sends); the local driver keeps every volume at
    ``<data root>/volumes/<name>/_data``, so the name is read from the ``Source`` path then.
    """
    if mount.get("Name"):
        return mount["Name"]
    src = mount.get("Source") or ""
    parts = src.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-1] == "_data" and parts[-3] == "volumes":
        return parts[-2]
    return ""


def volume_of(container, destination: str) -> str:
    """The name of the volume ``container`` mounts at ``destination`` ('' when none)."""
    container.reload()
    for m in container.attrs.get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Destination") == destination:
            return volume_name(m)
    return ""


def _is_anonymous(volume_name: str) -> bool:
    return len(volume_name) == 64 and all(ch in "0123456789abcdef" for ch in volume_name)


def mount_table(containers) -> list[MountRow]:
    """One :class:`MountRow` per mount of each container (docker-py Container objects), in order."""
    rows, anon = [], {}
    for c in containers:
        c.reload()
        for m in c.attrs.get("Mounts") or []:
            kind = m.get("Type", "volume")
            source = (volume_name(m) if kind == "volume" else m.get("Source")) or ""
            number = (
                anon.setdefault(source, len(anon) + 1) if kind == "volume" and _is_anonymous(source) else 0
            )
            rows.append(
                MountRow(c.name, kind, source, m.get("Destination", ""), bool(m.get("RW", True)), number)
            )
    return rows


def mount_map(containers, rename: dict[str, str] | None = None, title: str = "Which container mounts what"):
    """Draw containers (left) joined to what they mount (right): volumes, host folders, tmpfs.

    Each line is labelled with the mount's destination inside the container; a dashed line
    is a read-only mount.

    Args:
        containers: docker-py Container objects.
        rename: host path prefix -> short text, to keep temporary folder names readable.
    """
    use_language()  # before the figure: its texts take the font then
    rows = mount_table(containers)
    names = [c.name for c in containers]
    sources: list[tuple[str, str]] = []  # (label, type), first-seen order
    for r in rows:
        key = (r.source_label(rename), r.type)
        if key not in sources:
            sources.append(key)
    n = max(len(names), len(sources), 1)
    fig, ax = plt.subplots(figsize=(10, 0.62 * n + 1.4))
    ypos_c = {
        cn: n - 1 - i * (n - 1) / max(1, len(names) - 1) if len(names) > 1 else (n - 1) / 2
        for i, cn in enumerate(names)
    }
    ypos_s = {
        s: n - 1 - i * (n - 1) / max(1, len(sources) - 1) if len(sources) > 1 else (n - 1) / 2
        for i, s in enumerate(sources)
    }
    for cn, y in ypos_c.items():
        ax.text(
            0,
            y,
            cn,
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
            bbox=dict(boxstyle="round,pad=0.35", fc="#f0f0f0", ec="#636363"),
        )
    for (label, kind), y in ypos_s.items():
        ax.text(
            10,
            y,
            label,
            ha="center",
            va="center",
            fontsize=8.5,
            bbox=dict(
                boxstyle="round,pad=0.35", fc=COLORS.get(kind, "#eeeeee"), ec=EDGES.get(kind, "#636363")
            ),
        )
    for r in rows:
        y0, y1 = ypos_c[r.container], ypos_s[(r.source_label(rename), r.type)]
        ax.plot([1.6, 7.9], [y0, y1], color=EDGES.get(r.type, "#636363"), lw=1.4, ls="-" if r.rw else "--")
        ax.text(
            1.6 + 0.25 * 6.3,
            y0 + 0.25 * (y1 - y0) + 0.12,
            r.destination + ("" if r.rw else " (ro)"),
            fontsize=7.5,
            color="#333",
            ha="center",
        )
    ax.set_xlim(-1.8, 12.3)
    ax.set_ylim(-0.8, n - 0.2)
    ax.axis("off")
    ax.set_title(figure_text(title))
    handles = [plt.Line2D([0], [0], color=EDGES[k], lw=2) for k in ("volume", "bind", "tmpfs")]
    handles.append(plt.Line2D([0], [0], color="#636363", lw=1.4, ls="--"))
    ax.legend(
        handles,
        ["volume", "bind mount (host folder)", "tmpfs (memory)", "read-only"],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return show(fig)


def tree_digests(container, path: str) -> dict[str, str]:
    """SHA-256 of every regular file under ``path`` in a container (running or not).

    The files are read through the archive API (``docker cp``), so the container needs no
    tools of its own. Keys are the paths as the archive names them (``dbdata/a.txt``).
    """
    stream, _ = container.get_archive(path)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar:
            if member.isfile():
                out[member.name] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    return dict(sorted(out.items()))
