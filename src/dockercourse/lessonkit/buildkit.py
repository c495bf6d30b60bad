"""Build with BuildKit, as ``docker build`` does since Engine 23: ``docker buildx build``, run for real.

    from dockercourse.lessonkit.buildkit import build

    r = build(client, folder, name("hi") + ":1")     # prints the steps, CACHED ones marked
    r.image, r.cached, r.steps, r.stages, r.skipped, r.context_bytes

docker-py has no BuildKit client (its ``images.build`` is the classic builder), so this runs the
``docker`` command the ``%docker`` cells run (:func:`dockercourse.core.dockercli.find_cli`) as
``docker buildx build --progress=plain`` against the course's engine, with the chapter's labels
(``--label``: BuildKit makes no image per step, so the final image is the only one to label). It
reads BuildKit's progress stream and prints it in a form that is the same on every run and engine:
each step (``[2/3] RUN …``) with its output and ``CACHED`` when it came from the cache, without
the timings and progress numbers (``#5``) that change from run to run, and in the order of the
Dockerfile (BuildKit runs independent stages in parallel, so its own order varies).

Each build notes when it ran (:mod:`dockercourse.core.buildcache`), so that the chapter's clean-up
removes the cache records it made and none of anybody else's.

Where no ``docker buildx`` can be found, or the engine is Podman (whose Docker API builds with
Buildah), the build runs on the classic API (:func:`dockercourse.lessonkit.build.build`) and says
so in its first line.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from dockercourse import config
from dockercourse.core import buildcache
from dockercourse.core.dockercli import (
    DockerCLI,
    config_dir,
    course_plugin_dirs,
    find_cli,
    stop_process_group,
)
from dockercourse.lessonkit.build import Step, StepsRecord


@dataclass
class BuildKitResult(StepsRecord):
    image: object  # docker.models.images.Image
    tag: str
    steps: list[Step]
    seconds: float
    stages: list[str]  # the stages BuildKit built, in Dockerfile order
    skipped: list[str]  # the stages of the Dockerfile it did not need for the target
    context_bytes: int  # what "load build context" transferred (as BuildKit reports it: 3.15MB)
    builder: str = "BuildKit"


_STEP_NAME = re.compile(r"^\[(?:(?P<stage>[^\]\s]+) )?(?P<n>\d+)/(?P<m>\d+)\] (?P<instr>.*)$", re.S)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.I | re.M)


def stage_names(dockerfile_text: str) -> list[str]:
    """The stages of a Dockerfile in order, as BuildKit names them (``AS name``, else ``stage-N``)."""
    return [(m.group(2) or f"stage-{i}").lower() for i, m in enumerate(_FROM.finditer(dockerfile_text))]


def _buildx_env(client) -> tuple[list[str], dict] | None:
    """The ``docker buildx`` command for the course's engine, and its environment; None when there is none."""
    from dockercourse.core.engine import engine_url

    host = engine_url(client)
    if _is_podman(client):
        return None  # Podman's Docker API builds with Buildah: no BuildKit session to talk to
    key = (host, config.get("DOCKERCOURSE_DOCKER_CLI"), os.environ.get("PATH"))
    if not _FOUND.get(key):  # finding it takes two commands (0.2 s): once per engine, not per build
        _FOUND[key] = _find_buildx(host)  # (not found: looked for again next time, once installed)
    return _FOUND[key]


def _is_podman(client) -> bool:
    try:
        comps = client.version().get("Components") or []
    except docker.errors.APIError:
        return False
    return any("podman" in (c.get("Name") or "").lower() for c in comps)


#: ``docker buildx`` as found for an engine (and the settings that choose the CLI): see _buildx_env
_FOUND: dict[tuple, tuple[list[str], dict] | None] = {}


def _find_buildx(host: str) -> tuple[list[str], dict] | None:
    found = find_cli(host)
    if found is None:
        return None
    env = dict(os.environ, DOCKER_CLI_HINTS="false")
    if host.startswith(("unix://", "tcp://")):
        env["DOCKER_HOST"] = host
    # the CLI as found; then the same CLI with the buildx plugin of the course's own packages
    tries = [found] + [
        DockerCLI(found.path, found.version, found.origin, d)
        for d in course_plugin_dirs()
        if d != found.plugins
    ]
    for cli in tries:
        cfg = config_dir(cli)
        e = dict(env, DOCKER_CONFIG=cfg) if cfg else env
        r = subprocess.run(
            [cli.path, "buildx", "version"], env=e, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
        )
        if r.returncode == 0:
            plugin = _plugin_binary(cli, cfg, e, r.stdout)
            return ([plugin, "build"] if plugin else [cli.path, "buildx", "build"]), e
    return None


#: Where the ``docker`` command looks for plugins besides its configuration's folder and
#: ``cliPluginsExtraDirs`` (docker/cli's system plugin folders on Linux).
_SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def _plugin_binary(cli: DockerCLI, cfg: str | None, env: dict, version: bytes) -> str | None:
    """The ``docker-buildx`` that ``docker buildx`` runs, when it can be told for sure (it prints the
    same version line). ``docker build`` is this program; run directly, a build skips the ``docker``
    command's own start and its plugin lookup (two more processes, about 0.1 s a build: chapter 08 runs
    38 builds). ``None``: the build goes through ``docker buildx build``."""
    home = Path(cfg or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    dirs = [home / "cli-plugins", *([cli.plugins] if cli.plugins else []), *_SYSTEM_PLUGIN_DIRS]
    for d in dirs:
        p = Path(d) / "docker-buildx"
        if not (p.is_file() and os.access(p, os.X_OK)):
            continue
        try:
            r = subprocess.run(
                [str(p), "version"], env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return str(p) if r.returncode == 0 and r.stdout == version else None  # the first found is the one
    return None


_PLAIN = re.compile(r"^#(\d+) (.*)$")
_LOG = re.compile(r"^\d+\.\d+ ?(.*)$")
_SIZE = re.compile(r"transferring context: ([\d.]+)([kMG]?B)")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


class _Stream:
    """BuildKit's ``plain`` progress, line by line: the vertices (steps), their logs, the context transfer.

    ``#5 [2/3] RUN make`` names vertex 5 (the name comes again when its output resumes after another
    vertex's); ``#5 0.412 text`` is a line of its output; ``#5 CACHED``, ``#5 ERROR: …``; ``#7 transferring
    context: 3.15MB done``. (Plain, not ``rawjson``: buildx 0.13, Docker 26's, has no ``rawjson``.)"""

    def __init__(self):
        self.vertices: dict[str, dict] = {}  # "#5" -> {name, cached, error, logs}
        self.order: list[str] = []
        self.context_bytes = 0

    def feed_plain(self, line: str) -> None:
        m = _PLAIN.match(line.rstrip("\n"))
        if not m:
            return
        key, rest = m.group(1), m.group(2)
        d = self.vertices.get(key)
        if d is None:
            self.vertices[key] = {"name": rest, "cached": False, "logs": b""}
            self.order.append(key)
            return
        if rest == d["name"]:
            return  # the header again: its output resumes
        if rest == "CACHED":
            d["cached"] = True
        elif rest.startswith("ERROR: "):
            d["error"] = rest[len("ERROR: ") :]
        elif (log := _LOG.match(rest)) is not None:
            d["logs"] += log.group(1).encode() + b"\n"
        elif d["name"] == "[internal] load build context" and (size := _SIZE.search(rest)):
            self.context_bytes = max(self.context_bytes, int(float(size.group(1)) * _UNITS[size.group(2)]))


def _label(name: str) -> str:
    """A step's name without what changes between runs and machines (the base image's digest)."""
    return re.sub(r"@sha256:[0-9a-f]{64}", "", name)


def _steps(stream: _Stream, stages: list[str]) -> tuple[list[Step], list[str]]:
    """The Dockerfile's steps BuildKit ran, in Dockerfile order, and the stages they belong to."""
    index = {s: i for i, s in enumerate(stages)}
    rows = []
    for dg in stream.order:
        v = stream.vertices[dg]
        m = _STEP_NAME.match(v["name"])
        if not m:
            continue
        stage = (m.group("stage") or (stages[0] if stages else "stage-0")).lower()
        out = v["logs"].decode("utf-8", "replace").splitlines()
        step = Step(
            int(m.group("n")),
            _label(m.group("instr")),
            bool(v["cached"]),
            "",
            [ln for ln in out if ln.strip()],
        )
        if step.instruction.upper().startswith("FROM "):
            step.cached = False  # a base image is taken, not built
        rows.append(((index.get(stage, len(index)), stage, step.number), stage, m.group("m"), step))
    rows.sort(key=lambda r: r[0])
    # ONBUILD triggers run after the child's FROM: BuildKit 0.13 and newer name them "[2/3] ONBUILD COPY …",
    # older ones "[2/1] COPY …" (numbered past the total). Both are printed the newer way.
    for stage in {r[1] for r in rows}:
        mine = [r for r in rows if r[1] == stage]
        last = max(r[3].number for r in mine)
        if last > int(mine[0][2]):
            for i, r in enumerate(rows):
                if r[1] == stage:
                    if r[3].number > int(r[2]) and not r[3].instruction.startswith("ONBUILD "):
                        r[3].instruction = "ONBUILD " + r[3].instruction
                    rows[i] = (r[0], r[1], str(last), r[3])
    built = []
    for _, stage, _, _ in rows:
        if stage not in built:
            built.append(stage)
    return rows, built


def _print(rows, multi: bool) -> None:
    for _, stage, total, s in rows:
        where = f"{stage} {s.number}/{total}" if multi else f"{s.number}/{total}"
        print(f"[{where}] {s.instruction}" + ("  CACHED" if s.cached else ""))
        for line in s.output:
            print("    " + line)


def _run(args: list[str], env: dict) -> tuple[_Stream, list[str], int]:
    """Run the build; its progress stream, its other lines (errors), its exit status."""
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stream, other = _Stream(), []
    try:
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("#"):
                stream.feed_plain(line)
            elif line:
                other.append(line)
        rc = proc.wait()
    except KeyboardInterrupt:
        stop_process_group(proc)  # the build and nothing else: its own process group
        raise
    finally:
        proc.stderr.close()
    return stream, other, rc


#: BuildKit failures that are a race inside the engine, not the Dockerfile's doing: with the containerd
#: image store, unpacking a layer can find its parent snapshot gone for a moment ("failed to prepare
#: extraction snapshot …: parent snapshot sha256:… does not exist: not found", moby/buildkit#6521,
#: also seen with Docker 29 elsewhere). The same build run again succeeds, so it is run again, up to
#: RETRIES times; the learner sees the steps of the run that succeeded.
TRANSIENT = re.compile(r"failed to prepare extraction snapshot|parent snapshot \S+ does not exist")
RETRIES = 2


def _run_retrying(args: list[str], env: dict) -> tuple[_Stream, list[str], int, int]:
    """:func:`_run`, run again while it fails with a :data:`TRANSIENT` error; also says how many runs."""
    runs = 0
    while True:
        stream, other, rc = _run(args, env)
        runs += 1
        errors = [v.get("error") or "" for v in stream.vertices.values()] + other
        if not rc or runs > RETRIES or not any(TRANSIENT.search(e) for e in errors):
            return stream, other, rc, runs
        time.sleep(0.2 * runs)


def _options(ns, tag, path, dockerfile, buildargs, secrets, target, nocache) -> list[str]:
    """``docker buildx build``'s options for a build of the course (its labels, its names)."""
    real_tag = ns.map_names(tag) if ns is not None and getattr(ns, "tag", None) else tag
    args = ["--progress=plain", "-t", real_tag]
    for k, v in (dict(ns.labels) if ns is not None else {}).items():
        args += ["--label", f"{k}={v}"]
    if dockerfile:
        args += ["-f", str(Path(path) / dockerfile)]
    for k, v in (buildargs or {}).items():
        args += ["--build-arg", f"{k}={v}"]
    for k, v in (secrets or {}).items():
        args += ["--secret", f"id={k},src={v}"]
    if target:
        args += ["--target", target]
    if nocache:
        args.append("--no-cache")
    return [*args, str(path)]


def build(
    client: docker.DockerClient,
    path,
    tag: str,
    *,
    dockerfile: str | None = None,
    buildargs: dict | None = None,
    target: str | None = None,
    nocache: bool = False,
    secrets: dict[str, str] | None = None,
    show: bool = True,
) -> BuildKitResult:
    """``docker buildx build -t TAG PATH`` on the course's engine; prints the steps (``show``).

    Args:
        client: the course client (its namespace gives the labels, and the names in a grading run).
        path: the build context folder.
        tag: ``repo:tag`` of the result.
        dockerfile, buildargs, target, nocache: ``-f``, ``--build-arg``, ``--target``, ``--no-cache``.
        secrets: ``{id: file}``, each as ``--secret id=ID,src=FILE`` (for ``RUN --mount=type=secret``).
        show: print the steps.

    Raises:
        docker.errors.BuildError: the build failed (the message is BuildKit's); a failure that is the
            engine's own race (:data:`TRANSIENT`) is first run again.
    """
    found = _buildx_env(client)
    if found is None:
        from dockercourse.lessonkit import build as classic

        print("(no `docker buildx` for this engine: this build ran on the classic builder; its log:)")
        r = classic.build(
            client,
            path,
            tag,
            dockerfile=dockerfile,
            buildargs=buildargs,
            target=target,
            nocache=nocache,
            show=show,
        )
        return BuildKitResult(r.image, tag, r.steps, r.seconds, list(r.stages), [], 0, "classic")
    cmd, env = found
    ns = getattr(client.api, "namespace", None)
    args = [*cmd, *_options(ns, tag, path, dockerfile, buildargs, secrets, target, nocache)]
    clock = buildcache.engine_clock(client.api) if ns is not None else None
    t0 = time.monotonic()
    stream, other, rc, _ = _run_retrying(args, env)
    if clock:  # so that clean-up removes this build's cache records (and only the course's)
        buildcache.note(clock[0], ns.prefix, clock[1], clock[1] + time.monotonic() - t0)
    dfile = Path(path) / (dockerfile or "Dockerfile")
    stages = stage_names(dfile.read_text()) if dfile.is_file() else []
    rows, built = _steps(stream, stages)
    if show:
        _print(rows, len(stages) > 1)
    if rc:
        errs = [v["error"] for v in stream.vertices.values() if v.get("error")]
        msg = errs[0] if errs else "\n".join(other) or f"docker buildx build exited with status {rc}"
        raise docker.errors.BuildError(msg.strip(), [{"error": line} for line in other])
    image = client.images.get(tag)
    bases = {m.group(1).lower() for m in _FROM.finditer(dfile.read_text())} if dfile.is_file() else set()
    return BuildKitResult(
        image=image,
        tag=tag,
        steps=[r[3] for r in rows],
        seconds=time.monotonic() - t0,
        stages=built,
        skipped=[s for s in stages if s not in built and s not in bases],
        context_bytes=stream.context_bytes,
    )
