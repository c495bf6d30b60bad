"""The run namespace: labels and name prefixes on everything a chapter creates.

Every container, volume, network and image a chapter creates carries three labels
(:mod:`dockercourse.labels`): the chapter, the namespace (its name prefix) and the
run id. :class:`LabellingAPIClient` adds them by default, so notebook cells stay
plain docker-py (``client.containers.run(...)``). Names are prefixed per chapter
(``dc02-web``) by :meth:`Namespace.name`, so the learner's own ``web`` container
can never collide with the course's.

:func:`clean` removes **only** labelled resources, by namespace, chapter or all.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field

import docker
import docker.errors

from . import labels as L

#: Environment variable a grader sets so each submission gets its own namespace.
NS_ENV = "DOCKERCOURSE_NS"
#: Environment variable a grader sets so the kernel's run id is known to it.
RUN_ENV = "DOCKERCOURSE_RUN"


def chapter_number(chapter: str) -> str:
    """``"02_core_concepts"`` or ``"02"`` or ``2`` -> ``"02"``."""
    m = re.match(r"^\s*(\d{1,2})", str(chapter))
    if not m:
        raise ValueError(f"not a chapter: {chapter!r} (expected e.g. '02' or '02_core_concepts')")
    return f"{int(m.group(1)):02d}"


@dataclass(frozen=True)
class Namespace:
    """Where one run of one chapter lives on the engine.

    Args:
        chapter: chapter number, ``"02"``.
        tag: extra namespace tag (a grading worker's ``"g3"``); empty for learners.
        run: id of this run (random when not given).
    """

    chapter: str
    tag: str = ""
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def for_chapter(cls, chapter: str, tag: str | None = None, run: str | None = None) -> "Namespace":
        tag = os.environ.get(NS_ENV, "") if tag is None else tag
        if tag and not re.fullmatch(r"[a-z0-9]{1,12}", tag):
            raise ValueError(f"namespace tag must be 1-12 lowercase letters/digits, not {tag!r}")
        run = run or os.environ.get(RUN_ENV) or uuid.uuid4().hex[:12]
        return cls(chapter=chapter_number(chapter), tag=tag, run=run)

    @property
    def prefix(self) -> str:
        """Name prefix of this namespace: ``dc02-`` (or ``dc02g3-`` when grading)."""
        return f"dc{self.chapter}{self.tag}-"

    def name(self, short: str) -> str:
        """The engine name of a course resource: ``name("web") == "dc02-web"``."""
        if short.startswith(self.prefix):
            return short
        return self.prefix + short

    @property
    def labels(self) -> dict[str, str]:
        """Labels every resource of this run carries."""
        return {L.CHAPTER: self.chapter, L.NAMESPACE: self.prefix, L.RUN: self.run}

    def filters(self) -> dict:
        """docker-py ``filters=`` selecting this namespace's resources."""
        return {"label": [f"{L.NAMESPACE}={self.prefix}"]}


def _merge_labels(given, extra: dict[str, str]):
    """Merge our labels under the caller's (the caller's win on a clash)."""
    if given is None:
        return dict(extra)
    if isinstance(given, (list, tuple)):  # docker-py accepts a list of keys
        merged = dict(extra)
        merged.update({k: "" for k in given})
        return merged
    merged = dict(extra)
    merged.update(given)
    return merged


class LabellingAPIClient(docker.APIClient):
    """A docker-py low-level client that labels what it creates.

    Containers, volumes, networks, built images, committed and imported images
    get the namespace's labels unless the call gives its own for the same key.
    Everything else behaves exactly like ``docker.APIClient``.
    """

    def __init__(self, *args, namespace: Namespace, **kwargs):
        super().__init__(*args, **kwargs)
        self.namespace = namespace

    def create_container(self, image, *args, **kwargs):
        kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().create_container(image, *args, **kwargs)

    def create_volume(self, name=None, driver=None, driver_opts=None, labels=None):
        return super().create_volume(name, driver, driver_opts, _merge_labels(labels, self.namespace.labels))

    def create_network(self, name, *args, **kwargs):
        kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().create_network(name, *args, **kwargs)

    def build(self, *args, **kwargs):
        from .buildcontext import labelled_build_kwargs

        # every image of the build, the temporary one of each step included (see buildcontext);
        # `labels=` (one more step per label, final image only) only where that was not possible
        args, kwargs, labelled = labelled_build_kwargs(args, kwargs, self.namespace.labels)
        if not labelled or kwargs.get("labels"):
            kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().build(*args, **kwargs)

    def commit(self, container, repository=None, tag=None, message=None, author=None, pause=True,
               changes=None, conf=None):
        # LABEL instructions in `changes` add to the image's labels (like `docker commit -c`).
        extra = [f'LABEL {k}="{v}"' for k, v in self.namespace.labels.items()]
        if changes is None:
            changes = extra
        elif isinstance(changes, str):
            changes = [changes, *extra]
        else:
            changes = [*changes, *extra]
        return super().commit(container, repository, tag, message, author, pause, changes, conf)

    def _label_changes(self, changes):
        extra = [f'LABEL {k}="{v}"' for k, v in self.namespace.labels.items()]
        return [*(changes or []), *extra]

    def import_image(self, src=None, repository=None, tag=None, image=None, changes=None,
                     stream_src=False):
        return super().import_image(src, repository, tag, image, self._label_changes(changes), stream_src)

    def import_image_from_data(self, data, repository=None, tag=None, changes=None):
        return super().import_image_from_data(data, repository, tag, self._label_changes(changes))

    def import_image_from_file(self, filename, repository=None, tag=None, changes=None):
        return super().import_image_from_file(filename, repository, tag, self._label_changes(changes))


# --------------------------------------------------------------------------- cleanup


def _cname(c) -> str:
    """A container's name, also from a sparse listing (no inspect, so no race with removal)."""
    names = c.attrs.get("Names") or [c.attrs.get("Name") or c.id[:12]]
    return names[0].lstrip("/")


@dataclass
class CleanReport:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # image names (tags) removed
    untagged: list[str] = field(default_factory=list)  # short IDs of nameless images removed (build steps)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (len(self.containers) + len(self.volumes) + len(self.networks) + len(self.images)
                + len(self.untagged))

    def summary(self) -> str:
        """``removed 4 containers, 2 images``: nameless images are removed too but not counted here, since
        how many a build leaves depends on the builder and the image store (see ``untagged``)."""
        if not self.total and not self.errors:
            return "nothing to clean"
        parts = [f"{len(v)} {k}" for k, v in (("containers", self.containers), ("volumes", self.volumes),
                                             ("networks", self.networks), ("images", self.images)) if v]
        text = ("removed " + ", ".join(parts) if parts
                else "removed only nameless images of builds" if self.untagged else "removed nothing")
        if self.errors:
            text += f"; {len(self.errors)} could not be removed: " + "; ".join(self.errors[:3])
        return text


def _selector(namespace: Namespace | None, chapter: str | None, run: str | None) -> list[str]:
    """Label filters; at least the course's chapter label so unlabelled things never match."""
    sel = [L.CHAPTER]
    if chapter is not None:
        sel = [f"{L.CHAPTER}={chapter_number(chapter)}"]
    if namespace is not None:
        sel = [f"{L.CHAPTER}={namespace.chapter}", f"{L.NAMESPACE}={namespace.prefix}"]
    if run is not None:
        sel.append(f"{L.RUN}={run}")
    return sel


def clean(client: docker.DockerClient, namespace: Namespace | None = None, chapter: str | None = None,
          run: str | None = None) -> CleanReport:
    """Remove course resources, selected by label only.

    Args:
        client: any docker client on the engine.
        namespace: remove this namespace's resources (the usual case in a notebook).
        chapter: remove every namespace of this chapter (``"02"``).
        run: narrow to one run id.
        With none of them, every course resource of every chapter is removed
        (never the image kit, which carries no chapter label).

    Returns:
        What was removed, and what could not be.
    """
    sel = _selector(namespace, chapter, run)
    rep = CleanReport()
    flt = {"label": sel}
    for c in client.containers.list(all=True, filters=flt, sparse=True):
        try:
            c.remove(force=True, v=True)
            rep.containers.append(_cname(c))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            rep.errors.append(f"container {_cname(c)}: {e.explanation or e}")
    for n in client.networks.list(filters=flt):
        try:
            n.reload()
            for cid in list((n.attrs.get("Containers") or {})):
                try:
                    n.disconnect(cid, force=True)
                except docker.errors.APIError:
                    pass
            n.remove()
            rep.networks.append(n.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            rep.errors.append(f"network {n.name}: {e.explanation or e}")
    for v in client.volumes.list(filters=flt):
        try:
            v.remove(force=True)
            rep.volumes.append(v.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            rep.errors.append(f"volume {v.name}: {e.explanation or e}")
    _clean_images(client, flt, namespace, chapter, rep)
    return rep


def _prefixes(namespace, chapter) -> list[str]:
    if namespace is not None:
        return [namespace.prefix]
    if chapter is not None:
        return [f"dc{chapter_number(chapter)}"]
    return ["dc"]


def _is_course_ref(ref: str, prefixes: list[str]) -> bool:
    """``dc02-web:v1`` or ``127.0.0.1:5000/dc02-web:v1`` with one of the prefixes."""
    repo = ref.rsplit(":", 1)[0] if ref.rfind(":") > ref.rfind("/") else ref
    last = repo.rsplit("/", 1)[-1]
    return bool(re.match(r"^dc\d\d", last)) and any(last.startswith(p) for p in prefixes)


def _clean_images(client, flt, namespace, chapter, rep: CleanReport) -> None:
    """Remove the chapter's image tags, and its untagged images.

    Only tags named with the course prefix (``dc03-mybusybox:v1``, also behind a
    registry address) on images the chapter made (chapter label) or on the course
    images themselves are removed; removing the last tag of a chapter-built image removes the image, while
    a tag put on a kit image removes only that tag. Labels are inherited by child
    images, so a label alone is never enough: a learner's own ``myapp`` built FROM a
    course image keeps its tags and its image.
    """
    from .images import COURSE_IMAGES

    prefixes = _prefixes(namespace, chapter)
    kit_ids = set()
    for ref in COURSE_IMAGES.values():
        try:
            kit_ids.add(client.images.get(ref).id)
        except docker.errors.ImageNotFound:
            pass
    # Raw listings (no inspect of each image), so an image removed meanwhile by someone
    # else cannot make the cleanup fail.
    for img in client.api.images():
        lab = img.get("Labels") or {}
        # A second name of a course image itself (dc02-mybox:v1 -> busybox), or an image
        # the chapter made; never an image merely built FROM a course image by the learner.
        if not (L.CHAPTER in lab or img["Id"] in kit_ids):
            continue
        for ref in img.get("RepoTags") or []:
            if ref == "<none>:<none>" or not _is_course_ref(ref, prefixes):
                continue
            try:
                client.images.remove(ref, noprune=False)
                rep.images.append(ref)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                rep.errors.append(f"image {ref}: {e.explanation or e}")
    # Untagged images of this selection (a commit without a name, the images of build steps). One
    # may be the parent of another, so remove in passes until a pass removes nothing.
    for _ in range(10):
        removed = 0
        for img in client.api.images(filters={"dangling": True, "label": flt["label"]}):
            try:
                client.images.remove(img["Id"])
                rep.untagged.append(img["Id"][7:19])
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:  # still needed by another image: the next pass
                last_error = f"image {img['Id'][7:19]}: {e.explanation or e}"
        if not removed:
            break


def leftovers(client: docker.DockerClient, namespace: Namespace | None = None,
              chapter: str | None = None) -> dict[str, list[str]]:
    """List course resources still on the engine (what :func:`clean` would remove)."""
    flt = {"label": _selector(namespace, chapter, None)}
    return {
        "containers": [_cname(c) for c in client.containers.list(all=True, filters=flt, sparse=True)],
        "volumes": [v.name for v in client.volumes.list(filters=flt)],
        "networks": [n.name for n in client.networks.list(filters=flt)],
        "images": [t for i in client.api.images(filters=flt) for t in (i.get("RepoTags") or [])
                   if _is_course_ref(t, _prefixes(namespace, chapter))]
        + [i["Id"][7:19] for i in client.api.images(filters={"dangling": True, **flt})],
    }


def unlabelled_lookalikes(client: docker.DockerClient, namespace: Namespace) -> list[str]:
    """Resources named with the chapter's prefix but without course labels.

    These are usually made by the learner from a terminal (exercises allow that).
    The course never removes them; the end-of-chapter cleanup lists them instead.
    """
    out = []
    for c in client.containers.list(all=True, filters={"name": namespace.prefix}, sparse=True):
        if _cname(c).startswith(namespace.prefix) and L.CHAPTER not in (c.attrs.get("Labels") or {}):
            out.append(f"container {_cname(c)}")
    for v in client.volumes.list():
        if v.name.startswith(namespace.prefix) and L.CHAPTER not in ((v.attrs.get("Labels") or {})):
            out.append(f"volume {v.name}")
    for n in client.networks.list():
        if n.name.startswith(namespace.prefix) and L.CHAPTER not in ((n.attrs.get("Labels") or {})):
            out.append(f"network {n.name}")
    return out
