#!/usr/bin/env python3
"""What the engine's image store makes of one image: the figures behind the side-by-side tables of
chapters 02 and 03 (classic store vs containerd image store).

    DOCKER_HOST=... .venv/bin/python tools/stores.py [IMAGE ...]     (default: the course's busybox)

Run it once on each store (``scripts/engine-up --engine 28-classic`` and ``--engine 28``) and copy the
lines into the tables. It reads the engine's own answers: ``docker info``'s ``DriverStatus``, the
image's ID, ``Size`` and ``RootFS.Layers``, and what ``docker save`` writes (whose ``index.json``
names the manifest, which names the configuration), then says which digest the ID is.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile

from dockercourse.core.engine import connect, engine_info
from dockercourse.core.images import BUSYBOX


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    return tar.extractfile(f"blobs/{algo}/{hexd}").read()


def describe(client, ref: str) -> dict:
    img = client.images.get(ref)
    raw = b"".join(client.api.get_image(ref))
    tar = tarfile.open(fileobj=io.BytesIO(raw))
    names = sorted({m.name.split("/")[0] for m in tar.getmembers()})
    out = {
        "image": ref,
        "ID": img.id,
        "Size (API, MB)": round(img.attrs.get("Size", 0) / 1e6, 2),
        "RootFS.Layers": len(img.attrs["RootFS"]["Layers"]),
        "docker save, top level": " ".join(names),
        "docker save, bytes": len(raw),
    }
    if "index.json" in names:
        index = json.load(tar.extractfile("index.json"))
        top = index["manifests"][0]
        doc = json.loads(_blob(tar, top["digest"]))
        manifest_digest = top["digest"]
        if "manifests" in doc:  # an image index: the platform's manifest
            manifest_digest = doc["manifests"][0]["digest"]
            doc = json.loads(_blob(tar, manifest_digest))
        config = doc["config"]["digest"]
        out["ID is the digest of"] = (
            "the image index"
            if img.id == top["digest"] and top["digest"] != manifest_digest
            else "the manifest"
            if img.id == manifest_digest
            else "the configuration"
            if img.id == config
            else "none of index, manifest, configuration"
        )
        out["manifest media type"] = doc.get("mediaType", "?")
    else:  # Docker before 25: one folder per layer, manifest.json, no OCI layout
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        cfg = tar.extractfile(manifest["Config"]).read()
        is_config = img.id == "sha256:" + hashlib.sha256(cfg).hexdigest()
        out["ID is the digest of"] = "the configuration" if is_config else "?"
    return out


def main(refs: list[str]) -> int:
    client = connect()
    info = engine_info(client)
    status = dict(client.info().get("DriverStatus") or [])
    print(f"engine: Docker {info.server_version}; {info.store_text}")
    print(f"docker info DriverStatus: {json.dumps(status)}")
    for ref in refs or [BUSYBOX]:
        for k, v in describe(client, ref).items():
            print(f"  {k:<24}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
