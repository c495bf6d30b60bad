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
    cache = debian.kit_cache()
    paths = [cache if cache.exists() else cache.parent]
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
    return _Run(client or connect(), mode, progress, log or _quiet).run()


class _Run:
    """One run of :func:`ensure`: pull what can be pulled, build the rest, then serve the mirror."""

    def __init__(self, client, mode: str, progress: bool, log):
        self.client, self.mode, self.progress, self.log = client, mode, progress, log
        self.roles = list(COURSE_IMAGES.items())
        self.current = {}
        self.mirror_error: ImageKitError | None = None
        self.port = None
        self.bar = None

    def run(self) -> KitStatus:
        t0 = time.monotonic()
        cleanup_leftovers(self.client, self.log)
        _, self.port = mirror_mod.configured_port(self.client)
        self.current = {r: image_status(self.client, r, ref) for r, ref in self.roles}
        if any(not st.present for st in self.current.values()):
            _check_disk(self.client)
            # the mirror first when its image is here: pulls then go through it
            if self.port and self.current["registry"].present:
                self._mirror_up()
        self.bar = steps(len(self.roles), self.progress, "course images")
        try:
            self._build(self._pull_or_list())
        except docker.errors.APIError as e:
            raise ImageKitError(f"the engine refused: {mirror_mod._expl(e)}") from None
        finally:
            self.bar.close()
        result = KitStatus(self.current[r] for r, _ in self.roles)
        self._serve(result)
        self.log(
            f"image kit ready in {time.monotonic() - t0:.1f} s"
            if self.mirror_error is None
            else "images ready; the mirror is not"
        )
        if self.mirror_error is not None:
            raise self.mirror_error
        return result

    def _mirror_up(self) -> None:
        try:
            mirror_mod.ensure_running(self.client, self.port, COURSE_IMAGES["registry"], self.log)
        except ImageKitError as e:
            self.mirror_error = e

    def _pull_or_list(self) -> list[str]:
        """Verify what is here, pull what can be pulled; the roles left to build."""
        can_pull = self.mode != "offline"
        to_build = []
        for role, ref in self.roles:
            st = self.current[role]
            if st.present:
                st.action = "verified" if st.kit else "used as it is"
                self.bar.update(1)
                continue
            if can_pull:
                try:
                    label_pulled(self.client, ref, pull(self.client, ref, self.progress))
                    self._done(role, "pulled")
                    self.log(f"{ref}: pulled ({self.current[role].source})")
                    continue
                except PullFailed as e:
                    if self.mode == "online":
                        raise ImageKitError(f"pulling {ref} failed: {str(e).strip()[:200]}") from None
                    self.log(
                        f"{ref}: cannot pull ({str(e).strip()[:120]}); building from Debian packages instead"
                    )
                    can_pull = False
            to_build.append(role)
        return to_build

    def _done(self, role: str, action: str) -> None:
        self.current[role] = image_status(self.client, role, COURSE_IMAGES[role])
        self.current[role].action = action
        self.bar.update(1)

    def _make(self, role: str) -> None:
        ref = COURSE_IMAGES[role]
        t = time.monotonic()
        base = COURSE_IMAGES["debian"] if RECIPES[role].kind == "layer" else None
        self.bar.set_postfix_str(f"building {ref}")
        build_mod.finish(self.client, build_mod.build(self.client, role, ref, base, self.log), ref)
        self._done(role, "built")
        self.log(f"{ref}: built in {time.monotonic() - t:.0f} s ({self.current[role].source})")

    def _build(self, to_build: list[str]) -> None:
        """busybox, then Debian (bootstrapped in a busybox container), then the layers on Debian (big
        ones first: two workers finish together)."""
        firsts = [[r] for r in ("busybox", "debian") if r in to_build]
        layers = sorted((r for r in to_build if RECIPES[r].kind == "layer"), key=lambda r: r != "builder")
        for batch in (*firsts, layers):
            if not batch:
                continue
            with ThreadPoolExecutor(max_workers=2) as ex:
                futs = [ex.submit(self._make, r) for r in batch]
                errs = []
                for f in futs:
                    try:
                        f.result()
                    except ImageKitError as e:
                        errs.append(e)
                if errs:
                    raise errs[0]

    def _serve(self, result: KitStatus) -> None:
        """Start and seed the mirror, then check that it serves every image as the engine has it."""
        refs = [s.ref for s in result]
        if self.port and self.mirror_error is None:
            try:
                mirror_mod.ensure_running(self.client, self.port, COURSE_IMAGES["registry"], self.log)
                todo = list(mirror_mod.check(self.client, refs).missing)
                if todo:
                    with ThreadPoolExecutor(max_workers=3) as ex:
                        for f in [
                            ex.submit(mirror_mod.push, self.client, self.port, ref, self.progress)
                            for ref in todo
                        ]:
                            f.result()
                    self.log(f"mirror: seeded {', '.join(todo)}")
            except ImageKitError as e:
                self.mirror_error = e
        result.mirror = mirror_mod.check(self.client, refs)
        if self.mirror_error is None and result.mirror.configured:
            if result.mirror.missing:
                self.mirror_error = ImageKitError(
                    f"the mirror does not serve {', '.join(result.mirror.missing)} after seeding"
                )
            else:
                _record_repo_digests(self.client, refs, self.log)


def build_refs(client, refs, log=print) -> list[str]:
    """Build the course images ``refs`` offline in the engine behind ``client`` (with the images they
    are built from, when missing): the VM engine's disk when no mirror or host engine has them. No
    mirror is started. The references now present, of those asked for."""
    by_ref = {ref: role for role, ref in COURSE_IMAGES.items()}
    unknown = [r for r in refs if r not in by_ref]
    if unknown:
        raise ImageKitError(f"not a course image, the kit cannot build it: {', '.join(unknown)}")
    run = _Run(client, "offline", False, log)
    run.current = {r: image_status(client, r, ref) for r, ref in run.roles}
    roles = {by_ref[r] for r in refs}
    if any(RECIPES[r].kind == "layer" for r in roles):
        roles.add("debian")
    if "debian" in roles:
        roles.add("busybox")  # the debian image is bootstrapped in a busybox container
    todo = [r for r, _ in run.roles if r in roles and not run.current[r].present]
    run.bar = steps(len(todo), False, "course images")
    try:
        run._build(todo)
    finally:
        run.bar.close()
    return [r for r in refs if image_status(client, by_ref[r], r).present]


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
