"""Build images from a folder and show the build log readably.

    from dockercourse.lessonkit.build import write_files, build, context_size

    ctx = write_files(folder, {"Dockerfile": "FROM busybox:1.35.0\\nCMD echo hi\\n"})
    result = build(client, ctx, name("hi") + ":1")       # prints the steps as `docker build` does
    result.image, result.cached, result.steps

``build`` is ``docker build`` (the classic builder, as docker-py drives it): it sends the
folder as the build context, prints each step, the output of ``RUN`` steps and which steps
came from the cache, and hides the IDs of intermediate containers (they change every run).
The course's labels are added as one ``LABEL`` step right after every ``FROM`` (``docker build
--label`` labels the last image only; see :mod:`dockercourse.buildcontext`), and the last image of each
earlier stage is tagged ``<repo>-stage-<name>:<tag>``: visible, and removed with the chapter.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.utils.build import tar as _tar

from dockercourse.core import labels as L
from dockercourse.core.buildcontext import (
    LABELLED_DOCKERFILE,
    add_labels,
    read_dockerignore,
)


def write_files(folder, files: dict[str, str | bytes]) -> Path:
    """Create ``folder`` (and sub-folders) with the given files; returns the folder as a Path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return root


@dataclass
class Context:
    """What a build would send: the files and the size of the tar archive."""

    files: list[str]
    bytes: int


def context_size(path, ignore: bool = True) -> Context:
    """Tar the folder exactly as docker-py does before a build (honouring .dockerignore unless ``ignore``
    is false)."""
    exclude = read_dockerignore(path) if ignore else []
    f = _tar(str(path), exclude=exclude)
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    import tarfile

    with tarfile.open(fileobj=f) as t:
        names = sorted(m.name for m in t.getmembers() if m.isfile())
    f.close()
    return Context(files=names, bytes=size)


@dataclass
class Step:
    number: int
    instruction: str
    cached: bool = False
    image_id: str = ""
    output: list[str] = field(default_factory=list)


class StepsRecord:
    """What a build result says of its ``steps``: shared by the classic and the BuildKit results."""

    steps: list[Step]

    @property
    def cached(self) -> int:
        """How many steps (FROM excluded) came from the build cache."""
        return sum(s.cached for s in self.steps)

    @property
    def output(self) -> str:
        """Everything the steps printed (RUN output, triggers), one text."""
        return "\n".join(line for s in self.steps for line in s.output)


@dataclass
class BuildResult(StepsRecord):
    image: object  # docker.models.images.Image
    tag: str
    steps: list[Step]
    seconds: float
    stages: dict[str, str]  # tagged non-final stages: stage name -> tag


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ARROW_ID = re.compile(r"^ ---> ([0-9a-f]{12})$")
_HIDE = (
    re.compile(r"^ ---> Running in [0-9a-f]{12}$"),
    re.compile(r"^ --->\s*$"),
    re.compile(r"^Removing intermediate container [0-9a-f]{12}$"),
    re.compile(r"^ ---> Removed intermediate container [0-9a-f]{12}$"),  # Docker 25 and newer
    re.compile(r"^Successfully built [0-9a-f]{12}$"),
)


def _is_course_label_step(instruction: str) -> bool:
    return instruction.upper().startswith("LABEL ") and f"{L.PREFIX}." in instruction.split()[1]


class _BuildLog:
    """Reads the classic builder's stream: records the steps, prints them without volatile IDs."""

    def __init__(self, show: bool):
        self.show = show
        self.steps: list[Step] = []
        self.stage_ends: list[tuple[str, int]] = []  # (stage name, index of its FROM step)
        self.chunks: list[dict] = []
        self.final_id = None
        self._buf = ""

    def emit(self, line: str) -> None:
        if self.show:
            print(line)

    def feed(self, chunk: dict) -> None:
        self.chunks.append(chunk)
        if "error" in chunk:
            self.flush()
            raise docker.errors.BuildError(chunk["error"].strip(), self.chunks)
        if "stream" in chunk:
            self._buf += _ANSI.sub("", chunk["stream"])  # the engine colours a step's stderr
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                if line.strip():
                    self.handle(line)
        aux = chunk.get("aux") or {}
        if "ID" in aux:
            self.final_id = aux["ID"]

    def flush(self) -> None:
        if self._buf.strip():
            self.handle(self._buf.rstrip("\n"))
        self._buf = ""

    def _step(self, m) -> None:
        instr = m.group(3)
        self.steps.append(Step(int(m.group(1)), instr))
        if instr.upper().startswith("FROM "):
            words = instr.split()
            sname = words[3] if len(words) >= 4 and words[2].upper() == "AS" else str(len(self.stage_ends))
            self.stage_ends.append((sname, len(self.steps) - 1))
        if _is_course_label_step(instr):
            self.emit(f"Step {m.group(1)}/{m.group(2)} : LABEL ... (added by the course: its labels)")
        else:
            self.emit(m.group(0))

    def handle(self, line: str) -> None:
        m = _STEP.match(line)
        if m:
            return self._step(m)
        m = _ARROW_ID.match(line)
        if m:
            if self.steps:
                self.steps[-1].image_id = m.group(1)
            return None
        if any(h.match(line) for h in _HIDE):
            return None
        if line.strip() == "---> Using cache":
            if self.steps:
                self.steps[-1].cached = True
            return self.emit(line)
        if line.startswith("Successfully tagged"):
            return self.emit(line)
        if self.steps:
            self.steps[-1].output.append(line)
        return self.emit("    " + line)


def _tag_stages(client, tag: str, log: _BuildLog) -> dict[str, str]:
    """Tag the last image of every earlier stage ``<repo>-stage-<name>:<tag>``
    (visible, cleaned with the chapter)."""
    stages: dict[str, str] = {}
    repo, _, tg = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    for i, (sname, first) in enumerate(log.stage_ends[:-1]):
        last = log.stage_ends[i + 1][1] - 1
        if last <= first or not log.steps[last].image_id:
            continue  # a stage with only FROM is the base image itself
        try:
            img = client.images.get(log.steps[last].image_id)
        except docker.errors.ImageNotFound:
            continue
        if L.CHAPTER not in ((img.attrs.get("Config") or {}).get("Labels") or {}):
            continue  # a tag on an image without the chapter's label would outlive the cleanup
        stag = f"{repo}-stage-{sname.lower()}"
        img.tag(stag, tg)
        stages[sname] = f"{stag}:{tg}"
    return stages


def build(
    client: docker.DockerClient,
    path,
    tag: str,
    *,
    dockerfile: str | None = None,
    buildargs: dict | None = None,
    target: str | None = None,
    nocache: bool = False,
    show: bool = True,
    keep_stages: bool = True,
) -> BuildResult:
    """Build ``path`` into ``tag`` and print the log (``docker build -t TAG PATH``).

    Args:
        client: the course client (it labels what it builds).
        path: the build context folder.
        tag: ``repo:tag`` of the result.
        dockerfile, buildargs, target, nocache: as ``docker build -f / --build-arg / --target / --no-cache``.
        show: print the log.
        keep_stages: tag the last image of every earlier stage as ``<repo>-stage-<name>:<tag>``.

    Raises:
        docker.errors.BuildError: the build failed (its message is the engine's).
    """
    t0 = time.monotonic()
    # The course's labels go in as ONE extra LABEL step after every FROM (see buildcontext), so
    # every image the build makes carries them. The Dockerfile on disk is unchanged: the labelled
    # copy travels in the context under another name, as docker-py does for -f.
    ns = getattr(client.api, "namespace", None)  # the course client's namespace (its labels)
    text = add_labels((Path(path) / (dockerfile or "Dockerfile")).read_text(), dict(ns.labels) if ns else {})
    ctx = _tar(str(path), exclude=read_dockerignore(path), dockerfile=(LABELLED_DOCKERFILE, text))
    kwargs = dict(
        fileobj=ctx,
        custom_context=True,
        encoding=None,
        dockerfile=LABELLED_DOCKERFILE,
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
        nocache=nocache,
    )
    if buildargs:
        kwargs["buildargs"] = buildargs
    if target:
        kwargs["target"] = target
    log = _BuildLog(show)
    try:
        for chunk in docker.APIClient.build(client.api, **kwargs):  # labels are in the Dockerfile
            log.feed(chunk)
        log.flush()
    finally:
        ctx.close()
    image = client.images.get(log.final_id or tag)
    stages = _tag_stages(client, tag, log) if keep_stages and len(log.stage_ends) > 1 else {}
    for s in log.steps:  # FROM steps never count as cached (they name an existing image)
        if s.instruction.upper().startswith("FROM "):
            s.cached = False
    return BuildResult(image=image, tag=tag, steps=log.steps, seconds=time.monotonic() - t0, stages=stages)


def _step_text(created_by: str) -> str:
    """A history entry's ``CreatedBy`` as the Dockerfile line: the classic builder writes
    ``/bin/sh -c #(nop) CMD ...`` and ``/bin/sh -c cmd``, BuildKit ``RUN /bin/sh -c cmd # buildkit``."""
    text = created_by.strip()
    text = re.sub(r"\s*# buildkit$", "", text)
    text = text.replace("/bin/sh -c #(nop) ", "").strip()
    if text.startswith("/bin/sh -c "):
        text = "RUN " + text[len("/bin/sh -c ") :]
    elif text.startswith("RUN /bin/sh -c "):
        text = "RUN " + text[len("RUN /bin/sh -c ") :]
    return text


def layers(image) -> list[tuple[str, int]]:
    """``(instruction, size)`` of each history entry of ``image``, oldest first (``docker history``)."""
    out = []
    for h in reversed(image.history()):
        created = _step_text(h.get("CreatedBy") or "")
        if created.startswith("LABEL ") and f"{L.PREFIX}." in created.split()[1]:
            created = "LABEL ... (added by the course: its labels)"
        out.append((created or "(a layer of the base image)", h.get("Size") or 0))
    return out


def ancestry(client: docker.DockerClient, prefix: str = "") -> dict[str, str]:
    """For every tagged image (whose name starts with ``prefix``): the nearest tagged image it was built on.

    An image's history begins with its parent's history, entry for entry (BuildKit records no
    ``Parent``; the classic builder did): the parent is the tagged image whose history is the longest
    strict beginning of this one's (of equal ones, the oldest). An image with no such image was built
    ``FROM scratch`` (or pulled) and maps to ``"scratch"``. Instructions that add no history entry
    (``ONBUILD`` alone, under BuildKit) make a child look like its parent: give such an image a ``LABEL``.
    """
    hist: dict[str, tuple] = {}
    tags: dict[str, list[str]] = {}
    created: dict[str, int] = {}
    for r in client.api.images():
        its = [t for t in (r.get("RepoTags") or []) if t != "<none>:<none>"]
        if not its:
            continue
        try:
            h = client.api.history(r["Id"])
        except docker.errors.NotFound:
            continue
        hist[r["Id"]] = tuple((e.get("Created"), e.get("CreatedBy") or "") for e in reversed(h))
        tags[r["Id"]] = sorted(its)
        created[r["Id"]] = r.get("Created") or 0
    out = {}
    for iid, its in tags.items():
        if prefix and not any(t.startswith(prefix) for t in its):
            continue
        mine, best = hist[iid], None
        for pid, ph in hist.items():
            # a strict beginning; or the same history and made earlier (an image whose instructions
            # added no history entry, such as only ONBUILD under BuildKit, looks like its parent)
            if pid == iid or len(ph) > len(mine) or mine[: len(ph)] != ph:
                continue
            if len(ph) == len(mine) and created[pid] >= created[iid]:
                continue
            if best is None or (len(ph), -created[pid]) > (len(hist[best]), -created[best]):
                best = pid
        for t in its:
            out[t] = tags[best][0] if best else "scratch"
    return out
