"""What a learner sees when the engine refuses a cell: a real Jupyter kernel, each kind of error.

Every error from the engine or the course in a learner's cell shows one readable block as the
cell's error output (never nothing, never a long traceback).
"""

from __future__ import annotations

import os
from pathlib import Path

import jupyter_client
import pytest
from relay import Relay

from dockercourse.core.cleanup import clean, leftovers
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
    assert not any(leftovers(engine, namespace=ns).values())


@pytest.mark.timeout(180)
def test_each_engine_error_shows_one_block(kernel):
    kernel.run("client.containers.run(BUSYBOX, ['true'], name=name('twice'))")
    text = kernel.error("client.containers.run(BUSYBOX, ['true'], name=name('twice'))")
    assert "409" in text and "already in use" in text and "dc02" in text

    text = kernel.error("client.containers.run('dc02-no-such-image:1', ['true'])")
    assert "Image not found" in text or "not found" in text.lower()

    text = kernel.error("client.containers.get(name('nothing'))")
    assert "No such container" in text and "dc02" in text

    text = kernel.error("client.containers.run(BUSYBOX, ['sh', '-c', 'echo oops >&2; exit 3'], remove=True)")
    assert "exit" in text and "3" in text and "oops" in text

    if kernel.relay is not None:  # the engine stops answering in the middle of the notebook
        kernel.relay.cut()
        text = kernel.error("client.containers.list()")
        assert "stopped answering" in text
