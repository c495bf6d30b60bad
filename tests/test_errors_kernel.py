"""What a learner sees when the engine refuses a cell: a real Jupyter kernel, each kind of error.

Every error from the engine or the course in a learner's cell shows one readable block as the
cell's error output (never nothing, never a long traceback).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupyter_client
import pytest
from relay import Relay

from dockercourse.core import buildcache
from dockercourse.core.cleanup import Sweep, clean, leftovers
from dockercourse.core.engine import connect, engine_url
from dockercourse.core.namespace import Namespace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class Kernel:
    def __init__(self, env: dict):
        self.km, self.kc = jupyter_client.manager.start_new_kernel(
            kernel_name="python3", cwd=str(NOTEBOOKS), env=env
        )

    def run(self, code: str, timeout: float = 120) -> list[tuple[str, dict]]:
        msg_id = self.kc.execute(code)
        outs = []
        while True:
            m = self.kc.get_iopub_msg(timeout=timeout)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            t = m["msg_type"]
            if t == "status" and m["content"]["execution_state"] == "idle":
                return outs
            if t in ("stream", "error", "display_data", "execute_result"):
                outs.append((t, m["content"]))

    def error(self, code: str) -> str:
        outs = self.run(code)
        errors = [c for t, c in outs if t == "error"]
        assert len(errors) == 1, f"expected one error output, got {outs}"
        text = "\n".join(errors[0]["traceback"])
        assert len(text.splitlines()) <= 4, f"not one short block:\n{text}"
        assert "Traceback" not in text and "File " not in text
        return text

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel():
    engine = connect()
    url = engine_url(engine)
    tag = "e" + os.urandom(3).hex()
    env = {**os.environ, "DOCKERCOURSE_NS": tag}
    relay = None
    if url.startswith("unix://"):
        relay = Relay(url[len("unix://") :])
        relay.start()
        env["DOCKER_HOST"] = f"tcp://127.0.0.1:{relay.port}"
    k = Kernel(env)
    k.relay = relay
    outs = k.run(
        "from dockercourse import setup\nfrom dockercourse.core.images import BUSYBOX\n"
        "course = setup('02')\nclient, name = course.client, course.name"
    )
    assert not [o for t, o in outs if t == "error"], outs
    yield k
    k.close()
    ns = Namespace(chapter="02", tag=tag)
    clean(engine, namespace=ns)  # from here: the kernel's engine may have been cut off
    if buildcache.noted(ns.prefix):  # the build cache records of the kernel's builds
        Sweep(engine).build_records(ns.prefix)
    assert not any(leftovers(engine, namespace=ns).values())


@pytest.mark.timeout(180)
def test_each_engine_error_shows_one_block(kernel):
    kernel.run("client.containers.run(BUSYBOX, ['true'], name=name('twice'))")
    text = kernel.error("client.containers.run(BUSYBOX, ['true'], name=name('twice'))")
    assert "409" in text and "already taken" in text and "dc02" in text
    assert ".remove(force=True)" in text and "docker rm -f dc02" in text

    text = kernel.error("client.containers.run('dc02-no-such-image:1', ['true'])")
    # an engine with a registry mirror answers "not found"; one without a network cannot reach Docker Hub
    assert "Image not found" in text or "not found" in text.lower() or "could not reach a registry" in text
    assert "no such host" in text or "not found" in text.lower()

    text = kernel.error("client.containers.get(name('nothing'))")
    assert "No such container" in text and "dc02" in text

    text = kernel.error("client.containers.run(BUSYBOX, ['sh', '-c', 'echo oops >&2; exit 3'], remove=True)")
    assert "exit" in text and "3" in text and "oops" in text

    # a failing build step (chapter 08's BuildKit builds): the build's own message, not "the engine stopped"
    text = kernel.error(
        "import tempfile, pathlib\nfrom dockercourse.lessonkit.build import write_files\n"
        "from dockercourse.lessonkit.buildkit import build\n"
        "ctx = write_files(pathlib.Path(tempfile.mkdtemp(prefix='dc02-build-')), "
        "{'Dockerfile': f'FROM {BUSYBOX}\\nRUN echo oops && exit 3\\n'})\n"
        "build(client, ctx, name('broken') + ':1')"
    )
    kernel.run("import shutil; shutil.rmtree(ctx)")
    assert text.count("The build failed") == 1 and "exit code: 3" in text and "stopped answering" not in text

    # the learner's own KeyError keeps Python's traceback (the course explains only the engine's errors)
    errors = [c for t, c in kernel.run("{'a': 1}['b']") if t == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "KeyError" and errors[0]["evalue"] == "'b'"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors[0]["traceback"]))
    assert "{'a': 1}['b']" in shown and "KeyError: 'b'" in shown

    if kernel.relay is not None:  # the engine stops answering in the middle of the notebook
        kernel.relay.cut()
        text = kernel.error("client.containers.list()")
        assert "stopped answering" in text


def _shown(outs) -> list[dict]:
    """The rich outputs a cell displayed (``display(...)``/its value), as mime bundles."""
    return [c["data"] for t, c in outs if t in ("display_data", "execute_result")]


@pytest.mark.timeout(240)
def test_rerun_answer_then_reset_the_exercise(kernel):
    """The most common slip: running an answer cell twice. The error names the exercise and how to
    start it again; ``course.reset`` removes what that exercise made, and nothing else."""
    engine = connect()
    kernel.run(
        "hello_cell = \"client.containers.run(BUSYBOX, ['echo', 'hello, docker'], name=name('hello'))\""
    )
    kernel.run("exec(hello_cell)\nkeep = client.containers.run(BUSYBOX, ['true'], name=name('keep'))")
    own = engine.containers.run("busybox:1.35.0", ["true"], name="dcown-" + os.urandom(3).hex(), detach=True)
    try:
        text = kernel.error("exec(hello_cell)")
        assert "already taken" in text and "course.reset('02.hello')" in text
        outs = kernel.run("course.reset('02.hello')")
        said = "".join(c.get("text", "") for t, c in outs if t == "stream")
        assert said.startswith("Reset 02.hello (dc02") and "removed 1 containers" in said, outs
        assert not [o for t, o in outs if t == "error"], outs
        assert kernel.run("exec(hello_cell)") == []  # the answer runs again
        names = {c.name for c in engine.containers.list(all=True)}
        assert own.name in names  # not the course's: never touched
        assert any(n.endswith("-keep") and n.startswith("dc02") for n in names)  # another exercise's
    finally:
        own.remove(force=True)


@pytest.mark.timeout(240)
def test_check_nudges_then_hints(kernel):
    first = _shown(kernel.run("check = course.check\ncheck('02.tag')"))
    assert len(first) == 1 and "Nudge:" in first[0]["text/plain"], first
    assert "docker tag" not in first[0]["text/plain"] and "✗" in first[0]["text/html"]
    second = _shown(kernel.run("check('02.tag')"))
    assert "Hint:" in second[0]["text/plain"] and "docker tag" in second[0]["text/plain"]
    asked = _shown(kernel.run("check('02.writable', hint=True)"))
    assert "Hint:" in asked[0]["text/plain"]
    kernel.run("client.images.get(BUSYBOX).tag(name('mybox'), 'v1')")
    done = _shown(kernel.run("check('02.tag')"))
    assert done[0]["text/plain"] == "✓ 02.tag passed: give an image a second name", done
    assert "#2e7d32" in done[0]["text/html"]


@pytest.mark.timeout(180)
def test_bad_input_to_checks_is_one_line(kernel):
    text = kernel.error("course.check('02.nope')")
    assert "No exercise 02.nope" in text and "02.hello" in text
    text = kernel.error("course.check('99.x')")
    assert "No checks for '99.x'" in text
    text = kernel.error("course.check('03.tag')")
    assert "03.tag is an exercise of chapter 03" in text
    text = kernel.error("course.reset('02.nope')")
    assert "No exercise 02.nope" in text
    if kernel.relay is not None:  # the engine is gone: the check says so in its result
        kernel.relay.cut()
        shown = _shown(kernel.run("course.check('02.hello')"))
        assert "does not answer" in shown[0]["text/plain"], shown
