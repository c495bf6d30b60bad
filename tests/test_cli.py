"""The ``dockercourse`` command line, with no engine at all: help, bad arguments, no-engine errors.

Every subcommand and sub-subcommand is discovered from the parser, so a new one is covered
without touching this file. Each case runs ``python -m dockercourse.cli ...`` as a
subprocess whose ``DOCKER_HOST`` points at a socket that does not exist (the toolkit then
raises NoEngineError without trying any other socket) and whose engine state folders are
empty temporary ones, so nothing here talks to, starts or stops an engine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockercourse import cli
from dockercourse.errors import CourseError, NoEngineError, UsageError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
NO_ENGINE = "No Docker engine answers"
#: Modules ``--help`` must not import: the engine's client and the notebook stack are for ``run``.
HEAVY = (
    "docker",
    "requests",
    "urllib3",
    "nbclient",
    "nbformat",
    "jupyter_client",
    "matplotlib",
    "ipywidgets",
    "IPython",
    "tqdm",
)
HELP_SECONDS = 3.0


def _tree(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser)`` of the top command and of every subcommand below it, depth first."""
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sp in action.choices.items():
                if id(sp) not in seen:  # an alias maps to the same parser
                    seen.add(id(sp))
                    yield from _tree(sp, (*path, name))


def _has_subcommands(p: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in p._actions)


TREE = list(_tree(cli.parser()))
PATHS = [path for path, _ in TREE]
GROUPS = [path for path, p in TREE if _has_subcommands(p)]


def _id(path) -> str:
    return " ".join(path) or "dockercourse"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKERCOURSE_NS")
    }
    e.update(
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        PYTHONPATH=str(REPO / "src"),
        DOCKERCOURSE_ROOT=str(REPO),
        DOCKERCOURSE_RUN_DIR=str(tmp / "run"),
        DOCKERCOURSE_STATE=str(tmp / "state"),
        DOCKERCOURSE_VM_STATE=str(tmp / "vm"),
        COLUMNS="100",
    )
    return e


def dc(env, *args, py_opts=()):
    """Run ``python -m dockercourse.cli ARGS``; returns the CompletedProcess and its seconds."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, *py_opts, "-m", "dockercourse.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    return out, time.monotonic() - t0


def test_tree_is_complete():
    """The discovery sees every command, and ``engine`` with its own actions and ``vm``'s."""
    top = {p[0] for p in PATHS if len(p) == 1}
    assert top >= {"doctor", "images", "clean", "check", "bench", "engine", "grade", "release"}
    assert {("engine", a) for a in ("up", "down", "status", "remove", "list", "vm")} <= set(PATHS)
    assert {("engine", "vm", a) for a in ("up", "down", "status", "build")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=_id)
def test_help(env, path):
    """``--help`` prints usage and exits 0, quickly, importing neither docker-py nor the notebook stack."""
    out, seconds = dc(env, *path, "--help", py_opts=("-X", "importtime"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage: " + " ".join(("dockercourse", *path))), out.stdout[:300]
    imported = {
        line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")
    }
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"`{_id(path)} --help` imports {heavy[:8]}: import them inside run()"
    assert "Traceback" not in out.stderr
    assert seconds < HELP_SECONDS, f"`{_id(path)} --help` took {seconds:.1f} s"


@pytest.mark.parametrize("path", PATHS, ids=_id)
def test_unknown_option(env, path):
    """A bad argument: exit 2, one usage line (the command's own) and one error line, nothing on stdout."""
    out, _ = dc(env, *path, "--no-such-option")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith("usage: " + " ".join(("dockercourse", *path))), lines[0]
    assert lines[1].startswith(" ".join(("dockercourse", *path)) + ": error: "), lines[1]
    assert out.stdout == ""


@pytest.mark.parametrize("path", GROUPS, ids=_id)
def test_unknown_subcommand(env, path):
    out, _ = dc(env, *path, "no-such-command")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert (
        len(lines) == 2 and lines[0].startswith("usage: ") and "invalid choice: 'no-such-command'" in lines[1]
    )


@pytest.mark.parametrize("path", GROUPS, ids=_id)
def test_missing_subcommand(env, path):
    out, _ = dc(env, *path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stderr.splitlines()) == 2 and "required" in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("doctor",),
        ("clean",),
        ("clean", "--dry-run", "--chapter", "02"),
        ("check", "02"),
        ("check", "02", "hello"),
        ("images", "--check"),
        ("images",),
        ("engine", "status"),
        ("bench", "--only", "start"),
    ],
    ids=_id,
)
def test_needs_engine(env, args):
    """With no engine: exit 1 and the course's message on what to do; no traceback."""
    out, _ = dc(env, *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert NO_ENGINE in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    if args[0] != "doctor":  # doctor prints its findings (the message is the engine's fix); the rest fail
        assert out.stderr.startswith(f"dockercourse {args[0]}: {NO_ENGINE}"), out.stderr[:300]


@pytest.mark.parametrize(
    "args, says",
    [
        (("check", "99"), "no chapter 99"),
        (("check", "02", "no-such-exercise"), "no exercise 02.no-such-exercise"),
        (("clean", "--ns", "g1"), "--ns needs --chapter"),
        (("clean", "--chapter", "02", "--ns", "Not A Tag"), "namespace tag"),
    ],
    ids=lambda v: _id(v) if isinstance(v, tuple) else None,
)
def test_bad_name_before_the_engine(env, args, says):
    """An unknown chapter or exercise, a bad namespace: one line, exit 2, found before connecting."""
    out, _ = dc(env, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"dockercourse {args[0]}: "), out.stderr
    assert says in out.stderr and NO_ENGINE not in out.stderr
    assert out.stdout == ""


def test_check_not_a_chapter(env):
    out, _ = dc(env, "check", "abc")
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 2 and "not a chapter" in out.stderr


# --------------------------------------------------------------------------- the one error handler


@pytest.mark.parametrize(
    "exc, status, text",
    [
        (CourseError("it went wrong"), 1, "dockercourse doctor: it went wrong\n"),
        (UsageError("no such thing"), 2, "dockercourse doctor: no such thing\n"),
        (NoEngineError(NO_ENGINE), 1, f"dockercourse doctor: {NO_ENGINE}\n"),
        (KeyboardInterrupt(), 130, "dockercourse doctor: interrupted\n"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_error_handler(monkeypatch, capsys, exc, status, text):
    from dockercourse.cli import doctor

    def run(args):
        raise exc

    monkeypatch.setattr(doctor, "run", run)
    assert cli.main(["doctor"]) == status
    assert capsys.readouterr().err == text


def test_a_bug_keeps_its_traceback(monkeypatch):
    from dockercourse.cli import doctor

    def run(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(doctor, "run", run)
    with pytest.raises(ZeroDivisionError):
        cli.main(["doctor"])


def test_main_returns_the_status(capsys):
    assert cli.main(["--help"]) == 0
    assert cli.main(["engine", "list"]) == 0
    assert "28-containerd" in capsys.readouterr().out
    assert cli.main(["no-such-command"]) == 2
