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


def _response(status: int, body: dict) -> requests.Response:
    r = requests.Response()
    r.status_code, r.reason, r._content = status, "Internal Server Error", json.dumps(body).encode()
    r.url = "http://engine/v1.41/images/127.0.0.1:5599/x/push?tag=v1"
    return r


def test_the_course_client_turns_an_unreadable_refusal_into_an_api_error():
    # the course's client (core.namespace) reads Podman's stream-shaped refusal, so a cell's
    # `except docker.errors.APIError` around a push catches it as it does on Docker
    from dockercourse.core.namespace import LabellingAPIClient, Namespace

    api = LabellingAPIClient(
        version="1.41", base_url="tcp://127.0.0.1:9", namespace=Namespace.for_chapter("05_registries")
    )
    msg = "checking whether a blob sha256:b78c exists in 127.0.0.1:5599/x: authentication required"
    with pytest.raises(docker.errors.APIError) as caught:
        api._raise_for_status(_response(500, {"errorDetail": {"message": msg}, "error": msg}))
    assert caught.value.explanation == msg and caught.value.response.status_code == 500
    assert isinstance(caught.value.__cause__, requests.exceptions.HTTPError)
    assert explain_error(caught.value).startswith(
        "The engine refused: 500 Internal Server Error: checking whether"
    )
    with pytest.raises(docker.errors.NotFound):
        api._raise_for_status(_response(404, {"error": "no such manifest"}))
    # docker-py's own reading is unchanged where it can read the answer, and a body without text
    # still raises docker-py's KeyError (nothing invented)
    with pytest.raises(docker.errors.APIError) as plain:
        api._raise_for_status(_response(500, {"message": "plain"}))
    assert plain.value.explanation == "plain"
    with pytest.raises(KeyError):
        api._raise_for_status(_response(500, {"other": 1}))
    api._raise_for_status(_response(200, {}))  # no error: nothing raised
