"""The course's docker-py client (core.namespace.LabellingAPIClient) against an engine's awkward answers,
served over real HTTP by a small local server that answers as the engine did."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker.errors
import pytest

from dockercourse.core.namespace import LIST_RETRIES, LabellingAPIClient, Namespace

pytestmark = pytest.mark.unit

RACED = {"message": "NotFound: content digest sha256:a4379b03cc1b: not found"}


def _engine(answers: list[tuple[int, dict]]):
    """A server that answers ``GET /v1.51/images/json`` with ``answers`` in turn (the last one again)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            status, body = answers[min(len(seen), len(answers)) - 1]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = LabellingAPIClient(
        version="1.51",
        base_url=f"tcp://127.0.0.1:{server.server_address[1]}",
        namespace=Namespace.for_chapter("05_registries"),
    )
    return server, api, seen


def test_an_image_list_that_met_a_removal_is_asked_again():
    # chapter 05 graded twice at once on one engine: the student copy's `client.api.images()` met the
    # master's `images.remove` (the VM engine, Docker 28.5, containerd store, 2026-12-06)
    server, api, seen = _engine(
        [(404, RACED), (404, RACED), (200, [{"Id": "sha256:1", "RepoTags": ["x:1"]}])]
    )
    try:
        assert api.images() == [{"Id": "sha256:1", "RepoTags": ["x:1"]}]
        assert len(seen) == 3
    finally:
        server.shutdown()


def test_a_listing_that_keeps_failing_is_reported_and_other_404s_are_not_retried():
    server, api, seen = _engine([(404, RACED)])
    try:
        with pytest.raises(docker.errors.NotFound, match="content digest"):
            api.images()
        assert len(seen) == 1 + LIST_RETRIES  # bounded: the engine's error, not a hang
    finally:
        server.shutdown()
    server, api, seen = _engine([(404, {"message": "page not found"})])
    try:
        with pytest.raises(docker.errors.NotFound):
            api.images()
        assert len(seen) == 1
    finally:
        server.shutdown()
