"""Known engine failures get a hint in the learner's one-line error block (notebook.display)."""

from __future__ import annotations

import docker.errors
import pytest

from dockercourse.notebook.display import explain_error

pytestmark = pytest.mark.unit


def test_copy_into_a_container_on_a_kernel_before_6_6():
    # the engine's answer to put_archive/docker cp in the VM engine (Debian's docker.io 28.5, kernel 6.1)
    e = docker.errors.APIError(
        "500 Server Error", explanation="chmod site.conf: via /proc/self/fd/52: no such file or directory"
    )
    text = explain_error(e)
    assert "moby/go-archive#103" in text and "dockercourse doctor" in text and "6.6" in text
    assert text.startswith("The engine refused to copy into the container: chmod site.conf")


def test_other_refusals_keep_the_plain_form():
    e = docker.errors.APIError("500 Server Error", explanation="chmod: operation not permitted")
    assert explain_error(e).startswith("The engine refused: ? : chmod: operation not permitted")


def test_a_failed_build_says_so_not_that_the_engine_is_gone():
    # BuildError is a DockerException: it once fell through to "the engine stopped answering"
    e = docker.errors.BuildError(
        'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3', []
    )
    text = explain_error(e)
    assert text.startswith("The build failed: process")
    assert "exit code: 3" in text and "stopped answering" not in text
