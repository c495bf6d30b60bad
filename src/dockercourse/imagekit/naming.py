"""Names and labels the kit gives its resources."""

from __future__ import annotations

import uuid

from dockercourse.core import labels

#: Repository of the temporary tags images are built under (retagged on success).
TMP_REPO_PREFIX = "dockercourse-kit-tmp/"
#: Name prefix of the short-lived containers that install packages into a layer.
BUILD_CONTAINER_PREFIX = "dockercourse-kit-build-"
MIRROR_NAME = "dockercourse-mirror"
MIRROR_VOLUME = "dockercourse-mirror-data"


def kit_labels(source: str) -> dict[str, str]:
    return {labels.KIT: "1", labels.KIT_SOURCE: source}


def tmp_ref(role: str) -> str:
    return f"{TMP_REPO_PREFIX}{role}:{uuid.uuid4().hex[:12]}"


def split_ref(ref: str) -> tuple[str, str]:
    """("busybox", "1.35.0") from "busybox:1.35.0" (a registry port is not a tag)."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def hub_path(ref: str) -> str:
    """Docker Hub repository path: official images live under library/."""
    name, _ = split_ref(ref)
    return name if "/" in name else f"library/{name}"


def is_kit_image(image) -> bool:
    return (image.labels or {}).get(labels.KIT) == "1"
