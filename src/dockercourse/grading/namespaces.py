"""The grader's side of the engine: its client, and removing what submissions left there.

Each submission runs in a namespace of its own (``dc<chapter>g<batch><k>-``). Removing
goes through :mod:`dockercourse.core.cleanup`, the course's one sweeper: :func:`clean` for
what carries the namespace's labels, :func:`remove_prefixed` for what a submission named
with its prefix without the labels (e.g. through its own ``docker.from_env()``).
"""

from __future__ import annotations

import logging
import re

import docker.errors

from dockercourse.core import labels as L
from dockercourse.core.cleanup import Sweep, clean, leftovers, remove_prefixed
from dockercourse.core.namespace import Namespace
from dockercourse.errors import CourseError

log = logging.getLogger(__name__)

#: What talking to the engine can raise: docker-py's errors, requests' (``OSError``s), no engine.
ENGINE_ERRORS = (docker.errors.DockerException, OSError, CourseError)

_client = None


def engine():
    """This process's client of the engine (connected on first use; a VM worker's is its VM's)."""
    global _client
    if _client is None:
        from dockercourse.core.engine import connect

        _client = connect()
    return _client


def reset_client() -> None:
    """Forget this process's client (an isolated tier's engine changes per submission)."""
    global _client
    if _client is not None:
        try:
            _client.close()
        except ENGINE_ERRORS:
            pass
    _client = None


def clean_namespace(client, ns: Namespace) -> list[str]:
    """Remove everything of one grading namespace; what could not be removed, in words."""
    problems = list(clean(client, namespace=ns).errors)
    problems += remove_prefixed(client, ns.prefix).errors
    rest = [f"{k[:-1]} {n}" for k, names in leftovers(client, namespace=ns).items() for n in names]
    if rest:
        problems.append("left on the engine: " + ", ".join(rest))
    return problems


def sweep_tag(chapter: str, tag: str) -> None:
    """Remove what an interrupted attempt in namespace ``tag`` left (best effort)."""
    try:
        problems = clean_namespace(engine(), Namespace(chapter=chapter, tag=tag, run="sweep"))
    except ENGINE_ERRORS as e:  # the batch goes on; its final sweep tries again
        log.warning("could not sweep namespace %s of chapter %s: %s", tag, chapter, e)
        return
    if problems:
        log.warning("sweeping namespace %s of chapter %s: %s", tag, chapter, "; ".join(problems))


def sweep_batch(chapter: str, batch: str) -> None:
    """Safety net after a batch: remove whatever any namespace of this batch left (best effort).

    Every namespace of the batch starts with ``dc<chapter>g<batch>``: the ones found by
    their labels are cleaned by label, and anything named with that prefix is removed.
    """
    prefix = f"dc{chapter}g{batch}"
    if not re.fullmatch(r"dc\d\dg[0-9a-f]{6}", prefix):
        raise ValueError(f"not a grading batch's prefix: {prefix!r}")
    try:
        client = engine()
        for tag in _labelled_tags(client, chapter, prefix):
            clean(client, namespace=Namespace(chapter=chapter, tag=tag, run="sweep"))
        sweep = Sweep(client)
        sweep.containers(prefix=prefix)
        sweep.networks(prefix=prefix)
        sweep.volumes(prefix=prefix)
        sweep.image_refs(
            [
                r
                for img in client.api.images()
                for r in img.get("RepoTags") or []
                if r.rsplit(":", 1)[0].rsplit("/", 1)[-1].startswith(prefix)
            ]
        )
    except ENGINE_ERRORS as e:  # a safety net only: each submission's namespace was cleaned already
        log.warning("could not sweep batch %s of chapter %s: %s", batch, chapter, e)
        return
    if sweep.report.errors:
        log.warning("sweeping batch %s of chapter %s: %s", batch, chapter, "; ".join(sweep.report.errors))


def _labelled_tags(client, chapter: str, prefix: str) -> set[str]:
    """Tags of the namespaces starting with ``prefix`` that labelled resources on the engine carry."""
    api = client.api
    flt = {"label": [f"{L.CHAPTER}={chapter}"]}
    rows = [
        *api.containers(all=True, filters=flt),
        *api.networks(filters=flt),
        *((api.volumes(filters=flt) or {}).get("Volumes") or []),
        *api.images(filters=flt),
    ]
    tags = set()
    for row in rows:
        ns = (row.get("Labels") or {}).get(L.NAMESPACE) or ""
        if ns.startswith(prefix) and ns.endswith("-"):  # Namespace(chapter, tag).prefix == ns
            tags.add(ns[len(f"dc{chapter}") : -1])
    return tags
