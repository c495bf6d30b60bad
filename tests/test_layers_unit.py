"""progress_by_layer: a pull or push stream grouped by layer, as Docker and Podman send it."""

from __future__ import annotations

import pytest

from dockercourse.errors import StreamError
from dockercourse.lessonkit.layers import progress_by_layer

pytestmark = pytest.mark.unit


def test_dockers_pull_stream():
    events = [
        {"status": "Pulling from dc03-greeting", "id": "1.0"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
        {"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "id": "aaa"},
        {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
        {"status": "Digest: sha256:0123"},
        {"status": "Status: Downloaded newer image for 127.0.0.1:5000/dc03-greeting:1.0"},
    ]
    steps = progress_by_layer(events)
    assert list(steps) == ["", "layer 1"]
    assert steps[""][0] == "Pulling from dc03-greeting" and steps[""][-1].startswith("Status: Downloaded")
    assert steps["layer 1"][-1] == "Pull complete"


def test_a_stream_with_only_layer_events_still_has_the_general_entry():
    # Podman's compat API can send every message with a layer id (no "Status: ..." line)
    steps = progress_by_layer([{"status": "Pull complete", "progressDetail": {}, "id": "bbb"}])
    assert steps[""] == [] and steps["layer 1"] == ["Pull complete"]


def test_an_error_in_the_stream_raises_with_the_engines_words():
    with pytest.raises(StreamError, match="authentication required"):
        progress_by_layer([{"error": "x", "errorDetail": {"message": "authentication required"}}])
