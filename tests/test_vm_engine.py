"""The VM engine (issue 9): initramfs writer, module resolution, qemu boot, and a Docker
engine in a VM run by an unprivileged user.

Fast tests need nothing. The slow ones need qemu (apt-get install qemu-system-x86) and,
for the engine, Debian's docker.io, iptables, busybox-static and e2fsprogs; they are
skipped with the reason when those are missing. The first engine test builds the VM's
system disk (about 2-3 minutes under TCG on 2 cores); later runs reuse it from the cache.
"""

from __future__ import annotations

import gzip
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockercourse.engine import CourseError
from dockercourse.qemu import boot as qboot
from dockercourse.qemu import initramfs, kernel

REPO = Path(__file__).resolve().parents[1]
HAVE_QEMU = qboot.qemu_binary() is not None
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu not installed (apt-get install -y qemu-system-x86)")
TEST_USER = "dcvmtest"


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes, int, int]]:
    """name -> (mode, data, rdevmajor, rdevminor) from a newc archive."""
    out, pos = {}, 0
    while True:
        hdr = data[pos:pos + 110]
        assert hdr[:6] == b"070701", hdr[:6]
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, rmaj, rmin)


def test_initramfs_newc(tmp_path):
    src = tmp_path / "tool"
    src.write_bytes(b"\x7fELF fake")
    src.chmod(0o755)
    out = initramfs.build(tmp_path / "i.gz", {"bin/tool": src, "etc/motd": b"hello\n"},
                          "#!/bin/sh\necho hi\n", {"bin/sh": "busybox"})
    entries = _read_cpio(gzip.decompress(out.read_bytes()))
    assert entries["init"][0] & 0o777 == 0o755 and entries["init"][1].startswith(b"#!/bin/sh")
    assert entries["bin/tool"][1] == b"\x7fELF fake" and entries["bin/tool"][0] & 0o111
    assert entries["etc/motd"] == (0o100644, b"hello\n", 0, 0)
    assert entries["bin/sh"][0] & 0o170000 == 0o120000 and entries["bin/sh"][1] == b"busybox"
    assert entries["dev/console"][0] & 0o170000 == 0o020000 and entries["dev/console"][2:] == (5, 1)
    assert entries["bin"][0] & 0o170000 == 0o040000


def test_modules_resolved_dependencies_first(tmp_path, monkeypatch):
    """A fake kernel tree: modules.dep is generated from .modinfo when missing."""
    moddir = tmp_path / "lib/modules/9.9.9-test"
    for rel, deps in [("kernel/a/base.ko", ""), ("kernel/b/mid.ko", "base"), ("kernel/c/top-mod.ko", "mid,base")]:
        p = moddir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x7fELF...\0license=GPL\0depends=" + deps.encode() + b"\0vermagic=9.9.9\0")
    (moddir / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    img = tmp_path / "boot/vmlinuz-9.9.9-test"
    img.parent.mkdir()
    img.write_bytes(b"kernel")
    monkeypatch.setenv("DOCKERCOURSE_VM_KERNEL", str(img))
    monkeypatch.setenv("DOCKERCOURSE_VM_MODULES", str(moddir))
    monkeypatch.setattr(kernel, "_CURRENT", None)
    kernel._ensure_depmod(moddir)
    mods = kernel.get_modules(["top_mod", "ext4"])
    assert list(mods) == ["base", "mid", "top_mod"]
    assert mods["top_mod"] == moddir / "kernel/c/top-mod.ko"
    with pytest.raises(CourseError, match="no module 'nope'"):
        kernel.get_modules(["nope"])
    monkeypatch.setattr(kernel, "_CURRENT", None)


def test_cli_status_without_vm(tmp_path, monkeypatch, capsys):
    from dockercourse import vmengine

    monkeypatch.setenv("DOCKERCOURSE_VM_STATE", str(tmp_path / "state"))
    assert vmengine.main(["vm", "status", "--name", "nothing-here"]) == 3
    assert "not running" in capsys.readouterr().out


def test_kvm_forced_off(monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_VM_ACCEL", "tcg")
    assert qboot.kvm_usable() is False


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tiny_vm_reaches_init(tmp_path):
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox not installed (apt-get install -y busybox-static)")
    k = kernel.get_kernel()
    rd = initramfs.build(tmp_path / "rd.gz", {"bin/busybox": Path(bb)},
                         "#!/bin/busybox sh\n/bin/busybox echo init reached\n/bin/busybox poweroff -f\n")
    with qboot.boot(k, rd, "quiet", 128, accel="auto", wait_for=b"init reached", timeout=90) as b:
        t = b.wait_for(b"init reached", 1)
        assert 0 < t < 90
        assert b.accel in ("kvm", "tcg")
        assert b.rss_bytes() > 0
        pid, tmp = b.proc.pid, b.tmpdir
    assert not Path(f"/proc/{pid}").exists() or b.proc.poll() is not None
    assert tmp is None or not Path(tmp).exists()


def _as_test_user() -> list[str] | None:
    """Command prefix that runs as an unprivileged user (created when we are root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        r = subprocess.run(["useradd", "-m", TEST_USER], capture_output=True, text=True)
        if r.returncode != 0:
            return None
    return ["runuser", "-u", TEST_USER, "--"]


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_engine_vm_unprivileged_up_run_down():
    """`engine vm up` as a user with no privileges, a container and chapter 02 (nbval) through it,
    `down` leaves nothing."""
    missing = [b for b in ("dockerd", "containerd", "runc", "mke2fs") if not shutil.which(b)
               and not os.path.exists(f"/usr/sbin/{b}") and not os.path.exists(f"/sbin/{b}")]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (apt-get install -y docker.io iptables busybox-static e2fsprogs)")
    prefix = _as_test_user()
    if prefix is None:
        pytest.skip(f"cannot create the unprivileged user {TEST_USER}")
    # the test user cannot read root's venv: run the work tree with this interpreter's
    # site-packages on the path only when they are readable; else the system python
    py = sys.executable
    if prefix and subprocess.run([*prefix, py, "-c", "import docker"], capture_output=True).returncode != 0:
        py = "/usr/bin/python3"
        if subprocess.run([*prefix, py, "-c", "import docker"], capture_output=True).returncode != 0:
            home = Path(pwd.getpwnam(TEST_USER).pw_dir)
            venv = home / "venv"
            if not (venv / "bin/python").exists():
                subprocess.run([*prefix, py, "-m", "venv", str(venv)], check=True, capture_output=True)
                subprocess.run([*prefix, str(venv / "bin/pip"), "install", "-q", "docker>=6.1,<8", "requests<3"],
                               check=True, capture_output=True, timeout=300)
            py = str(venv / "bin/python")
    env = ["env", f"PYTHONPATH={REPO / 'src'}"]
    cli = [*prefix, *env, py, "-c", "import sys; from dockercourse.cli import main; sys.exit(main())"]
    images = "busybox,debian,python,nginx"  # what chapter 02 uses
    up = subprocess.run([*cli, "engine", "vm", "up", "--name", "pytest", "--images", images, "--export"],
                        capture_output=True, text=True, timeout=400)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        host = up.stdout.strip().split("=", 1)[1]
        assert host.startswith("tcp://127.0.0.1:")
        run = subprocess.run(
            [*prefix, *env, f"DOCKER_HOST={host}", py, "-c",
             "import docker,time; c=docker.from_env(timeout=300); t=time.monotonic();"
             "out=c.containers.run('busybox:1.35.0', ['sh','-c','echo hello from $(uname -n)'], remove=True);"
             "print(out.decode().strip(), round(time.monotonic()-t,1)); print(c.info()['OperatingSystem'])"],
            capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "hello from" in run.stdout
        st = subprocess.run([*cli, "engine", "vm", "status", "--name", "pytest"], capture_output=True, text=True)
        assert "answers" in st.stdout, st.stdout + st.stderr
        # Chapter 02 through the user's VM engine, outputs compared (nbval, strict)
        san = Path(os.environ.get("TMPDIR", "/tmp")) / f"dc-vm-sanitize-{os.getpid()}.cfg"
        san.write_text((REPO / "tests/nbval_sanitize.cfg").read_text() + "\n"
                       + (REPO / "tests/nbval_sanitize_vm.cfg").read_text())
        try:
            nb = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
                 "--nbval-sanitize-with", str(san), "--nbval-cell-timeout", "240", "--noconftest",
                 str(REPO / "notebooks/02_core_concepts.ipynb")],
                capture_output=True, text=True, timeout=900, cwd=REPO,
                env={**os.environ, "DOCKER_HOST": host})
        finally:
            san.unlink()
        assert nb.returncode == 0, nb.stdout[-4000:]
    finally:
        down = subprocess.run([*cli, "engine", "vm", "down", "--name", "pytest"], capture_output=True, text=True,
                              timeout=60)
    assert down.returncode == 0, down.stderr
    time.sleep(0.5)
    port = int(host.rsplit(":", 1)[1])
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the API port still answers after down"
    st = subprocess.run([*cli, "engine", "vm", "status", "--name", "pytest"], capture_output=True, text=True)
    assert st.returncode == 3 and "not running" in st.stdout


def test_reap_stale_and_describe(tmp_path, monkeypatch):
    from dockercourse.qemu import engine as vme

    monkeypatch.setenv("DOCKERCOURSE_VM_STATE", str(tmp_path / "state"))
    dead = vme.state_root() / "w-dead"
    dead.mkdir(parents=True)
    (dead / "state.json").write_text('{"pid": 999999999, "port": 1, "docker_host": "tcp://127.0.0.1:1"}')
    (vme.state_root() / "w-booting").mkdir()  # no state yet: a VM booting now, left alone
    assert vme.reap_stale() == ["w-dead"]
    assert (vme.state_root() / "w-booting").exists()
    assert vme.describe("tcp://127.0.0.1:1") is None
    assert vme.wait_ready("unix:///var/run/docker.sock", timeout=1) is True
