"""A grading kernel that dies before its first reply: started once more, and its last words kept.

Once in CI a fresh sandbox Python's kernel died before it answered, and the submission became a
"grader error" with nothing to say why (the kernel's stderr went nowhere). Here real kernels really
die at start: a kernel spec whose launcher exits with a message before it runs ipykernel, the first
time only or every time. Real engine: the fixture chapter's checks run against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dockercourse.grading.execute import worker_task
from dockercourse.grading.results import SubmissionGrade

FIXTURE = Path(__file__).parent / "fixtures" / "course"
MASTER = FIXTURE / "notebooks" / "90_fixture.ipynb"

LAUNCHER = """#!/bin/sh
# dies before ipykernel starts: every time, or only the first time (a marker file remembers)
if [ "$DIES" = always ] || [ ! -e "$MARKER" ]; then
    : > "$MARKER"
    echo "simulated crash at start: libfoo.so.1 not found" >&2
    exit 3
fi
exec "$PYTHON" -m ipykernel_launcher -f "$1"
"""


def _kernel(tmp_path: Path, monkeypatch, dies: str) -> str:
    share = tmp_path / "share" / "jupyter" / "kernels" / "dies"
    share.mkdir(parents=True)
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    spec = {"argv": ["/bin/sh", str(launcher), "{connection_file}"], "display_name": "dies"}
    (share / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.setenv("DIES", dies)
    monkeypatch.setenv("MARKER", str(tmp_path / "started-once"))
    monkeypatch.setenv("PYTHON", sys.executable)
    return "dies"


def _grade(kernel: str, tag: str) -> SubmissionGrade:
    kw = dict(source=str(MASTER), root=str(FIXTURE), tag=tag, kernel_name=kernel, cell_timeout=60)
    return SubmissionGrade.from_dict(worker_task(kw))


def test_a_kernel_that_dies_once_at_start_is_started_again(tmp_path, monkeypatch):
    g = _grade(_kernel(tmp_path, monkeypatch, "once"), "gkstart1")
    assert g.status == "ok", g.notes
    assert [x.passed for x in g.exercises] == [True, True, True]  # the master notebook, graded in full
    said = [n for n in g.notes if "started once more" in n]
    assert len(said) == 1 and "libfoo.so.1 not found" in said[0], g.notes


def test_a_kernel_that_never_starts_is_a_grader_error_with_its_last_words(tmp_path, monkeypatch):
    g = _grade(_kernel(tmp_path, monkeypatch, "always"), "gkstart2")
    assert g.status == "grader error", g.notes
    assert any("started once more" in n for n in g.notes)
    assert any(n.startswith("The kernel's last words:") and "libfoo.so.1 not found" in n for n in g.notes)
    assert any("Kernel died before replying" in n for n in g.notes), g.notes
    assert not any(x.passed for x in g.exercises)


@pytest.mark.unit
def test_the_stderr_tail_keeps_only_the_end_of_a_flood():
    import os

    from dockercourse.grading.execute import _StderrTail

    tail = _StderrTail(keep=100)
    for _ in range(200):
        os.write(tail.fd, b"x" * 1000 + b"\n")  # 200 kB through a pipe of 64 kB: never blocks
    os.write(tail.fd, b"the end\n")
    assert tail.text(chars=20).endswith("x the end") and len(tail.data) == 100
