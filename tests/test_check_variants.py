"""Each exercise judged by what the learner did, by any valid path: a table of variants.

For every exercise below: at least two correct answers (one through the real ``docker`` command, one with
other valid options) and at least two wrong answers a learner might plausibly give, each run against the
real engine, each asserting pass or fail of the exercise's checks, hidden ones included (as the grader
runs them). A check that passes a wrong variant, or fails a right one, fails here.

Every variant has a namespace of its own (``dc04v1a2b3c-...``); what the CLI made carries no course label,
so it is removed by that namespace's prefix (``remove_prefixed``), which nothing else can have.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from dockercourse import checks
from dockercourse.core.cleanup import clean, leftovers, remove_prefixed
from dockercourse.core.engine import connect, engine_url
from dockercourse.core.images import BUSYBOX, DEBIAN, NGINX, REGISTRY
from dockercourse.core.namespace import Namespace
from dockercourse.lessonkit.registry import RegistryAPI

LOOP = "while true; do echo tick; sleep 1; done"


def _docker_cli() -> str | None:
    """The ``docker`` command: on PATH, else the course's own engine packages' one."""
    found = shutil.which("docker")
    if found:
        return found
    pkg = Path("/var/lib/dockercourse/pkgs/28.5/root/usr/bin/docker")
    return str(pkg) if pkg.exists() else None


@dataclass
class Run:
    """What one variant's steps see: the engine (docker-py), the CLI, names, a scratch folder."""

    client: docker.DockerClient
    ns: Namespace
    tmp: Path
    host: str
    cli_path: str | None

    def name(self, short: str) -> str:
        return self.ns.name(short)

    def cli(self, line: str, **fmt) -> str:
        """Run one ``docker`` command line (``{x}`` filled from ``fmt``, ``{n:short}`` a course name)."""
        if not self.cli_path:
            pytest.skip("no docker command on this machine")
        argv = [self.cli_path, *shlex.split(line.format(**fmt))]
        r = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env={**os.environ, "DOCKER_HOST": self.host}
        )
        assert r.returncode == 0, f"{line}: {r.stderr}"
        return r.stdout.strip()

    def file(self, name: str, text: str) -> Path:
        p = self.tmp / name
        p.write_text(text)
        return p


def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _context(r, folder: str, files: dict[str, str]) -> Path:
    """A build context (or any host folder) under r.tmp holding ``files``."""
    d = r.tmp / folder
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def _wait_registry(port: int) -> None:
    """Until the registry on 127.0.0.1:port answers /v2/ at all (a 401 counts)."""
    RegistryAPI(f"http://127.0.0.1:{port}", timeout=3).wait(timeout=30)


def _run_registry(r, short: str, **kwargs) -> int:
    """REGISTRY running as name(short), published on a free loopback port (that port), answering."""
    port = _free_port()
    r.client.containers.run(
        REGISTRY, name=r.name(short), detach=True, ports={"5000/tcp": ("127.0.0.1", port)}, **kwargs
    )
    _wait_registry(port)
    return port


# --------------------------------------------------------------------------- the variants


def hello_py(r):
    r.client.containers.run(BUSYBOX, ["echo", "hello, docker"], name=r.name("hello"))


def hello_cli(r):
    r.cli("run --name {n} busybox:1.35.0 echo hello, docker", n=r.name("hello"))


def hello_cli_detached_sh(r):
    r.cli("run -d --name {n} busybox:1.35.0 sh -c 'echo hello, docker'", n=r.name("hello"))
    r.client.containers.get(r.name("hello")).wait()


def hello_wrong_image(r):
    r.cli("run --name {n} {img} echo hello, docker", n=r.name("hello"), img=DEBIAN)


def hello_never_started(r):
    r.cli("create --name {n} busybox:1.35.0 echo hello, docker", n=r.name("hello"))


def ticker_py(r):
    r.client.containers.run(
        BUSYBOX, ["sh", "-c", LOOP], name=r.name("clock"), labels={"role": "ticker"}, detach=True
    )


def ticker_cli_dit(r):  # the seed's own form: -dit
    r.cli(
        "run -dit --name {n} --label role=ticker busybox:1.35.0 sh -c '{loop}'", n=r.name("clock"), loop=LOOP
    )


def ticker_cli_d(r):
    r.cli("run -d --name {n} -l role=ticker busybox:1.35.0 sh -c '{loop}'", n=r.name("clock"), loop=LOOP)


def ticker_no_label(r):
    r.cli("run -d --name {n} busybox:1.35.0 sh -c '{loop}'", n=r.name("clock"), loop=LOOP)


def ticker_created_only(r):
    r.cli("create --name {n} --label role=ticker busybox:1.35.0 sh -c '{loop}'", n=r.name("clock"), loop=LOOP)


def _sleeper(r, short):
    return r.client.containers.run(BUSYBOX, ["sleep", "3600"], name=r.name(short), detach=True)


def copy_py(r):
    _sleeper(r, "target").put_archive("/tmp", _tar_of("config.txt", b"mode=training\n"))


def copy_cli(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("target"))
    r.cli("cp {f} {n}:/tmp/config.txt", f=r.file("config.txt", "mode=training\n"), n=r.name("target"))


def copy_wrong_exec(r):
    _sleeper(r, "target")
    r.cli("exec {n} sh -c 'echo mode=training > /tmp/config.txt'", n=r.name("target"))


def copy_wrong_own_command(r):
    r.client.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo mode=training > /tmp/config.txt; sleep 3600"],
        name=r.name("target"),
        detach=True,
    )


def exec_py(r):
    _sleeper(r, "bench").exec_run(["sh", "-c", "echo exec was here > /tmp/made-by-exec.txt"])


def exec_cli(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("bench"))
    r.cli("exec {n} sh -c 'echo exec was here > /tmp/made-by-exec.txt'", n=r.name("bench"))


def exec_cli_workdir(r):  # another valid form: exec -w with a relative path
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("bench"))
    r.cli("exec -w /tmp {n} sh -c 'echo exec was here > made-by-exec.txt'", n=r.name("bench"))


def exec_wrong_cp(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("bench"))
    r.cli("cp {f} {n}:/tmp/made-by-exec.txt", f=r.file("x.txt", "exec was here\n"), n=r.name("bench"))


def exec_wrong_own_command(r):
    r.client.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo exec was here > /tmp/made-by-exec.txt; sleep 3600"],
        name=r.name("bench"),
        detach=True,
    )


def killed_py(r):
    _sleeper(r, "deaf").stop(timeout=1)


def killed_cli(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("deaf"))
    r.cli("stop -t 1 {n}", n=r.name("deaf"))


def killed_wrong_kill(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("deaf"))
    r.cli("kill {n}", n=r.name("deaf"))


def killed_wrong_default_timeout(r):
    r.cli("run -d --name {n} busybox:1.35.0 sleep 3600", n=r.name("deaf"))
    r.cli("stop {n}", n=r.name("deaf"))  # waits the default 10 s


def _exported(r) -> Path:
    c = r.client.containers.create(BUSYBOX, ["true"], name=r.name("src"))
    path = r.tmp / "rootfs.tar"
    with open(path, "wb") as f:
        for chunk in c.export():
            f.write(chunk)
    return path


def import_py(r):
    path = _exported(r)
    r.client.api.import_image_from_file(
        str(path), repository=r.name("template"), tag="v1", changes=['CMD ["sh"]']
    )


def import_cli_message(r):  # the notebook's own CLI line, with -m
    path = _exported(r)
    r.cli("import -m 'my template' -c 'CMD [\"sh\"]' {p} {n}:v1", p=path, n=r.name("template"))


def import_wrong_commit(r):
    c = r.client.containers.run(BUSYBOX, ["true"], name=r.name("src"), detach=True)
    c.wait()
    r.cli("commit -c 'CMD [\"sh\"]' {c} {n}:v1", c=c.name, n=r.name("template"))


def import_wrong_build(r):  # the same file system and command, but built: ADD of the tarball, then CMD
    path = _exported(r)
    d = _context(r, "frombuild", {"Dockerfile": 'FROM scratch\nADD rootfs.tar /\nCMD ["sh"]\n'})
    shutil.copy(path, d / "rootfs.tar")
    r.cli("build -q -t {t} {d}", t=r.name("template") + ":v1", d=d)


def import_wrong_no_cmd(r):
    path = _exported(r)
    r.cli("import {p} {n}:v1", p=path, n=r.name("template"))


def _registry_with_push(r) -> str:
    """The learner's registry dc05…-myreg on a free port, busybox pushed as …/dc05…-mybox:v1; its address."""
    ref = f"127.0.0.1:{_run_registry(r, 'myreg')}/{r.name('mybox')}"
    r.client.images.get(BUSYBOX).tag(ref, "v1")
    r.cli("push {ref}:v1", ref=ref)
    return ref


def pull_py(r):
    ref = _registry_with_push(r)
    r.client.images.remove(f"{ref}:v1")
    r.client.images.pull(ref, "v1").tag(r.name("frommyreg"), "v1")


def pull_cli_localhost(r):  # pulled by the other name of this host, without removing the local tag first
    ref = _registry_with_push(r)
    other = ref.replace("127.0.0.1:", "localhost:")
    r.cli("pull {o}:v1", o=other)
    r.cli("tag {o}:v1 {n}:v1", o=other, n=r.name("frommyreg"))


def pull_wrong_tag_of_pushed(r):
    ref = _registry_with_push(r)
    r.cli("tag {ref}:v1 {n}:v1", ref=ref, n=r.name("frommyreg"))


def pull_wrong_tag_of_busybox(r):
    _registry_with_push(r)
    r.cli("tag busybox:1.35.0 {n}:v1", n=r.name("frommyreg"))


def _shop(r):
    return r.client.containers.run(NGINX, name=r.name("shop"), detach=True)


def link_py(r):
    _shop(r)
    r.client.containers.run(
        BUSYBOX, ["sleep", "3600"], name=r.name("buyer"), links={r.name("shop"): "store"}, detach=True
    )


def link_cli(r):
    _shop(r)
    r.cli("run -d --name {b} --link {s}:store busybox:1.35.0 sleep 3600", b=r.name("buyer"), s=r.name("shop"))


def link_cli_user_network(r):  # --link on a user-defined network: no variables, the alias in its DNS
    net = r.name("net")
    r.cli("network create {n}", n=net)
    r.cli("run -d --name {s} --network {n} {img}", s=r.name("shop"), n=net, img=NGINX)
    r.cli(
        "run -d --name {b} --network {n} --link {s}:store busybox:1.35.0 sleep 3600",
        b=r.name("buyer"),
        n=net,
        s=r.name("shop"),
    )


def link_wrong_no_link(r):
    _shop(r)
    r.cli("run -d --name {b} busybox:1.35.0 sleep 3600", b=r.name("buyer"))


def link_wrong_alias(r):
    _shop(r)
    r.cli("run -d --name {b} --link {s}:shop busybox:1.35.0 sleep 3600", b=r.name("buyer"), s=r.name("shop"))


def _dockerfile(r, text: str) -> Path:
    return _context(r, "ctx", {"Dockerfile": text})


def cmd_py(r):
    d = _dockerfile(r, 'FROM busybox:1.35.0\nCMD ["echo", "hello from my Dockerfile"]\n')
    r.client.images.build(path=str(d), tag=r.name("greeter") + ":1", rm=True)


def cmd_cli(r):
    d = _dockerfile(r, 'FROM busybox:1.35.0\nCMD ["echo", "hello from my Dockerfile"]\n')
    r.cli("build -q -t {t} {d}", t=r.name("greeter") + ":1", d=d)


def cmd_cli_entrypoint_shell_form(r):  # ENTRYPOINT instead of CMD, shell form
    d = _dockerfile(r, "FROM busybox:1.35.0\nENTRYPOINT echo hello from my Dockerfile\n")
    r.cli("build -q -t {t} {d}", t=r.name("greeter") + ":1", d=d)


def buildkit(r, ctx, tag: str) -> None:
    """Build as chapter 08's cells do: BuildKit, through the real ``docker buildx build``."""
    from dockercourse.lessonkit.buildkit import build

    build(r.client, ctx, tag, show=False)


def cmd_buildkit(r):
    d = _dockerfile(r, 'FROM busybox:1.35.0\nCMD ["echo", "hello from my Dockerfile"]\n')
    buildkit(r, d, r.name("greeter") + ":1")


def cmd_wrong_text(r):
    d = _dockerfile(r, 'FROM busybox:1.35.0\nCMD ["echo", "hello"]\n')
    r.cli("build -q -t {t} {d}", t=r.name("greeter") + ":1", d=d)


def cmd_wrong_base(r):
    d = _dockerfile(r, f'FROM {DEBIAN}\nCMD ["echo", "hello from my Dockerfile"]\n')
    r.cli("build -q -t {t} {d}", t=r.name("greeter") + ":1", d=d)


VARIANTS = {
    "02.hello": [
        (hello_py, True),
        (hello_cli, True),
        (hello_cli_detached_sh, True),
        (hello_wrong_image, False),
        (hello_never_started, False),
    ],
    "04.ticker": [
        (ticker_py, True),
        (ticker_cli_dit, True),
        (ticker_cli_d, True),
        (ticker_no_label, False),
        (ticker_created_only, False),
    ],
    "04.copy": [(copy_py, True), (copy_cli, True), (copy_wrong_exec, False), (copy_wrong_own_command, False)],
    "04.exec": [
        (exec_py, True),
        (exec_cli, True),
        (exec_cli_workdir, True),
        (exec_wrong_cp, False),
        (exec_wrong_own_command, False),
    ],
    "04.killed": [
        (killed_py, True),
        (killed_cli, True),
        (killed_wrong_kill, False),
        (killed_wrong_default_timeout, False),
    ],
    "03.import": [
        (import_py, True),
        (import_cli_message, True),
        (import_wrong_commit, False),
        (import_wrong_build, False),
        (import_wrong_no_cmd, False),
    ],
    "07.link": [
        (link_py, True),
        (link_cli, True),
        (link_cli_user_network, True),
        (link_wrong_no_link, False),
        (link_wrong_alias, False),
    ],
    "08.cmd": [
        (cmd_py, True),
        (cmd_cli, True),
        (cmd_cli_entrypoint_shell_form, True),
        (cmd_buildkit, True),
        (cmd_wrong_text, False),
        (cmd_wrong_base, False),
    ],
    "05.pull": [
        (pull_py, True),
        (pull_cli_localhost, True),
        (pull_wrong_tag_of_pushed, False),
        (pull_wrong_tag_of_busybox, False),
    ],
}


from check_variants_extra import EXTRA, PARTIAL  # noqa: E402  (the other exercises' tables; they import helpers above)

VARIANTS.update(EXTRA)


def _params():
    for ex_id, rows in VARIANTS.items():
        for fn, ok in rows:
            yield pytest.param(ex_id, fn, ok, id=f"{ex_id}-{fn.__name__}-{'right' if ok else 'wrong'}")


@pytest.mark.parametrize("ex_id, step, right", list(_params()))
@pytest.mark.timeout(120)
def test_variant(ex_id, step, right, engine, busybox, tmp_path):
    chapter = ex_id.split(".")[0]
    ns = Namespace(chapter=chapter, tag="v" + uuid.uuid4().hex[:6])
    client = connect(namespace=ns)
    run = Run(client, ns, tmp_path, engine_url(engine), _docker_cli())
    ex = checks.load_exercises(chapter)[ex_id]
    before = _nameless(engine)
    try:
        step(run)
        res = checks.run_exercise(ex, engine, ns, hidden=True, wait=4 if right else 0)
        assert res.passed == right, (
            f"{ex_id} {'rejected a right' if right else 'accepted a wrong'} answer: {res.line}"
        )
        assert not res.error, res.line
        credit = PARTIAL.get(step.__name__, 1.0 if right else 0.0)
        assert res.credit == credit, f"{ex_id}: {step.__name__} got credit {res.credit}, not {credit}"
    finally:
        clean(engine, namespace=ns)
        remove_prefixed(engine, ns.prefix)
        _remove_new_nameless(engine, before)
    assert not any(leftovers(engine, namespace=ns).values())


def _nameless(engine) -> set[str]:
    return {
        r["Id"]
        for r in engine.api.images(all=True)
        if not [t for t in r.get("RepoTags") or [] if t != "<none>:<none>"]
    }


def _remove_new_nameless(engine, before: set[str]) -> None:
    """What a variant's terminal build left that no name reaches. A ``docker`` without buildx builds
    with the legacy builder, which keeps an image per step: a multi-stage build's first stage is no
    parent of the final image, so removing the final image's name leaves it (380 MB for 08.tiny's gcc
    stage, once per run of this suite). The course cannot tell a terminal's nameless images from the
    learner's own; the test can: only those made during this variant, never forced."""
    for _ in range(5):  # a step image goes once the one built on it has gone
        removed = 0
        for image_id in _nameless(engine) - before:
            try:
                engine.api.remove_image(image_id)
                removed += 1
            except docker.errors.APIError:
                continue
        if not removed:
            return


@pytest.mark.unit
def test_every_variant_table_has_two_right_with_one_cli_and_two_wrong():
    import inspect

    for ex_id, rows in VARIANTS.items():
        right = [fn for fn, ok in rows if ok]
        wrong = [fn for fn, ok in rows if not ok]
        assert len(right) >= 2 and len(wrong) >= 2, ex_id
        assert any("r.cli(" in inspect.getsource(fn) for fn in right), (
            f"{ex_id}: no right answer through the CLI"
        )
