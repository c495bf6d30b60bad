"""``%docker``: the real docker command from a cell (dockercourse.notebook.cli).

The unit tests check what the cell hands to the shell (expansion, labels, names in a grading run)
with a stand-in ``docker`` that prints its arguments; the kernel tests run the real ``docker``
command against the course's engine in a real Jupyter kernel and look at what the learner sees.
"""

from __future__ import annotations

import os
import stat

import pytest

from dockercourse.core.namespace import Namespace
from dockercourse.notebook import cli


def _echo_cli(tmp_path) -> cli.DockerCLI:
    """A stand-in ``docker`` that prints one argument per line."""
    p = tmp_path / "docker"
    p.write_text('#!/bin/sh\nprintf "<%s>\\n" "$@"\n')
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return cli.DockerCLI(str(p), "0.0", "test")


@pytest.mark.unit
def test_expand_fills_python_expressions_and_leaves_go_templates():
    ns = {"port": 4242, "name": lambda s: "dc02-" + s}
    assert cli.expand("run -p 127.0.0.1:{port}:80 --name {name('web')}", ns) == (
        "run -p 127.0.0.1:4242:80 --name dc02-web"
    )
    go = "ps --format '{{.Names}}\\t{{json .Ports}}'"
    assert cli.expand(go, ns) == go
    assert cli.expand("echo {no_such_name} {port}", ns) == "echo {no_such_name} 4242"


@pytest.mark.unit
def test_labels_go_to_the_commands_that_create(tmp_path, capfd):
    r = cli.Runner(_echo_cli(tmp_path), Namespace(chapter="02"))
    labels = ["<--label>", "<io.dockercourse.chapter=02>"]
    for line, first in [
        ("run --rm busybox echo 'two words'", ["<run>"]),
        ("container create busybox", ["<container>", "<create>"]),
        ("volume create dc02-v", ["<volume>", "<create>"]),
        ("network create dc02-n", ["<network>", "<create>"]),
        ("buildx build -t dc02-i .", ["<buildx>", "<build>"]),
    ]:
        assert r.run(line, {}) == 0
        out = capfd.readouterr().out.split()
        assert out[: len(first)] == first, (line, out)
        assert all(x in out for x in labels), (line, out)
    assert r.run("run --rm busybox echo 'two words'", {}) == 0
    assert "<two words>" in capfd.readouterr().out  # the learner's quoting holds
    assert r.run("ps -a --format '{{.Names}}'", {}) == 0
    assert capfd.readouterr().out.split() == ["<ps>", "<-a>", "<--format>", "<{{.Names}}>"]


@pytest.mark.unit
def test_a_cell_of_lines_and_a_grading_runs_names(tmp_path, capfd):
    r = cli.Runner(_echo_cli(tmp_path), Namespace(chapter="02", tag="g1a2b"))
    assert r.run("docker stop dc02-web\n\ndocker rm dc02-web | tr -d '<>'", {}, line=False) == 0
    out = capfd.readouterr().out.split()
    assert out == ["<stop>", "<dc02g1a2b-web>", "rm", "dc02g1a2b-web"]


@pytest.mark.unit
def test_a_failing_command_says_its_status_and_the_cell_goes_on(tmp_path, capfd):
    p = tmp_path / "docker"
    p.write_text('#!/bin/sh\necho "Error response from daemon: No such container: $2" >&2\nexit 1\n')
    p.chmod(0o755)
    r = cli.Runner(cli.DockerCLI(str(p), "0.0", "test"), Namespace(chapter="02"))
    assert r.run("rm dc02-nosuch", {}) == 1
    out, err = capfd.readouterr()
    assert out == "Error response from daemon: No such container: dc02-nosuch\n"
    assert err == "(the docker command exited with status 1)\n"


@pytest.mark.unit
def test_without_a_docker_command_one_line(capfd, monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_DOCKER_CLI", "/nonexistent/docker")
    assert cli.find_cli() is None
    assert "none found" in cli.banner(None)
    assert cli.Runner(None, Namespace(chapter="02")).run("ps", {}) == 127
    out, err = capfd.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "No `docker` command" in err
    assert cli.Runner(None, Namespace(chapter="02")).run("  ", {}) == 2


@pytest.mark.unit
def test_the_course_cli_gets_its_own_config_and_plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    own = cli.DockerCLI("/x/docker", "28.5.2", "course", str(plugins))
    env = cli.Runner(own, Namespace(chapter="02"), "unix:///run/x.sock").env()
    cfg = tmp_path / "cache" / "dockercourse" / "docker-config" / "config.json"
    assert env["DOCKER_CONFIG"] == str(cfg.parent) and str(plugins) in cfg.read_text()
    assert env["BUILDKIT_PROGRESS"] == "plain" and env["DOCKER_CLI_HINTS"] == "false"
    theirs = cli.Runner(cli.DockerCLI("/usr/bin/docker", "29.0", "PATH"), Namespace(chapter="02")).env()
    assert theirs.get("DOCKER_CONFIG") == os.environ.get("DOCKER_CONFIG")  # the learner's own is kept


# ---------------------------------------------------------------- a real kernel, the real docker command


@pytest.fixture
def kernel(request):
    from test_errors_kernel import Kernel

    from dockercourse.core.cleanup import clean, leftovers
    from dockercourse.core.engine import connect

    engine = connect()
    tag = "m" + os.urandom(3).hex()
    env = {**os.environ, "DOCKERCOURSE_NS": tag, **getattr(request, "param", {})}
    k = Kernel(env)
    k.setup = k.run("from dockercourse import setup\ncourse = setup('02')\nclient = course.client")
    yield k, engine, tag
    k.close()
    ns = Namespace(chapter="02", tag=tag)
    clean(engine, namespace=ns)
    assert not any(leftovers(engine, namespace=ns).values())


def _streams(outs) -> tuple[str, str, list]:
    text = {"stdout": "", "stderr": ""}
    for t, c in outs:
        if t == "stream":
            text[c["name"]] += c["text"]
    return text["stdout"], text["stderr"], [c for t, c in outs if t == "error"]


def test_docker_cells_in_a_kernel(kernel):
    k, engine, tag = kernel
    out, _, errors = _streams(k.setup)
    assert "docker command: Docker CLI " in out and not errors
    out, err, errors = _streams(k.run("%docker run --name dc02-cli busybox:1.35.0 echo hi from the cli"))
    assert out == "hi from the cli\n" and not err and not errors
    c = engine.containers.get(f"dc02{tag}-cli")  # a grading run's name, as for the course's client
    assert c.labels["io.dockercourse.chapter"] == "02" and c.labels["io.dockercourse.ns"] == f"dc02{tag}-"

    out, err, errors = _streams(k.run("%docker rm dc02-nosuch"))
    assert "No such container" in out and err == "(the docker command exited with status 1)\n" and not errors

    out, err, errors = _streams(k.run("%docker run -it --rm busybox:1.35.0 true"))
    assert "not a TTY" in out and "has no terminal" in err and not errors

    out, _, _ = _streams(k.run("port = 4242\n%docker run --rm busybox:1.35.0 echo {port} '{{.x}}'"))
    assert out == "4242 {{.x}}\n"

    cell = "%%docker\ndocker ps -a --filter name=dc02-cli --format '{{.Names}} {{.Status}}' | cut -c1-4\n"
    out, err, errors = _streams(k.run(cell + "docker inspect --format '{{.State.ExitCode}}' dc02-cli"))
    assert out == "dc02\n0\n" and not err and not errors

    out, _, errors = _streams(k.run("course.cleanup()"))
    assert "removed 1 container" in out and not errors


@pytest.mark.parametrize("kernel", [{"DOCKERCOURSE_DOCKER_CLI": "/nonexistent/docker"}], indirect=True)
def test_without_a_docker_command_the_notebook_runs_on(kernel):
    k, _, _ = kernel
    out, _, errors = _streams(k.setup)
    assert "docker command: none found" in out and not errors
    out, err, errors = _streams(k.run("%docker ps -a\nprint('next line ran')"))
    assert out == "next line ran\n" and "No `docker` command" in err and not errors
