"""A chapter's temporary folders (dockercourse.notebook.folders): removed by cleanup, when the kernel
stops, and after a crash by the next setup of the chapter; never a folder of a kernel that still runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from dockercourse.notebook import folders

pytestmark = pytest.mark.unit
PREFIX = "dcunit9-"  # a prefix no chapter has


def _kernel(tmp: Path, code: str) -> subprocess.Popen:
    """A Python process standing in for a notebook's kernel: makes a folder, prints it, then ``code``."""
    script = textwrap.dedent(f"""
        import sys, time
        from dockercourse.notebook import folders
        p = folders.make({PREFIX!r}, "build")
        (p / "Dockerfile").write_text("FROM busybox\\n")
        print(p, flush=True)
        """) + textwrap.dedent(code)
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)


def test_a_folder_is_private_named_for_its_chapter_and_removed_by_cleanup(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    p = folders.make(PREFIX, "build")
    assert p.parent == tmp_path and p.name.startswith(f"{PREFIX}build-{os.getpid()}-")
    assert p.stat().st_mode & 0o777 == 0o700
    (p / "f").write_text("x")
    assert folders.remove_stale(PREFIX) == 0 and p.exists()  # this kernel's own: kept
    assert folders.remove_made(PREFIX) == 1 and not p.exists()
    assert folders.remove_made(PREFIX) == 0
    with pytest.raises(ValueError, match="lower-case"):
        folders.make(PREFIX, "../x")


def test_a_stopped_kernels_folder_goes_with_it_a_killed_ones_at_the_next_setup(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stopped = _kernel(tmp_path, "")  # ends normally (a restart or shutdown): atexit removes it
    path = Path(stopped.stdout.readline().strip())
    assert stopped.wait(30) == 0 and not path.exists()

    killed = _kernel(tmp_path, "time.sleep(60)\n")
    crashed = Path(killed.stdout.readline().strip())
    running = _kernel(tmp_path, "time.sleep(60)\n")  # the same chapter open in another kernel
    alive = Path(running.stdout.readline().strip())
    try:
        assert folders.remove_stale(PREFIX) == 0 and crashed.exists()  # both kernels still run
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        assert crashed.exists()  # no atexit after SIGKILL
        other = tmp_path / "dcunit9-notes"  # the chapter's prefix but not a course folder: stays
        other.mkdir()
        assert folders.remove_stale(PREFIX) == 1
        assert not crashed.exists() and alive.exists() and other.exists()
    finally:
        running.kill()
        running.wait(30)
