"""Binder's build files (repo2docker reads binder/): a failed step fails the image build, visibly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def _post_build(tmp_path: Path, vm_build_status: int) -> subprocess.CompletedProcess:
    """binder/postBuild as repo2docker runs it, with `pip` and `dockercourse` first on PATH standing for
    the install and the VM engine's build (which takes minutes and the network): their exit status is
    what this script must act on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text('#!/bin/sh\necho pip "$@" >> "$CALLS"\n')
    (bin_dir / "dockercourse").write_text(
        '#!/bin/sh\necho "DOCKERCOURSE_VM_SEED=$DOCKERCOURSE_VM_SEED" dockercourse "$@" >> "$CALLS"\n'
        f"[ {vm_build_status} -eq 0 ] || echo 'vm: cannot fetch the kernel' >&2\nexit {vm_build_status}\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}
    return subprocess.run(
        ["bash", str(REPO / "binder" / "postBuild")], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_a_failed_vm_build_fails_the_binder_build_with_a_reason(tmp_path):
    r = _post_build(tmp_path, 3)
    assert r.returncode != 0, "the image would build without the VM's disk and rebuild it at every launch"
    assert "vm: cannot fetch the kernel" in r.stderr and "postBuild: FAILED" in r.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    # the images come from the kit in the VM, never from Docker Hub
    assert calls == ["pip install --no-deps -e .", "DOCKERCOURSE_VM_SEED=kit dockercourse engine vm build"]


def test_a_good_vm_build_passes(tmp_path):
    r = _post_build(tmp_path, 0)
    assert r.returncode == 0, r.stderr
    assert "FAILED" not in r.stderr


def test_binder_installs_qemu_img_for_the_compact_disk():
    packages = [
        line.strip()
        for line in (REPO / "binder" / "apt.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {"qemu-system-x86", "qemu-utils"} <= set(packages)


def test_binder_serves_published_pages_through_the_session():
    """On Binder the browser is not on the session's machine: course.link prints
    <session>/proxy/PORT/, which jupyter-server-proxy serves."""
    text = (REPO / "binder" / "environment.yml").read_text()
    assert "\n  - jupyter-server-proxy" in text
