"""The one place that removes engine resources: containers, networks, volumes and images.

Everything the course removes goes through :class:`Sweep`, which lists with the low-level
API (no inspect of each object, so someone else removing theirs meanwhile cannot make the
sweep fail), removes, and records what it removed and what it could not:

* :func:`clean` — course resources selected by **label** (a chapter, a namespace, a run);
  what a learner or the notebooks use.
* :func:`remove_prefixed` — resources whose **name** starts with a namespace's prefix
  (``dc02-``, a grading run's ``dc02g1a2b-``): what a learner made from a terminal, or a
  submission through its own client, without the course's labels. The chapter's names are
  the chapter's: yesterday's ``dc02-hello`` must neither pass today's check nor block
  today's answer. :func:`clean_chapter` does both.
* the test suite's guard, the image kit and the benchmarks remove their own helpers with
  the same primitives (``Sweep(client).containers(filters={"label": ...})``).

Nothing without both the label and the prefix is ever selected: the learner's own ``web`` container,
``dbdata`` volume or ``ubuntu`` image are never touched.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors

from dockercourse.core import buildcache
from dockercourse.core import labels as L
from dockercourse.core.namespace import Namespace, chapter_number
from dockercourse.i18n.messages import join, tr  # the summary in the notebook's language

log = logging.getLogger(__name__)

#: Removals sent to the engine at once (docker-py's connection pool holds 10).
_WORKERS = 8
_GONE = object()


@dataclass
class CleanReport:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # image names (tags) removed
    untagged: list[str] = field(default_factory=list)  # short IDs of nameless images removed (build steps)
    cache_mounts: list[str] = field(default_factory=list)  # BuildKit cache mounts (``id=dc08-…``) removed
    build_records: int = 0  # other build cache records the course's builds made (see core.buildcache)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            len(self.containers)
            + len(self.volumes)
            + len(self.networks)
            + len(self.images)
            + len(self.untagged)
        )

    def summary(self) -> str:
        """``removed 4 containers, 2 images``: nameless images are removed too but not counted here, since
        how many a build leaves depends on the builder and the image store (see ``untagged``)."""
        if not self.total and not self.errors:
            return tr("nothing to clean")
        c, v, n, i = (len(x) for x in (self.containers, self.volumes, self.networks, self.images))
        parts = [
            p
            for k, p in (
                (c, tr(f"{c} containers")),
                (v, tr(f"{v} volumes")),
                (n, tr(f"{n} networks")),
                (i, tr(f"{i} images")),
            )
            if k
        ]
        text = (
            tr(f"removed {join(parts)}")
            if parts
            else tr("removed only nameless images of builds")
            if self.untagged
            else tr("removed nothing")
        )
        if self.errors:
            text += tr(f"; {len(self.errors)} could not be removed: {'; '.join(self.errors[:3])}")
        return text


def _names(row: dict) -> list[str]:
    return [n.lstrip("/") for n in row.get("Names") or []] or [row.get("Id", "")[:12]]


class Sweep:
    """Removes what a selection lists, into one :class:`CleanReport`.

    ``filters`` are the engine's list filters (``{"label": [...]}``); ``prefix`` keeps only
    names starting with it (and lists by that name first). At least one must be given.
    """

    def __init__(self, client: docker.DockerClient, report: CleanReport | None = None):
        self.api = client.api
        self.report = report or CleanReport()

    def _attempt(self, kind: str, name: str, fn, *args, **kwargs) -> bool:
        return self._record(kind, name, self._call(fn, *args, **kwargs))

    @staticmethod
    def _call(fn, *args, **kwargs):
        """None when removed, ``_GONE`` when it was gone already, else the engine's error."""
        try:
            fn(*args, **kwargs)
        except docker.errors.NotFound:  # gone meanwhile: nothing left to remove
            return _GONE
        except docker.errors.APIError as e:
            return e
        return None

    def _record(self, kind: str, name: str, outcome) -> bool:
        if outcome is _GONE:
            return False
        if outcome is not None:
            self.report.errors.append(f"{kind} {name}: {outcome.explanation or outcome}")
            log.info("could not remove %s %s: %s", kind, name, outcome)
            return False
        getattr(self.report, kind + "s").append(name)
        return True

    def _attempt_all(self, kind: str, jobs: list[tuple], *, gone_is_removed: bool = False) -> None:
        """``(name, fn, *args)`` jobs, several at once: on the containerd image store each removal
        waits for the engine's garbage collection (about 0.2 s here), which concurrent removals share;
        a chapter's 36 images went from 6.5 s to 3.4 s. The report keeps the jobs' order, and what
        failed among others (two tags of one image at once) is tried once more on its own.

        ``gone_is_removed``: a name listed a moment ago and gone when its turn came was taken with
        another one of the same sweep (the classic store prunes an image with its last tags), so it
        counts as removed, as it did one after the other: the chapter's summary line stays the same."""
        if len(jobs) < 2:
            outcomes = [self._call(fn, *args) for _, fn, *args in jobs]
        else:
            with ThreadPoolExecutor(max_workers=min(_WORKERS, len(jobs))) as pool:
                outcomes = list(pool.map(lambda job: self._call(job[1], *job[2:]), jobs))
        for (name, fn, *args), outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, docker.errors.APIError):
                outcome = self._call(fn, *args)
            if gone_is_removed and outcome is _GONE:
                outcome = None
            self._record(kind, name, outcome)

    @staticmethod
    def _check(filters, prefix):
        if not filters and not prefix:
            raise ValueError("a sweep needs label filters or a name prefix: it never selects everything")

    def containers(self, *, filters: dict | None = None, prefix: str | None = None) -> None:
        self._check(filters, prefix)
        flt = dict(filters or {})
        if prefix:
            flt["name"] = [prefix]
        jobs, anonymous = [], []
        for row in self.api.containers(all=True, filters=flt):
            names = _names(row)
            if prefix and not any(n.startswith(prefix) for n in names):
                continue
            jobs.append((names[0], self._remove_container, row["Id"]))
            anonymous += [v for v in map(_volume_name, row.get("Mounts") or []) if _ANONYMOUS.fullmatch(v)]
        self._attempt_all("container", jobs)
        # `rm -v` keeps an anonymous volume another container still uses (`--volumes-from`); removed at
        # once, two such containers each saw the other: what rm -v one after the other would have removed
        for vol in dict.fromkeys(anonymous):
            try:
                self.api.remove_volume(vol)  # never forced: one a container still uses stays
            except docker.errors.APIError as e:
                log.debug("anonymous volume %s stays: %s", vol[:12], e)

    def _remove_container(self, cid: str) -> None:
        self.api.remove_container(cid, v=True, force=True)

    def networks(self, *, filters: dict | None = None, prefix: str | None = None) -> None:
        self._check(filters, prefix)
        rows = self.api.networks(names=[prefix] if prefix else None, filters=filters or None)
        for row in rows:
            if prefix and not row.get("Name", "").startswith(prefix):
                continue
            self.network(row)

    def network(self, row: dict) -> None:
        """Remove one network (a row of the engine's list), disconnecting its endpoints first."""
        name = row.get("Name", "")
        try:  # a network with endpoints cannot go: disconnect them first
            for cid in list(self.api.inspect_network(row["Id"]).get("Containers") or {}):
                self.api.disconnect_container_from_network(cid, row["Id"], force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            log.info("could not disconnect the endpoints of network %s: %s", name, e)
        self._attempt("network", name, self.api.remove_network, row["Id"])

    def volumes(self, *, filters: dict | None = None, prefix: str | None = None) -> None:
        self._check(filters, prefix)
        flt = dict(filters or {})
        if prefix:
            flt["name"] = [prefix]
        jobs = []
        for row in (self.api.volumes(filters=flt) or {}).get("Volumes") or []:
            name = row.get("Name", "")
            if prefix and not name.startswith(prefix):
                continue
            jobs.append((name, self._remove_volume, name))
        self._attempt_all("volume", jobs)

    def _remove_volume(self, name: str) -> None:
        self.api.remove_volume(name, force=True)

    def image_refs(self, refs) -> None:
        """Remove these image names (a name shared with other images only untags)."""
        jobs = [(ref, self.api.remove_image, ref) for ref in dict.fromkeys(refs)]
        self._attempt_all("image", jobs, gone_is_removed=True)

    def dangling(self, *, filters: dict) -> None:
        """Nameless images of the selection (a commit without a name, a build's steps), in passes:
        one may be the parent of another."""
        for _ in range(10):
            removed = 0
            for row in self.api.images(filters={**filters, "dangling": True}):
                short = row["Id"][7:19]
                try:
                    self.api.remove_image(row["Id"])
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as e:  # still needed by another image: the next pass
                    log.debug("image %s not removed yet: %s", short, e.explanation or e)
                    continue
                self.report.untagged.append(short)
                removed += 1
            if not removed:
                return

    def build_records(self, prefix: str) -> None:
        """The build cache the namespace's builds made: BuildKit cache mounts whose id carries the prefix
        (``RUN --mount=type=cache,id=dc08-…``), and the records the course's builds created (see
        :mod:`dockercourse.core.buildcache`). Neither carries a label; one prune removes them all."""
        clock = buildcache.engine_clock(self.api)
        spans = buildcache.spans(clock[0], prefix) if clock else []
        try:
            rows = buildcache.build_cache(self.api)
        except (docker.errors.APIError, ValueError) as e:
            log.info("could not list the build cache: %s", e)
            return
        mounts, records = {}, []
        for row in rows:
            m = buildcache.MOUNT_ID.search(row.get("Description") or "")
            if row.get("Type") == "exec.cachemount" and m and m.group(1).startswith(prefix):
                mounts[row["ID"]] = m.group(1)
            elif spans and buildcache.created_within(row, spans):
                records.append(row["ID"])
        ids = [*mounts, *records]
        for i in range(0, len(ids), 200):  # the ids as one pattern: the engine reads the id filter as one
            chunk = ids[i : i + 200]
            # all=true: without it BuildKit keeps the records it marks "Shared" (their layers are held by
            # the engine's image store too), such as chapter 08's exercise 5's compile step: 2 records
            # left on each run. The id filter still limits the prune to the records selected above.
            pattern = "^(" + "|".join(map(re.escape, chunk)) + ")$"
            params = {"filters": json.dumps({"id": [pattern]}), "all": "true"}
            try:
                res = self.api._result(self.api._post(self.api._url("/build/prune"), params=params), True)
            except docker.errors.APIError as e:
                self.report.errors.append(f"build cache: {e.explanation or e}")
                return
            gone = set((res or {}).get("CachesDeleted") or [])
            self.report.cache_mounts += [mounts[k] for k in chunk if k in mounts and k in gone]
            self.report.build_records += sum(1 for k in chunk if k not in mounts and k in gone)
        if clock and spans:
            buildcache.forget(clock[0], prefix)


_ANONYMOUS = re.compile(r"[0-9a-f]{64}")  # the engine names an anonymous volume so


def _volume_name(mount: dict) -> str:
    """A container's volume mount's name; Engine 28 leaves ``Name`` out of an anonymous one, whose
    ``Source`` is ``…/volumes/<name>/_data``."""
    if mount.get("Type") != "volume":
        return ""
    m = re.search(r"/volumes/([^/]+)/_data$", mount.get("Source") or "")
    return mount.get("Name") or (m.group(1) if m else "")


# --------------------------------------------------------------------------- selections


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


def _prefixes(namespace, chapter) -> list[str]:
    if namespace is not None:
        return [namespace.prefix]
    if chapter is not None:
        return [f"dc{chapter_number(chapter)}"]
    return ["dc"]


def is_course_ref(ref: str, prefixes: list[str]) -> bool:
    """``dc02-web:v1`` or ``127.0.0.1:5000/dc02-web:v1`` with one of the prefixes."""
    repo = ref.rsplit(":", 1)[0] if ref.rfind(":") > ref.rfind("/") else ref
    last = repo.rsplit("/", 1)[-1]
    return bool(re.match(r"^dc\d\d", last)) and any(last.startswith(p) for p in prefixes)


def _course_image_refs(client, flt: dict, prefixes: list[str]) -> list[str]:
    """Tags named with the course prefix on images the chapter made or on the course images themselves.

    Labels are inherited by child images, so a label alone is never enough: a learner's own
    ``myapp`` built FROM a course image keeps its tags and its image. A tag the chapter put on
    a kit image (``dc02-mybox:v1`` -> busybox) removes only that tag.
    """
    from dockercourse.core.images import COURSE_IMAGES

    kit_ids = set()
    for ref in COURSE_IMAGES.values():
        try:
            kit_ids.add(client.api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            pass
    refs = []
    for img in client.api.images():
        lab = img.get("Labels") or {}
        if not (L.CHAPTER in lab or img["Id"] in kit_ids):
            continue
        refs += [r for r in img.get("RepoTags") or [] if r != "<none>:<none>" and is_course_ref(r, prefixes)]
    return refs


def clean(
    client: docker.DockerClient,
    namespace: Namespace | None = None,
    chapter: str | None = None,
    run: str | None = None,
) -> CleanReport:
    """Remove course resources, selected by label only.

    Args:
        client: any docker client on the engine.
        namespace: remove this namespace's resources (the usual case in a notebook).
        chapter: remove every namespace of this chapter (``"02"``).
        run: narrow to one run id.
        With none of them, every course resource of every chapter is removed
        (never the image kit, which carries no chapter label).
    """
    flt = {"label": _selector(namespace, chapter, run)}
    sweep = Sweep(client)
    sweep.containers(filters=flt)
    sweep.networks(filters=flt)
    sweep.volumes(filters=flt)
    sweep.image_refs(_course_image_refs(client, flt, _prefixes(namespace, chapter)))
    sweep.dangling(filters=flt)
    return sweep.report


def remove_prefixed(client: docker.DockerClient, prefix: str) -> CleanReport:
    """Remove containers, networks, volumes and image tags whose name starts with ``prefix``.

    ``prefix`` must be a namespace's (``dc02-``, ``dc02g1a2b-``): names in it are the course's by
    convention, labelled or not (see the module's docstring).
    """
    if not re.fullmatch(r"dc\d\d[a-z0-9]*-", prefix):
        raise ValueError(f"not a namespace's prefix: {prefix!r}")
    sweep = Sweep(client)
    sweep.containers(prefix=prefix)
    sweep.networks(prefix=prefix)
    sweep.volumes(prefix=prefix)
    refs = [
        r
        for img in client.api.images()
        for r in img.get("RepoTags") or []
        if r.rsplit(":", 1)[0].rsplit("/", 1)[-1].startswith(prefix)
    ]
    sweep.image_refs(refs)
    sweep.build_records(prefix)
    return sweep.report


def remove_names(client: docker.DockerClient, names: list[str], namespace: Namespace) -> CleanReport:
    """Remove the containers, networks and volumes called exactly one of ``names``, and the
    image tags whose repository (its last path part, so ``127.0.0.1:5000/dc05-mybox`` too) is
    one of them: what one exercise made (``course.reset``). Every name must carry the
    namespace's prefix, so nothing without it is ever touched; with it, a resource made from a
    terminal (no course label) is the chapter's too."""
    names = list(dict.fromkeys(names))
    bad = [n for n in names if not n.startswith(namespace.prefix)]
    if bad:
        raise ValueError(f"not names of namespace {namespace.prefix}: {', '.join(bad)}")
    api, sweep = client.api, Sweep(client)
    wanted = set(names)
    for n in names:
        for row in api.containers(all=True, filters={"name": [f"^/{re.escape(n)}$"]}):
            if n in _names(row):
                sweep._attempt("container", n, api.remove_container, row["Id"], v=True, force=True)
    for row in api.networks(names=names):
        if row.get("Name") in wanted:
            sweep.network(row)
    vols = {v["Name"] for v in (api.volumes() or {}).get("Volumes") or []}
    for n in names:
        if n in vols:
            sweep._attempt("volume", n, api.remove_volume, n, force=True)
    refs = [
        r
        for img in api.images()
        for r in img.get("RepoTags") or []
        if r.rsplit(":", 1)[0].rsplit("/", 1)[-1] in wanted
    ]
    sweep.image_refs(refs)
    return sweep.report


def clean_chapter(client: docker.DockerClient, namespace: Namespace) -> CleanReport:
    """What a chapter's setup and ``course.cleanup()`` remove: the namespace's labelled resources
    (:func:`clean`) and whatever else carries its names (:func:`remove_prefixed`), in one report."""
    rep = clean(client, namespace=namespace)
    more = remove_prefixed(client, namespace.prefix)
    for f in ("containers", "volumes", "networks", "images", "untagged", "cache_mounts", "errors"):
        getattr(rep, f).extend(x for x in getattr(more, f) if x not in getattr(rep, f))
    rep.build_records += more.build_records
    return rep


def leftovers(
    client: docker.DockerClient, namespace: Namespace | None = None, chapter: str | None = None
) -> dict[str, list[str]]:
    """List course resources still on the engine (what :func:`clean` would remove)."""
    flt = {"label": _selector(namespace, chapter, None)}
    api = client.api
    return {
        "containers": [_names(c)[0] for c in api.containers(all=True, filters=flt)],
        "volumes": [v["Name"] for v in (api.volumes(filters=flt) or {}).get("Volumes") or []],
        "networks": [n["Name"] for n in api.networks(filters=flt)],
        "images": [
            t
            for i in api.images(filters=flt)
            for t in (i.get("RepoTags") or [])
            if is_course_ref(t, _prefixes(namespace, chapter))
        ]
        + [i["Id"][7:19] for i in api.images(filters={"dangling": True, **flt})],
    }


def unlabelled_lookalikes(client: docker.DockerClient, namespace: Namespace) -> list[str]:
    """Resources named with the chapter's prefix but without course labels.

    These are usually made by the learner from a terminal (exercises allow that). :func:`clean`
    (by label) leaves them; :func:`clean_chapter` removes them with the chapter's.
    """
    api, pre = client.api, namespace.prefix
    out = [
        f"container {n}"
        for c in api.containers(all=True, filters={"name": [pre]})
        for n in _names(c)[:1]
        if n.startswith(pre) and L.CHAPTER not in (c.get("Labels") or {})
    ]
    out += [
        f"volume {v['Name']}"
        for v in (api.volumes() or {}).get("Volumes") or []
        if v["Name"].startswith(pre) and L.CHAPTER not in (v.get("Labels") or {})
    ]
    out += [
        f"network {n['Name']}"
        for n in api.networks()
        if n["Name"].startswith(pre) and L.CHAPTER not in (n.get("Labels") or {})
    ]
    return out
