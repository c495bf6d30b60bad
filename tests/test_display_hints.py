"""Known engine failures get a hint in the learner's one-line error block (notebook.display)."""

from __future__ import annotations

import json

import docker.errors
import pytest
import requests

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


def _docker_py_reading(status: int, body: dict) -> BaseException:
    """What docker-py (its own code) raises for an engine's error answer with this status and body."""
    r = requests.Response()
    r.status_code, r.reason, r._content = status, "Internal Server Error", json.dumps(body).encode()
    r.url = "http://engine/v1.41/images/127.0.0.1:5599/x/push?tag=v1"
    try:
        try:
            r.raise_for_status()
        except requests.exceptions.HTTPError as e:
            raise docker.errors.create_api_error_from_http_exception(e) from e
    except Exception as e:  # noqa: BLE001 - whatever docker-py raises is the subject
        return e
    raise AssertionError("docker-py raised nothing")


def test_a_refusal_docker_py_cannot_read_says_what_the_engine_said():
    # Podman 5.4's answer to a push that needs a login (read on the Podman VM engine, 2026-12-06)
    msg = "checking whether a blob sha256:b78c exists in 127.0.0.1:5599/x: authentication required"
    e = _docker_py_reading(500, {"errorDetail": {"message": msg}, "error": msg})
    assert isinstance(e, KeyError)  # docker-py 7.1's own reading of it
    text = explain_error(e)
    assert text.startswith("The engine refused: 500 Internal Server Error: checking whether")
    assert "authentication required" in text and "Podman" in text


def test_other_key_errors_are_not_explained_as_the_engines():
    assert explain_error(KeyError("message")) == "KeyError: 'message'"
    e = _docker_py_reading(500, {"message": "plain"})
    assert isinstance(e, docker.errors.APIError) and "plain" in explain_error(e)
