"""Host folders shared into the VM engine's guest: which, and how qemu and the guest see them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from dockercourse.vm import shares

pytestmark = pytest.mark.unit


def test_the_temporary_folder_is_shared_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKERCOURSE_VM_SHARES", raising=False)
    assert shares.configured() == [Path(tempfile.gettempdir()).resolve()]
    monkeypatch.setenv("DOCKERCOURSE_VM_SHARES", "none")
    assert shares.configured() == []
    monkeypatch.setenv("DOCKERCOURSE_VM_SHARES", f"{tmp_path}:{tmp_path / 'b'}")
    assert shares.configured() == [tmp_path.resolve(), (tmp_path / "b").resolve()]


def test_only_folders_whose_paths_survive_the_command_lines_are_shared(tmp_path):
    (tmp_path / "a" / "inner").mkdir(parents=True)
    (tmp_path / "with space").mkdir()
    (tmp_path / "file").write_text("x")
    lines: list[str] = []
    got = shares.usable(
        [tmp_path / "a" / "inner", tmp_path / "a", tmp_path / "with space", tmp_path / "file", Path("/")],
        lines.append,
    )
    assert got == [tmp_path / "a"]  # the inner folder is shared with it
    text = "\n".join(lines)
    assert "with space is not shared" in text and "space, comma" in text
    assert "file is not shared into the VM: not a folder" in text
    assert "/ is not shared into the VM: the root folder is never shared" in text


def test_each_folder_is_a_9p_device_the_guest_mounts_at_the_same_path():
    paths = [Path("/tmp"), Path("/home/ada/work")]
    assert shares.qemu_args(paths) == [
        "-fsdev",
        "local,id=dcshare0,path=/tmp,security_model=none",
        "-device",
        "virtio-9p-pci,fsdev=dcshare0,mount_tag=dcshare0",
        "-fsdev",
        "local,id=dcshare1,path=/home/ada/work,security_model=none",
        "-device",
        "virtio-9p-pci,fsdev=dcshare1,mount_tag=dcshare1",
    ]
    assert shares.cmdline(paths) == " dc.share=dcshare0:/tmp dc.share=dcshare1:/home/ada/work"
    assert shares.qemu_args([]) == [] and shares.cmdline([]) == ""
