"""ensure() and remove(): make the course images present, seed the mirror, take it all away."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import docker.errors

from dockercourse.core import labels
from dockercourse.core.engine import connect
from dockercourse.core.images import COURSE_IMAGES
from dockercourse.errors import ImageKitError
from dockercourse.imagekit import build as build_mod
from dockercourse.imagekit import debian
from dockercourse.imagekit import mirror as mirror_mod
from dockercourse.imagekit.naming import (
    BUILD_CONTAINER_PREFIX,
    MIRROR_NAME,
    MIRROR_VOLUME,
    TMP_REPO_PREFIX,
    split_ref,
)
from dockercourse.imagekit.progress import steps
from dockercourse.imagekit.pull import PullFailed, label_pulled, pull
from dockercourse.imagekit.recipes import RECIPES
from dockercourse.imagekit.status import KitStatus, image_status, status

MODES = ("auto", "online", "offline")
#: Free space the offline build wants (the builder image alone is ~400 MB, plus caches).
NEED_BYTES = 2 * 1024**3


def _quiet(*a, **k):
    pass


def cleanup_leftovers(client, log=_quiet) -> None:
    """Drop what an interrupted run left: build containers and temporary tags (kit-labelled only)."""
    from dockercourse.core.cleanup import Sweep

    sweep = Sweep(client)
    sweep.containers(filters={"label": [f"{labels.KIT}=1"]}, prefix=BUILD_CONTAINER_PREFIX)
    for name in sweep.report.containers:
        log(f"removed the leftover build container {name}")
    for img in client.images.list(filters={"label": f"{labels.KIT}=1"}):
        for t in img.tags:
            if t.startswith(TMP_REPO_PREFIX):
                log(f"removing the leftover temporary tag {t}")
                build_mod.discard(client, t)


def _check_disk(client) -> None:
    paths = [debian.CACHE_DIR if debian.CACHE_DIR.exists() else debian.CACHE_DIR.parent]
    try:
        root = client.info().get("DockerRootDir")
        if root and os.path.isdir(root):
            paths.append(root)
    except docker.errors.APIError:
        pass
    for p in paths:
        try:
            free = shutil.disk_usage(p).free
        except OSError:
            continue
        if free < NEED_BYTES:
            raise ImageKitError(
                f"not enough disk space: {free / 1024**3:.1f} GB free in {p}, the image kit needs about "
                f"{NEED_BYTES / 1024**3:.0f} GB; free some space (docker image prune removes unused images)"
            )


def ensure(client=None, mode: str = "auto", progress: bool = True, log=print) -> KitStatus:
    """Make every pinned course image present and, where the engine uses a loopback mirror, serve them.

    Idempotent: images already present (the kit's, or a learner's under the pinned
    name) are used as they are; a second run only verifies. ``mode``: "online" pulls
    (an error if the engine cannot), "offline" builds from Debian packages, "auto"
    pulls while the engine can and builds the rest.
    """
    if mode not in MODES:
        raise ImageKitError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    log = log or _quiet
    client = client or connect()
    t0 = time.monotonic()
    cleanup_leftovers(client, log)
    url, port = mirror_mod.configured_port(client)
    roles = list(COURSE_IMAGES.items())
    current = {r: image_status(client, r, ref) for r, ref in roles}
    missing = [r for r, _ in roles if not current[r].present]
    mirror_error: ImageKitError | None = None

    if missing:
        _check_disk(client)
        # The mirror first when its image is here: pulls then go through it.
        if port and current["registry"].present:
            try:
                mirror_mod.ensure_running(client, port, COURSE_IMAGES["registry"], log)
            except ImageKitError as e:
                mirror_error = e

    can_pull = mode != "offline"
    to_build: list[str] = []
    bar = steps(len(roles), progress, "course images")
    try:
        for role, ref in roles:
            st = current[role]
            if st.present:
                st.action = "verified" if st.kit else "used as it is"
                bar.update(1)
                continue
            if can_pull:
                try:
                    digest = pull(client, ref, progress)
                    label_pulled(client, ref, digest)
                    current[role] = image_status(client, role, ref)
                    current[role].action = "pulled"
                    log(f"{ref}: pulled ({current[role].source})")
                    bar.update(1)
                    continue
                except PullFailed as e:
                    if mode == "online":
                        raise ImageKitError(f"pulling {ref} failed: {str(e).strip()[:200]}") from None
                    log(f"{ref}: cannot pull ({str(e).strip()[:120]}); building from Debian packages instead")
                    can_pull = False
            to_build.append(role)

        def make(role: str) -> None:
            ref = COURSE_IMAGES[role]
            t = time.monotonic()
            base = COURSE_IMAGES["debian"] if RECIPES[role].kind == "layer" else None
            bar.set_postfix_str(f"building {ref}")
            tmp = build_mod.build(client, role, ref, base, log)
            build_mod.finish(client, tmp, ref)
            current[role] = image_status(client, role, ref)
            current[role].action = "built"
            log(f"{ref}: built in {time.monotonic() - t:.0f} s ({current[role].source})")
            bar.update(1)

        firsts = [r for r in to_build if RECIPES[r].kind != "layer"]
        layers = [r for r in to_build if RECIPES[r].kind == "layer"]
        if firsts:
            with ThreadPoolExecutor(max_workers=2) as ex:
                for f in [ex.submit(make, r) for r in firsts]:
                    f.result()
        if layers:
            # big ones first so the 2 workers finish together
            order = sorted(layers, key=lambda r: r != "builder")
            with ThreadPoolExecutor(max_workers=2) as ex:
                futs = [ex.submit(make, r) for r in order]
                errs = []
                for f in futs:
                    try:
                        f.result()
                    except ImageKitError as e:
                        errs.append(e)
                if errs:
                    raise errs[0]
    except docker.errors.APIError as e:
        raise ImageKitError(f"the engine refused: {mirror_mod._expl(e)}") from None
    finally:
        bar.close()

    result = KitStatus(current[r] for r, _ in roles)
    if port:
        if mirror_error is None:
            try:
                mirror_mod.ensure_running(client, port, COURSE_IMAGES["registry"], log)
                result.mirror = mirror_mod.check(client, [s.ref for s in result])
                todo = list(result.mirror.missing)
                if todo:
                    with ThreadPoolExecutor(max_workers=3) as ex:
                        for f in [ex.submit(mirror_mod.push, client, port, ref, progress) for ref in todo]:
                            f.result()
                    log(f"mirror: seeded {', '.join(todo)}")
            except ImageKitError as e:
                mirror_error = e
    result.mirror = mirror_mod.check(client, [s.ref for s in result])
    if mirror_error is None and result.mirror.configured and not result.mirror.missing:
        _record_repo_digests(client, [s.ref for s in result], log)
    if mirror_error is None and result.mirror.configured and result.mirror.missing:
        mirror_error = ImageKitError(f"the mirror does not serve {', '.join(result.mirror.missing)} after seeding")
    log(f"image kit ready in {time.monotonic() - t0:.1f} s" if mirror_error is None
        else "images ready; the mirror is not")
    if mirror_error is not None:
        raise mirror_error
    return result


def _record_repo_digests(client, refs: list[str], log) -> None:
    """Pull each image once through the mirror, so it has a repository digest like a pulled image.

    A built image has no ``RepoDigests`` until it comes from a registry; lessons use
    ``busybox@sha256:...`` (FROM by digest, pull by digest) as a learner online would.
    The pull is "up to date": the image (its ID) stays the same, only the digest is recorded.
    """
    for ref in refs:
        name, tag = split_ref(ref)
        try:
            if any(d.startswith(name + "@") for d in client.images.get(ref).attrs.get("RepoDigests") or []):
                continue
            client.images.pull(name, tag=tag)
        except docker.errors.APIError as e:
            log(f"mirror: could not record the digest of {ref} ({mirror_mod._expl(e)})")


def remove(client=None, log=print) -> None:
    """Remove the kit's images (only kit-labelled, only the course names), the mirror and its volume.

    A learner's images are never touched: an unlabelled image under a course name
    stays, and an image the learner tagged from a kit image keeps that other tag.
    """
    log = log or _quiet
    client = client or connect()
    c = mirror_mod.container(client)
    if c is not None and (c.labels or {}).get(labels.KIT) == "1":
        c.remove(force=True)
        log(f"removed the mirror container {MIRROR_NAME}")
    try:
        v = client.volumes.get(MIRROR_VOLUME)
        if (v.attrs.get("Labels") or {}).get(labels.KIT) == "1":
            v.remove(force=True)
            log(f"removed the volume {MIRROR_VOLUME}")
    except docker.errors.NotFound:
        pass
    cleanup_leftovers(client, log)
    for role, ref in reversed(list(COURSE_IMAGES.items())):
        st = image_status(client, role, ref)
        if st.present and st.kit:
            try:
                client.images.remove(ref)
                log(f"removed {ref}")
            except docker.errors.APIError as e:
                log(f"{ref}: untagged only ({mirror_mod._expl(e)})")
        elif st.present:
            log(f"{ref}: not made by the kit, left as it is")


__all__ = ["ensure", "remove", "status", "cleanup_leftovers", "MODES"]
