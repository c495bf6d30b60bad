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


def context_size(path) -> Context:
    """Tar the folder exactly as docker-py does before a build (honouring .dockerignore)."""
    exclude = read_dockerignore(path)
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


@dataclass
class BuildResult:
    image: object  # docker.models.images.Image
    tag: str
    steps: list[Step]
    seconds: float
    stages: dict[str, str]  # tagged non-final stages: stage name -> tag

    @property
    def cached(self) -> int:
        """How many steps (FROM excluded) came from the build cache."""
        return sum(s.cached for s in self.steps)

    @property
    def output(self) -> str:
        """Everything the steps printed (RUN output, triggers), one text."""
        return "\n".join(line for s in self.steps for line in s.output)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ARROW_ID = re.compile(r"^ ---> ([0-9a-f]{12})$")
_HIDE = (re.compile(r"^ ---> Running in [0-9a-f]{12}$"), re.compile(r"^ --->\s*$"),
         re.compile(r"^Removing intermediate container [0-9a-f]{12}$"),
         re.compile(r"^ ---> Removed intermediate container [0-9a-f]{12}$"),  # Docker 25 and newer
         re.compile(r"^Successfully built [0-9a-f]{12}$"))


def _is_course_label_step(instruction: str) -> bool:
    return instruction.upper().startswith("LABEL ") and f"{L.PREFIX}." in instruction.split()[1]


def build(client: docker.DockerClient, path, tag: str, *, dockerfile: str | None = None,
          buildargs: dict | None = None, target: str | None = None, nocache: bool = False,
          show: bool = True, keep_stages: bool = True) -> BuildResult:
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
    dfname = dockerfile or "Dockerfile"
    text = (Path(path) / dfname).read_text()
    ns = getattr(client.api, "namespace", None)  # the course client's namespace (its labels)
    labels = dict(ns.labels) if ns is not None else {}
    text = add_labels(text, labels)
    ctx = _tar(str(path), exclude=read_dockerignore(path), dockerfile=(LABELLED_DOCKERFILE, text))
    kwargs = dict(fileobj=ctx, custom_context=True, encoding=None, dockerfile=LABELLED_DOCKERFILE, tag=tag,
                  rm=True, forcerm=True, decode=True, nocache=nocache)
    if buildargs:
        kwargs["buildargs"] = buildargs
    if target:
        kwargs["target"] = target
    steps: list[Step] = []
    stage_ends: list[tuple[str, int]] = []  # (stage name, index of its FROM step)
    log: list[dict] = []
    buf = ""
    final_id = None

    def emit(line: str) -> None:
        if show:
            print(line)

    def handle(line: str) -> None:
        m = _STEP.match(line)
        if m:
            instr = m.group(3)
            steps.append(Step(int(m.group(1)), instr))
            if instr.upper().startswith("FROM "):
                words = instr.split()
                sname = words[3] if len(words) >= 4 and words[2].upper() == "AS" else str(len(stage_ends))
                stage_ends.append((sname, len(steps) - 1))
            if _is_course_label_step(instr):
                emit(f"Step {m.group(1)}/{m.group(2)} : LABEL ... (added by the course: its labels)")
            else:
                emit(line)
            return
        m = _ARROW_ID.match(line)
        if m:
            if steps:
                steps[-1].image_id = m.group(1)
            return
        if any(h.match(line) for h in _HIDE):
            return
        if line.strip() == "---> Using cache":
            if steps:
                steps[-1].cached = True
            emit(line)
            return
        if line.startswith("Successfully tagged"):
            emit(line)
            return
        if steps:
            steps[-1].output.append(line)
        emit("    " + line)

    for chunk in docker.APIClient.build(client.api, **kwargs):  # labels are in the Dockerfile
        log.append(chunk)
        if "error" in chunk:
            if buf:
                handle(buf)
            raise docker.errors.BuildError(chunk["error"].strip(), log)
        if "stream" in chunk:
            buf += _ANSI.sub("", chunk["stream"])  # the engine colours a step's stderr
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                if line.strip():
                    handle(line)
        aux = chunk.get("aux") or {}
        if "ID" in aux:
            final_id = aux["ID"]
    if buf.strip():
        handle(buf.rstrip("\n"))
    ctx.close()
    image = client.images.get(final_id or tag)
    stages: dict[str, str] = {}
    if keep_stages and len(stage_ends) > 1:
        repo, _, tg = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        for i, (sname, first) in enumerate(stage_ends[:-1]):
            last = stage_ends[i + 1][1] - 1
            if last <= first or not steps[last].image_id:
                continue  # a stage with only FROM is the base image itself
            try:
                img = client.images.get(steps[last].image_id)
            except docker.errors.ImageNotFound:
                continue
            lab = (img.attrs.get("Config") or {}).get("Labels") or {}
            if L.CHAPTER not in lab:
                continue  # a tag on an image without the chapter's label would outlive the cleanup
            stag = f"{repo}-stage-{sname.lower()}"
            img.tag(stag, tg)
            stages[sname] = f"{stag}:{tg}"
    # FROM steps never count as cached (they name an existing image)
    for s in steps:
        if s.instruction.upper().startswith("FROM "):
            s.cached = False
    return BuildResult(image=image, tag=tag, steps=steps, seconds=time.monotonic() - t0, stages=stages)


def layers(image) -> list[tuple[str, int]]:
    """``(instruction, size)`` of each history entry of ``image``, oldest first (``docker history``)."""
    out = []
    for h in reversed(image.history()):
        created = (h.get("CreatedBy") or "").replace("/bin/sh -c #(nop) ", "").strip()
        if created.startswith("/bin/sh -c "):
            created = "RUN " + created[len("/bin/sh -c "):]
        if created.startswith("LABEL ") and f"{L.PREFIX}." in created.split()[1]:
            created = "LABEL ... (added by the course: its labels)"
        out.append((created or "(a layer of the base image)", h.get("Size") or 0))
    return out


def ancestry(client: docker.DockerClient) -> dict[str, str]:
    """For every tagged image on the engine: the nearest tagged ancestor it was built on.

    Uses the ``Parent`` links the classic builder records locally; an image whose chain
    ends without a tagged ancestor was built ``FROM scratch`` (or pulled) and maps to ``"scratch"``.
    """
    rows = client.api.images(all=True)
    parent = {r["Id"]: r.get("ParentId") or "" for r in rows}
    tags = {r["Id"]: [t for t in (r.get("RepoTags") or []) if t != "<none>:<none>"] for r in rows}
    out = {}
    for iid, its in tags.items():
        p = parent.get(iid, "")
        while p and not tags.get(p):
            p = parent.get(p, "")
        base = sorted(tags[p])[0] if p else "scratch"
        for t in its:
            out[t] = base
    return out
