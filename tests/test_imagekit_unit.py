"""The image kit's host side, without an engine: where it keeps its cache, which archive it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockercourse.errors import CourseError
from dockercourse.imagekit import debian

pytestmark = pytest.mark.unit


def test_the_kit_reads_bookworm_its_updates_and_security_fixes_from_debian_mirrors():
    text = debian.sources_text("http://deb.debian.org/debian/")
    assert text.splitlines() == [
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian bookworm main",
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian bookworm-updates main",
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian-security bookworm-security main",
    ]
    # a mirror of another layout (an apt proxy, a local snapshot) gets no guessed security address
    assert len(debian.sources_text("http://127.0.0.1:3142/deb").splitlines()) == 2


def test_an_ordinary_user_keeps_the_kit_cache_in_their_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKERCOURSE_KIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    assert debian.kit_cache() == tmp_path / "dockercourse" / "kit"
    monkeypatch.setattr(debian.os, "geteuid", lambda: 0)
    assert debian.kit_cache() == Path("/var/cache/dockercourse")
    monkeypatch.setenv("DOCKERCOURSE_KIT_CACHE", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    assert debian.kit_cache() == tmp_path / "elsewhere"


def test_the_vm_seed_setting_takes_auto_or_kit(monkeypatch):
    from dockercourse.vm.seed import seed_sources

    monkeypatch.delenv("DOCKERCOURSE_VM_SEED", raising=False)
    assert seed_sources() == "auto"
    monkeypatch.setenv("DOCKERCOURSE_VM_SEED", "kit")
    assert seed_sources() == "kit"
    monkeypatch.setenv("DOCKERCOURSE_VM_SEED", "hub")
    with pytest.raises(CourseError, match="auto or kit"):
        seed_sources()


def test_mirror_port_0_means_no_mirror_as_on_binder(monkeypatch):
    from dockercourse.vm.seed import find_mirror_port

    monkeypatch.setenv("DOCKERCOURSE_MIRROR_PORT", "0")
    assert find_mirror_port() is None


def test_familiar_names_are_dockers_short_form():
    from dockercourse import familiar

    # Podman's fully qualified names (read on the Podman VM engine, 2026-12-06) and Docker's own
    assert familiar("docker.io/library/busybox:1.35.0") == "busybox:1.35.0"
    assert familiar("docker.io/library/busybox@sha256:c85f") == "busybox@sha256:c85f"
    assert familiar("localhost/dc03-greeting:1.0") == "dc03-greeting:1.0"
    assert familiar("docker.io/student/app:1") == "student/app:1"
    for same in ("busybox:1.35.0", "busybox@sha256:c85f", "127.0.0.1:5599/dc05-box:v1", "localhost:5000/x:1"):
        assert familiar(same) == same
