"""The run namespace: labels and name prefixes on everything a chapter creates.

Every container, volume, network and image a chapter creates carries three labels
(:mod:`dockercourse.core.labels`): the chapter, the namespace (its name prefix) and the
run id. :class:`LabellingAPIClient` adds them by default, so notebook cells stay
plain docker-py (``client.containers.run(...)``). Names are prefixed per chapter
(``dc02-web``) by :meth:`Namespace.name`, so the learner's own ``web`` container
can never collide with the course's.

Removing them is :mod:`dockercourse.core.cleanup`'s job (by label, never anything else).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field

import docker
import docker.errors
import requests

from dockercourse import config
from dockercourse.core import labels as L

log = logging.getLogger(__name__)

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
    def for_chapter(cls, chapter: str, tag: str | None = None, run: str | None = None) -> Namespace:
        tag = (config.get(NS_ENV) or "") if tag is None else tag
        if tag and not re.fullmatch(r"[a-z0-9]{1,12}", tag):
            raise ValueError(f"namespace tag must be 1-12 lowercase letters/digits, not {tag!r}")
        run = run or config.get(RUN_ENV) or uuid.uuid4().hex[:12]
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
    def learner_prefix(self) -> str:
        """The chapter's own prefix, ``dc02-``: what a learner writes out in an answer."""
        return f"dc{self.chapter}-"

    def map_names(self, text: str, *, url: bool = False) -> str:
        """In a grading run's namespace (a tag): the learner's names written out in an answer
        (``dc02-hello``, in ``!docker run --name dc02-hello`` or a docker-py call) as this run's
        (``dc02g3-hello``), so that they are graded like ``name("hello")``. Unchanged otherwise.

        A name inside a file path (``/tmp/dc06-x1y2/backup``, ``./dc06-notes``) is a folder, not a
        course name, and stays as written: the same in a shell line and in an API call's body, so that
        a bind mount reaches the folder the notebook made whichever way the learner wrote it. An image
        repository in a registry (``127.0.0.1:5000/dc05-mybox``) is a name and is mapped.
        ``url=True``: an API path (``/containers/dc02-web/json``), where every segment is a name."""
        if not self.tag or self.learner_prefix not in text:
            return text
        prefix = re.compile(rf"(?<![a-z0-9]){re.escape(self.learner_prefix)}")
        if url:
            return prefix.sub(self.prefix, text)

        def one(m: re.Match) -> str:
            start = max(text.rfind(c, 0, m.start()) for c in _TOKEN_EDGES) + 1
            return m.group(0) if text[start : m.start()].startswith(("/", "~", ".")) else self.prefix

        return prefix.sub(one, text)

    @property
    def labels(self) -> dict[str, str]:
        """Labels every resource of this run carries."""
        return {L.CHAPTER: self.chapter, L.NAMESPACE: self.prefix, L.RUN: self.run}

    def filters(self) -> dict:
        """docker-py ``filters=`` selecting this namespace's resources."""
        return {"label": [f"{L.NAMESPACE}={self.prefix}"]}


#: What ends the token a course name is written in (a shell word, a JSON string, an option's value,
#: ``host:port/`` or ``name:/path`` parts): the token's start tells a file path from a name.
_TOKEN_EDGES = " \t\n\"'=,[({:"


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


#: How long a prune waits for another one on the same engine to finish (seconds).
PRUNE_WAIT_S = 60.0


def stream_error_text(response) -> str:
    """The error's text of an answer shaped like a progress stream's error (Podman's), or ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return str(body.get("error") or (body.get("errorDetail") or {}).get("message") or "")


def _prune_busy(resp) -> bool:
    return resp.status_code == 409 and "prune operation is already running" in (resp.text or "")


#: how often a listing of images is asked again when it met an image being removed (below)
LIST_RETRIES = 8


def _listing_raced(resp) -> bool:
    """The containerd image store's answer to an image list that met an image another client was removing
    at that moment: 404 *content digest sha256:...: not found* (moby/moby#46077 and its kin). Seen on the
    VM engine (Docker 28.5) when chapter 05's master and student copy were graded at once on one engine."""
    return resp.status_code == 404 and "content digest" in (resp.text or "")


class LabellingAPIClient(docker.APIClient):
    """A docker-py low-level client that labels what it creates.

    Containers, volumes, networks, built images, committed and imported images
    get the namespace's labels unless the call gives its own for the same key.
    Everything else behaves exactly like ``docker.APIClient``.
    """

    def __init__(self, *args, namespace: Namespace, **kwargs):
        self.namespace = namespace  # first: the base class already asks the engine for its version
        super().__init__(*args, **kwargs)

    def request(self, method, url, *args, **kwargs):
        """Every API call; in a grading run, the learner's written-out names become the run's
        (:meth:`Namespace.map_names`): in the path, the query and a JSON body."""
        ns = self.namespace
        if ns.tag:
            url = ns.map_names(url, url=True)
            params = kwargs.get("params")
            if isinstance(params, dict):
                kwargs["params"] = {
                    k: ns.map_names(v) if isinstance(v, str) else v for k, v in params.items()
                }
            if isinstance(kwargs.get("data"), str):
                kwargs["data"] = ns.map_names(kwargs["data"])
        resp = super().request(method, url, *args, **kwargs)
        if str(method).upper() == "POST" and str(url).split("?", 1)[0].endswith("/prune"):
            # The engine runs one prune of a kind at a time and refuses another meanwhile (409): with
            # several notebooks on one engine (a class, a grading batch) one waits for the other's.
            deadline = time.monotonic() + PRUNE_WAIT_S
            while _prune_busy(resp) and time.monotonic() < deadline:
                time.sleep(0.25)
                resp = super().request(method, url, *args, **kwargs)
        elif str(method).upper() == "GET" and str(url).split("?", 1)[0].endswith("/images/json"):
            # a listing is only read: asked again, it no longer meets the image that was being removed
            for _ in range(LIST_RETRIES):
                if not _listing_raced(resp):
                    break
                time.sleep(0.1)
                resp = super().request(method, url, *args, **kwargs)
        return resp

    def _raise_for_status(self, response):
        """docker-py's, except for a refusal it cannot read: it takes an error's text from the answer's
        ``message``, and raises ``KeyError('message')`` for Podman's refused pushes and pulls (500 with a
        progress stream's error, ``{"error": ..., "errorDetail": ...}``). Those become the APIError a
        cell's ``except docker.errors.APIError`` expects, with Podman's words as the explanation."""
        try:
            super()._raise_for_status(response)
        except KeyError as e:
            if not isinstance(e.__context__, requests.exceptions.HTTPError):
                raise
            text = stream_error_text(response)
            if not text:
                raise
            cls = docker.errors.NotFound if response.status_code == 404 else docker.errors.APIError
            raise cls(str(e.__context__), response=response, explanation=text) from e.__context__

    def create_container(self, image, *args, **kwargs):
        kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().create_container(image, *args, **kwargs)

    def create_volume(self, name=None, driver=None, driver_opts=None, labels=None):
        return super().create_volume(name, driver, driver_opts, _merge_labels(labels, self.namespace.labels))

    def create_network(self, name, *args, **kwargs):
        kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().create_network(name, *args, **kwargs)

    def build(self, *args, **kwargs):
        from dockercourse.core.buildcontext import labelled_build_kwargs

        # every image of the build, the temporary one of each step included (see buildcontext);
        # `labels=` (one more step per label, final image only) only where that was not possible
        args, kwargs, labelled = labelled_build_kwargs(args, kwargs, self.namespace.labels)
        if not labelled or kwargs.get("labels"):
            kwargs["labels"] = _merge_labels(kwargs.get("labels"), self.namespace.labels)
        return super().build(*args, **kwargs)

    def commit(
        self,
        container,
        repository=None,
        tag=None,
        message=None,
        author=None,
        pause=True,
        changes=None,
        conf=None,
    ):
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

    def import_image(self, src=None, repository=None, tag=None, image=None, changes=None, stream_src=False):
        return super().import_image(src, repository, tag, image, self._label_changes(changes), stream_src)

    def import_image_from_data(self, data, repository=None, tag=None, changes=None):
        return super().import_image_from_data(data, repository, tag, self._label_changes(changes))

    def import_image_from_file(self, filename, repository=None, tag=None, changes=None):
        return super().import_image_from_file(filename, repository, tag, self._label_changes(changes))
