"""Reading an image's layers, and the progress a pull or a push reports, in plain terms.

The engine reports layers in three places: ``image.history()`` (the build steps,
newest first), ``image.attrs["RootFS"]["Layers"]`` (the layer digests, oldest first)
and the JSON events of a pull or push stream (one ``id`` per layer). These helpers
turn them into short, stable lists a notebook can print or draw::

    from dockercourse.lessonkit.layers import history_layers, progress_by_layer
    layer_stack(history_layers(client.images.get("busybox:1.35.0")))
    for layer, steps in progress_by_layer(client.api.pull(..., stream=True, decode=True)).items():
        print(layer, " -> ".join(steps))
"""

from __future__ import annotations

import json

from dockercourse.errors import StreamError
from dockercourse.i18n.figures import figure_text, use_language

#: Milestones of a pull or push per layer, in the order the engine reports them.
#: The volatile ones ("Downloading" with its byte counts, "Waiting", "Extracting"
#: percentages, and "Download complete", which a small layer may skip) are left out
#: so the printed summary is the same on every run.
MILESTONES = (
    "Pulling fs layer",
    "Already exists",
    "Pull complete",
    "Preparing",
    "Layer already exists",
    "Pushed",
    "Mounted from",
)


def step_label(created_by: str | None, comment: str | None = None, width: int = 44) -> str:
    """A short label for one history step: the command without the ``/bin/sh -c #(nop)`` noise."""
    text = (created_by or "").strip()
    for noise in ("/bin/sh -c #(nop) ", "/bin/sh -c "):
        if text.startswith(noise):
            text = text[len(noise) :].strip()
    text = " ".join(text.split())  # multi-line RUN scripts on one line
    if not text:
        text = comment or "(no command)"
    return text if len(text) <= width else text[: width - 1] + "…"


def history_layers(image, with_empty: bool = False, width: int = 44) -> list[tuple[str, int]]:
    """``(label, size_bytes)`` of each step of ``image``, oldest first.

    Steps of size 0 (LABEL, CMD, ENV ...) change only the configuration and make
    no file-system layer; they are left out unless ``with_empty``.
    """
    steps = list(reversed(image.history()))
    return [
        (step_label(s.get("CreatedBy"), s.get("Comment"), width), int(s.get("Size") or 0))
        for s in steps
        if with_empty or s.get("Size")
    ]


def progress_by_layer(events, names: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Group the events of a pull/push stream by layer, keeping the stable milestones.

    Args:
        events: the decoded stream (``stream=True, decode=True``).
        names: layer id -> a readable name; by default "layer 1", "layer 2" ... in the
            order the layers first appear.

    Returns:
        layer name -> the milestones it went through, in order. Non-layer messages
        (``Status: ...``, ``Digest: ...``) go under ``""``, which is always there (Podman's streams
        may have no such message: it is then empty); an error raises
        :class:`StreamError` carrying the engine's message.
    """
    out: dict[str, list[str]] = {"": []}
    order: dict[str, str] = {}
    for ev in events:
        if "error" in ev:
            raise StreamError((ev.get("errorDetail") or {}).get("message") or ev["error"])
        status = ev.get("status", "")
        lid = ev.get("id")
        is_layer = lid and ev.get("progressDetail") is not None
        if not is_layer:
            out.setdefault("", []).append(status)
            continue
        if lid not in order:
            order[lid] = (names or {}).get(lid) or f"layer {len(order) + 1}"
        key = order[lid]
        steps = out.setdefault(key, [])
        ms = next((m for m in MILESTONES if status.startswith(m)), None)
        if ms and (not steps or steps[-1] != ms):
            steps.append(ms)
    return out


def size_bars(items: list[tuple[str, int]], title: str = "Image sizes"):
    """A horizontal bar chart of ``(name, size_bytes)``, largest at the top."""
    use_language()  # before the figure: its texts take the font then
    import matplotlib.pyplot as plt

    from dockercourse.lessonkit.draw import human, show

    items = sorted(items, key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(items) + 1.0))
    ax.barh([k for k, _ in items], [v / 1e6 for _, v in items], color="#9ecae1", edgecolor="#3182bd")
    for i, (_, v) in enumerate(items):
        ax.text(v / 1e6, i, "  " + human(v), va="center", fontsize=9)
    ax.set_xlabel("MB (as `docker images` reports them)")
    ax.set_xlim(0, max(v for _, v in items) / 1e6 * 1.25)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(figure_text(title))
    fig.tight_layout()
    return show(fig)


def _listed(client, image) -> list[dict]:
    """The rows of ``/images/json?manifests=1`` that can be this image: its first name's when it has one
    (the engine then sizes one image: 14 ms instead of 0.28 s with chapter 08's 40 images, since the
    containerd store works out every listed image's unpacked size), else every image's."""

    def rows(**query):
        params = {"manifests": "1", **query}
        return client.api._result(client.api._get(client.api._url("/images/json"), params=params), True)

    tags = image.attrs.get("RepoTags") or []
    named = rows(filters=json.dumps({"reference": tags[:1]})) if tags else []
    return [r for r in named if r.get("Id") == image.id] or rows(all="1")


def image_sizes(client, image) -> dict:
    """The sizes of ``image`` measured the same way on both image stores.

    Returns ``{"unpacked": bytes, "content": bytes or None}``: ``unpacked`` is the size of
    the image's files once unpacked (what the classic store's ``Size`` and ``docker images``
    report); ``content`` is what the containerd image store also keeps, the compressed layers
    and the manifest as a registry serves them (None on the classic store, which keeps none).
    The containerd store's own ``Size`` field is that content size, which is why the raw
    ``Size`` of the same image differs between engines.
    """
    attrs = image.attrs
    if "Descriptor" not in attrs:  # the classic store (no manifest kept locally)
        return {"unpacked": int(attrs.get("Size") or 0), "content": None}
    for row in _listed(client, image):
        if row.get("Id") != image.id:
            continue
        for m in row.get("Manifests") or []:
            data = m.get("ImageData") or {}
            if m.get("Kind") == "image" and m.get("Available"):
                return {
                    "unpacked": int((data.get("Size") or {}).get("Unpacked") or 0),
                    "content": int((m.get("Size") or {}).get("Content") or 0),
                }
    # an engine without the manifest list in /images/json: unpacked = the layers' sizes
    return {
        "unpacked": sum(int(s.get("Size") or 0) for s in image.history()),
        "content": int(attrs.get("Size") or 0),
    }
