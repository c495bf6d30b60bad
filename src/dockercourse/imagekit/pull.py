"""Online path: pull the pinned tags (through the engine's mirrors when it has some)."""

from __future__ import annotations

import docker.errors

from dockercourse.core import labels
from dockercourse.errors import ImageKitError, PullFailed
from dockercourse.imagekit.build import finish
from dockercourse.imagekit.naming import is_kit_image, kit_labels, split_ref, tmp_ref
from dockercourse.imagekit.progress import LayerBars


def pull(client, ref: str, progress: bool = True) -> str | None:
    """Pull ``ref`` with a bar per layer; return the repo digest, raise PullFailed."""
    name, tag = split_ref(ref)
    bars = LayerBars(f"pull {ref}", progress)
    try:
        for ev in client.api.pull(name, tag=tag, stream=True, decode=True):
            bars.feed(ev)
    except docker.errors.APIError as e:
        raise PullFailed(getattr(e, "explanation", None) or str(e)) from None
    finally:
        bars.close()
    if bars.error:
        raise PullFailed(bars.error)
    return bars.digest


def label_pulled(client, ref: str, digest: str | None) -> None:
    """Give an image the kit just pulled the kit's labels (a label-only image, no new layer).

    An image pulled from the course mirror already carries them and stays as it is.
    """
    img = client.images.get(ref)
    if is_kit_image(img):
        return
    if not digest:
        rd = [d for d in img.attrs.get("RepoDigests") or [] if "@" in d]
        digest = rd[0].split("@", 1)[1] if rd else img.id
    tmp = tmp_ref(split_ref(ref)[0].replace("/", "-"))
    repo, tag = split_ref(tmp)
    import io

    dockerfile = f"FROM {ref}\n".encode()
    out = client.api.build(
        fileobj=io.BytesIO(dockerfile),
        tag=tmp,
        labels=kit_labels(f"pulled {digest}"),
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    err = None
    for ev in out:
        if "error" in ev:
            err = ev["error"]
    if err:
        raise ImageKitError(f"labelling the pulled {ref} failed: {err.strip()[:200]}")
    finish(client, tmp, ref, replace=True)
    assert client.images.get(ref).labels.get(labels.KIT) == "1"
