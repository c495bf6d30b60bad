"""The VM engine (issue 9): initramfs writer, module resolution, qemu boot, and a Docker
engine in a VM run by an unprivileged user.

Fast tests need nothing. The slow ones need qemu (apt-get install qemu-system-x86) and,
for the engine, runc, iptables, busybox-static and e2fsprogs (the engine itself, Docker 28.5,
comes from the course's Debian packages, fetched once); they are skipped with the reason
when those are missing. The first engine test builds the VM's system disk (about 3-4
minutes under TCG on 2 cores); later runs reuse it from the cache. The podman flavour's
test also needs mmdebstrap (root, or uidmap for --mode=unshare).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dockercourse.errors import CourseError
from dockercourse.vm import binaries, initramfs, kernel
from dockercourse.vm import boot as qboot

REPO = Path(__file__).resolve().parents[1]
HAVE_QEMU = qboot.qemu_binary() is not None
needs_qemu = pytest.mark.skipif(
    not HAVE_QEMU, reason="qemu not installed (apt-get install -y qemu-system-x86)"
)
TEST_USER = "dcvmtest"


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes, int, int]]:
    """name -> (mode, data, rdevmajor, rdevminor) from a newc archive."""
    out, pos = {}, 0
    while True:
        hdr = data[pos : pos + 110]
        assert hdr[:6] == b"070701", hdr[:6]
        f = [int(hdr[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, rmaj, rmin)


def test_initramfs_newc(tmp_path):
    src = tmp_path / "tool"
    src.write_bytes(b"\x7fELF fake")
    src.chmod(0o755)
    out = initramfs.build(
        tmp_path / "i.gz",
        {"bin/tool": src, "etc/motd": b"hello\n"},
        "#!/bin/sh\necho hi\n",
        {"bin/sh": "busybox"},
    )
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
    for rel, deps in [
        ("kernel/a/base.ko", ""),
        ("kernel/b/mid.ko", "base"),
        ("kernel/c/top-mod.ko", "mid,base"),
    ]:
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
    from dockercourse.cli import main

    monkeypatch.setenv("DOCKERCOURSE_VM_STATE", str(tmp_path / "state"))
    assert main(["engine", "vm", "status", "--name", "nothing-here"]) == 3
    assert "not running" in capsys.readouterr().out


def test_kvm_forced_off(monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_VM_ACCEL", "tcg")
    assert qboot.kvm_usable() is False


@pytest.mark.unit
def test_guest_scripts_are_package_files():
    """The guest's shell scripts are files of the package (read with importlib.resources),
    declared as package data, and what the disks are built from."""
    import tomllib
    from importlib import resources

    from dockercourse.vm import scripts

    folder = resources.files("dockercourse.vm") / "guest"
    on_disk = {p.name for p in folder.iterdir() if p.name.endswith(".sh")}
    assert on_disk == set(scripts.NAMES)
    for name in scripts.NAMES:
        assert (folder / name).is_file()
        text = scripts.text(name)
        assert text.startswith("#!") and text.endswith("\n") and "\r" not in text, name
        assert scripts.data(name) == (folder / name).read_bytes()
    assert "switch_root /newroot /sbin/engine-init" in scripts.text(scripts.STAGE1)
    assert "dockerd" in scripts.text(scripts.STAGE2_DOCKER) and "halt_engine" in scripts.text(
        scripts.STAGE2_DOCKER
    )
    assert "podman system service" in scripts.text(scripts.STAGE2_PODMAN)
    assert "/usr/lib/dockercourse/init.sh" in scripts.text(scripts.PODMAN_ENGINE_INIT)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "vm/guest/*.sh" in data["dockercourse"]
    with pytest.raises(ValueError, match="no guest script"):
        scripts.data("nope.sh")


@pytest.mark.unit
def test_disk_cache_keys_follow_the_guest_scripts(tmp_path, monkeypatch):
    """Editing a guest script makes another system disk (Docker and Podman flavours) and,
    for stage 1, another initramfs: the keys hash the files' bytes."""
    from dockercourse.vm import disk, podman, scripts

    real = {n: scripts.data(n) for n in scripts.NAMES}
    copies = tmp_path / "guest"
    copies.mkdir()
    for n, b in real.items():
        (copies / n).write_bytes(b)
    monkeypatch.setattr(scripts, "_file", lambda name: copies / name)
    monkeypatch.setattr(
        disk, "find_kernel", lambda *a, **k: kernel.KernelInfo(tmp_path / "vmlinuz", "9.9.9", None, "env")
    )
    monkeypatch.setattr(
        binaries,
        "engine_binaries",
        lambda log=print: {
            "source": "packages",
            "version": "28.5.2",
            "versions": {"docker.io": "28.5.2+dfsg4-5"},
            "paths": {},
            "title": "Docker 28.5.2 (test)",
            "fallback_reason": "",
        },
    )
    monkeypatch.setattr(binaries, "require_mke2fs", lambda: None)
    monkeypatch.setenv("DOCKERCOURSE_VM_CACHE", str(tmp_path / "cache"))

    def keys():
        return (
            disk.disk_key(disk.inputs(log=lambda *_: None)),
            disk.initrd_path("9.9.9", disk.DOCKER_MODULES),
            podman._init_digest(),
        )

    before = keys()
    assert before == keys()  # stable
    (copies / scripts.STAGE2_DOCKER).write_bytes(real[scripts.STAGE2_DOCKER] + b"# changed\n")
    docker2 = keys()
    assert docker2[0] != before[0] and docker2[1:] == before[1:]
    (copies / scripts.STAGE1).write_bytes(real[scripts.STAGE1] + b"# changed\n")
    stage1 = keys()
    assert stage1[0] != docker2[0] and stage1[1] != before[1] and stage1[2] == before[2]
    for name in (scripts.STAGE2_PODMAN, scripts.PODMAN_ENGINE_INIT):
        was = podman._init_digest()
        (copies / name).write_bytes(real[name] + b"# changed\n")
        assert podman._init_digest() != was, name


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tiny_vm_reaches_init(tmp_path):
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox not installed (apt-get install -y busybox-static)")
    k = kernel.get_kernel()
    rd = initramfs.build(
        tmp_path / "rd.gz",
        {"bin/busybox": Path(bb)},
        "#!/bin/busybox sh\n/bin/busybox echo init reached\n/bin/busybox poweroff -f\n",
    )
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
    """`engine vm up` as a user with no privileges, a container, a bind mount of a host folder (the
    temporary folder is shared into the VM) and chapter 02 (nbval) through it, `down` leaves nothing."""
    from dockercourse.vm import engine as vme

    # what the VM needs on the host now: qemu, runc, iptables, busybox, mke2fs, and either
    # apt-get/dpkg (the engine comes from the course's Debian packages) or a dockerd
    missing = vme.requirements()
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (apt-get install -y {vme.APT_PACKAGES})")
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
                subprocess.run(
                    [*prefix, str(venv / "bin/pip"), "install", "-q", "docker>=6.1,<8", "requests<3"],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            py = str(venv / "bin/python")
    # the clone may live where the test user cannot read it (a home folder of mode 700, a
    # `mktemp -d` folder): give the user its own readable copy of the toolkit's source
    src_copy = Path(tempfile.mkdtemp(prefix="dc-vmtest-src-"))
    shutil.copytree(
        REPO / "src" / "dockercourse",
        src_copy / "dockercourse",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for d in (src_copy, *[p for p in src_copy.rglob("*") if p.is_dir()]):
        d.chmod(0o755)
    for f in (p for p in src_copy.rglob("*") if p.is_file()):
        f.chmod(0o644)
    env = ["env", f"PYTHONPATH={src_copy}"]
    cli = [*prefix, *env, py, "-c", "import sys; from dockercourse.cli import main; sys.exit(main())"]
    try:
        images = "busybox,debian,python,nginx"  # what chapter 02 uses
        up = subprocess.run(
            [*cli, "engine", "vm", "up", "--name", "pytest", "--images", images, "--export"],
            capture_output=True,
            text=True,
            timeout=400,
        )
        try:
            assert up.returncode == 0, up.stderr[-2000:]
            host = up.stdout.strip().split("=", 1)[1]
            assert host.startswith("tcp://127.0.0.1:")
            run = subprocess.run(
                [
                    *prefix,
                    *env,
                    f"DOCKER_HOST={host}",
                    py,
                    "-c",
                    "import docker,time; c=docker.from_env(timeout=300); t=time.monotonic();"
                    "out=c.containers.run('busybox:1.35.0', ['sh','-c','echo hello from $(uname -n)'], "
                    "remove=True);"
                    "print(out.decode().strip(), round(time.monotonic()-t,1)); "
                    "print(c.info()['OperatingSystem'])\n"
                    # a bind mount of a folder made on the host (the temporary folder is shared into
                    # the VM at the same path), both ways, as chapter 06 does
                    "import os, pathlib, shutil, tempfile\n"
                    "d = pathlib.Path(tempfile.mkdtemp(prefix='dc-vmshare-'))\n"
                    "(d / 'in.txt').write_text('written on the host')\n"
                    "out = c.containers.run('busybox:1.35.0', ['sh', '-c', "
                    "'cat /w/in.txt; echo; echo written in the container > /w/out.txt'], "
                    "volumes={str(d): {'bind': '/w', 'mode': 'rw'}}, user=f'{os.getuid()}:{os.getgid()}', "
                    "remove=True)\n"
                    "print(out.decode().strip()); print((d / 'out.txt').read_text().strip())\n"
                    "shutil.rmtree(d)\n"
                    # a terminal (docker run -t): runc's console socket is made in the engine's TMPDIR,
                    # which must not be the shared /tmp (no unix sockets on 9p)
                    "t = c.containers.run('busybox:1.35.0', ['tty'], tty=True, detach=True); t.wait()\n"
                    "print('terminal:', t.logs().decode().strip()); t.remove()",
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert run.returncode == 0, run.stderr[-2000:]
            assert "hello from" in run.stdout
            assert "written on the host\nwritten in the container" in run.stdout, run.stdout
            assert "terminal: /dev/pts/0" in run.stdout, run.stdout
            st = subprocess.run(
                [*cli, "engine", "vm", "status", "--name", "pytest"], capture_output=True, text=True
            )
            assert "answers" in st.stdout, st.stdout + st.stderr
            assert f"host folders shared (bind mounts of them work): {tempfile.gettempdir()}" in st.stdout
            _check_published_ports(
                host,
                lambda *a: subprocess.run(
                    [*cli, "engine", "vm", *a, "--name", "pytest"], capture_output=True, text=True, timeout=60
                ),
            )
            # Chapter 02 through the user's VM engine, outputs compared (nbval, strict)
            san = Path(os.environ.get("TMPDIR", "/tmp")) / f"dc-vm-sanitize-{os.getpid()}.cfg"
            san.write_text(
                (REPO / "tests/nbval_sanitize.cfg").read_text()
                + "\n"
                + (REPO / "tests/nbval_sanitize_vm.cfg").read_text()
            )
            try:
                nb = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pytest",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        "--nbval",
                        "--nbval-current-env",
                        "--nbval-sanitize-with",
                        str(san),
                        "--nbval-cell-timeout",
                        "240",
                        "--noconftest",
                        str(REPO / "notebooks/02_core_concepts.ipynb"),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=900,
                    cwd=REPO,
                    env={**os.environ, "DOCKER_HOST": host},
                )
            finally:
                san.unlink()
            assert nb.returncode == 0, nb.stdout[-4000:]
        finally:
            down = subprocess.run(
                [*cli, "engine", "vm", "down", "--name", "pytest"], capture_output=True, text=True, timeout=60
            )
        assert down.returncode == 0, down.stderr
        time.sleep(0.5)
        port = int(host.rsplit(":", 1)[1])
        import socket

        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the API port still answers after down"
        st = subprocess.run(
            [*cli, "engine", "vm", "status", "--name", "pytest"], capture_output=True, text=True
        )
        assert st.returncode == 3 and "not running" in st.stdout, st.stdout + st.stderr
    finally:
        shutil.rmtree(src_copy, ignore_errors=True)  # after the last use of the CLI from it


UDP_ECHO = (
    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('', 9999))\n"
    "while True:\n    d, a = s.recvfrom(512)\n    s.sendto(b'echo:' + d, a)\n"
)


def _http(port: int, timeout: float = 3) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
        return r.read().decode(errors="replace")


def _until(what: str, fn, timeout: float = 60, pause: float = 0.5):
    """fn() until it returns a true value without raising; that value."""
    deadline = time.monotonic() + timeout
    err = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            err = e
        time.sleep(pause)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last error: {err!r})")


def _check_published_ports(host: str, vm_cli) -> None:
    """Published ports of containers in the VM answer on the host's 127.0.0.1 at the same
    port (-p 127.0.0.1:P:80, -P, UDP), a port taken on the host is reported and skipped,
    and a removed container's ports stop answering."""
    import socket

    import docker

    from dockercourse.vm.boot import free_port

    t0 = time.monotonic()
    client = docker.DockerClient(base_url=host, version="auto", timeout=180)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    taken_port = taken.getsockname()[1]
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        udp_port = u.getsockname()[1]
    made = []
    try:
        web = client.containers.run(
            "nginx:1.22",
            detach=True,
            labels={"dockercourse.test": "ports"},
            ports={"80/tcp": ("127.0.0.1", port), "81/tcp": ("127.0.0.1", taken_port)},
        )
        made.append(web)
        anyp = client.containers.run(
            "nginx:1.22", detach=True, publish_all_ports=True, labels={"dockercourse.test": "ports"}
        )
        made.append(anyp)
        echo = client.containers.run(
            "python:3.11-slim-bookworm",
            ["python", "-c", UDP_ECHO],
            detach=True,
            ports={"9999/udp": ("127.0.0.1", udp_port)},
            labels={"dockercourse.test": "ports"},
        )
        made.append(echo)
        assert "Welcome to nginx" in _until(f"nginx on 127.0.0.1:{port}", lambda: _http(port))
        anyp.reload()
        any_port = int(anyp.ports["80/tcp"][0]["HostPort"])

        def nginx_or_reported_taken():
            # -P: the engine in the VM picks the port, which something on the host may hold already
            # (in CI, a JupyterLab of the browser tests did): then the forwarder must say so instead
            if f"not forwarded: {any_port}/tcp" in vm_cli("status").stdout:
                return "taken on the host"
            body = _http(any_port)
            return body if "Welcome to nginx" in body else None

        any_seen = _until(f"nginx (-P) on 127.0.0.1:{any_port}", nginx_or_reported_taken)
        assert any_seen == "taken on the host" or "Welcome to nginx" in any_seen

        def udp_echo():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(1)
                s.sendto(b"ping", ("127.0.0.1", udp_port))
                return s.recvfrom(512)[0]

        assert _until(f"UDP echo on 127.0.0.1:{udp_port}", udp_echo) == b"echo:ping"
        st = vm_cli("status")
        forwarded = [f"127.0.0.1:{port}/tcp", f"127.0.0.1:{udp_port}/udp"]
        if any_seen != "taken on the host":
            forwarded.append(f"127.0.0.1:{any_port}/tcp")
        for p in forwarded:
            assert p in st.stdout, st.stdout
        assert f"not forwarded: {taken_port}/tcp" in st.stdout and "taken on the host" in st.stdout, st.stdout
        for c in made:
            c.remove(force=True)
        made.clear()

        def closed(p):
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", p)) != 0

        _until(
            "forwards removed",
            lambda: closed(port) and (any_seen == "taken on the host" or closed(any_port)),
            timeout=30,
        )
        st = vm_cli("status")
        assert f"127.0.0.1:{port}/tcp" not in st.stdout and f":{udp_port}/udp" not in st.stdout, st.stdout
    finally:
        for c in made:
            with contextlib.suppress(Exception):
                c.remove(force=True)
        taken.close()
        client.close()
    print(f"published ports checked in {time.monotonic() - t0:.0f} s")


def test_portfwd_forwarder_with_fake_qemu_and_engine(tmp_path):
    """The forwarder's bookkeeping: adds/removes hostfwd rules for running containers'
    bindings (IPv4+IPv6 once, tcp and udp), adopts or drops earlier rules, reports a
    port taken on the host, and writes forwards.json."""
    import socket

    from dockercourse.vm import portfwd

    rules: dict[str, str] = {}
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    tport = taken.getsockname()[1]

    def monitor(cmd: str) -> str:
        parts = cmd.split()
        if parts[0] == "hostfwd_add":
            rule = parts[2]
            proto, _, rest = rule.split(":", 2)
            key = f"{proto}:{rest.split('-')[0]}"
            if key in rules or key == f"tcp:{tport}":
                return f"Could not set up host forwarding rule '{rule}'"
            rules[key] = rule
            return ""
        if parts[0] == "hostfwd_remove":
            proto, _, port = parts[2].split(":")
            return "removed" if rules.pop(f"{proto}:{port}", None) else "not found"
        if parts[0] == "info":
            return (
                "Hub -1 (n0):\n"
                "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n"
                + "".join(
                    f"  {k.split(':')[0].upper()}[HOST_FORWARD]  11       "
                    f"127.0.0.1 {k.split(':')[1]}       10.0.2.15 "
                    f"{k.split(':')[1]}     0     0\n"
                    for k in rules
                )
            )
        raise AssertionError(cmd)

    def attrs(cid, name, ports):
        return {
            "Id": cid,
            "Name": "/" + name,
            "State": {"Running": True},
            "NetworkSettings": {"Ports": ports},
        }

    running = {
        "a1": attrs(
            "a1",
            "web",
            {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40123"}, {"HostIp": "::", "HostPort": "40123"}],
                "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(tport)}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "40124"}],
                "443/tcp": None,
            },
        )
    }

    class Api:
        def containers(self, filters=None):
            return [{"Id": k} for k in running]

        def inspect_container(self, cid):
            return running[cid]

    class Client:
        api = Api()

    rules["tcp:2375"] = "tcp:127.0.0.1:2375-:2375"  # the API forward: never touched
    rules["tcp:40999"] = "tcp:127.0.0.1:40999-:40999"  # left by an earlier forwarder
    logs = []
    f = portfwd.Forwarder(monitor, api_port=2375, state_dir=tmp_path, log=logs.append)
    f.reconcile(Client())
    assert set(rules) == {"tcp:2375", "tcp:40123", "udp:40124"}
    assert any("taken on the host" in m and str(tport) in m for m in logs), logs
    st = portfwd.read_state(tmp_path)
    assert [(x["port"], x["proto"], x["container"]) for x in st["forwards"]] == [
        (40123, "tcp", "web"),
        (40124, "udp", "web"),
    ]
    assert st["failed"][0]["port"] == tport
    running["b2"] = attrs("b2", "other", {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]})
    f.handle(Client(), {"Type": "container", "Action": "start", "Actor": {"ID": "b2"}})
    assert "tcp:32768" in rules
    f.handle(Client(), {"Type": "container", "Action": "die", "Actor": {"ID": "a1"}})
    assert set(rules) == {"tcp:2375", "tcp:32768"}
    assert not portfwd.read_state(tmp_path)["failed"]
    taken.close()
    assert portfwd.bindings({"80/tcp": [{"HostIp": "", "HostPort": ""}], "5/sctp": [{"HostPort": "5"}]}) == {}


def test_monitor_protocol(tmp_path):
    """Monitor speaks qemu's human monitor: banner, echoed command with escapes, prompt."""
    import socket
    import threading

    from dockercourse.vm import portfwd

    path = tmp_path / "m.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.sendall(b"QEMU 7.2 monitor - type 'help' for more information\r\n(qemu) ")
        cmd = b""
        while not cmd.endswith(b"\n"):
            cmd += conn.recv(100)
        conn.sendall(
            b"h\x1b[K\x1b[Dho" + cmd.strip() + b"\x1b[K\r\nhost forwarding rule for tcp:127.0.0.1:5 removed"
            b"\r\n(qemu) "
        )
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    out = portfwd.Monitor(path, timeout=5).command("hostfwd_remove n0 tcp:127.0.0.1:5")
    t.join(5)
    srv.close()
    assert out == "host forwarding rule for tcp:127.0.0.1:5 removed"


def test_reap_stale_and_describe(tmp_path, monkeypatch):
    from dockercourse.vm import engine as vme

    monkeypatch.setenv("DOCKERCOURSE_VM_STATE", str(tmp_path / "state"))
    dead = vme.state_root() / "w-dead"
    dead.mkdir(parents=True)
    (dead / "state.json").write_text('{"pid": 999999999, "port": 1, "docker_host": "tcp://127.0.0.1:1"}')
    (vme.state_root() / "w-booting").mkdir()  # no state yet: a VM booting now, left alone
    assert vme.reap_stale() == ["w-dead"]
    assert (vme.state_root() / "w-booting").exists()
    assert vme.describe("tcp://127.0.0.1:1") is None
    assert vme.wait_ready("unix:///var/run/docker.sock", timeout=1) is True


def test_engine_binaries_packages_first_then_host(tmp_path, monkeypatch):
    """The guest's engine comes from the course's packages; when those cannot be fetched,
    from the host's dockerd (said in the title and the disk's inputs); runc, iptables and
    busybox are always the host's; other binaries make another cache key."""
    from dockercourse.engines import packages
    from dockercourse.vm import disk

    if binaries.requirements():
        pytest.skip(f"missing {', '.join(binaries.requirements())}")
    fake = tmp_path / "pkgroot"
    for rel in binaries.PKG_BINARIES.values():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text("#!/bin/sh\necho Docker version 28.5.2, build x\n")
        (fake / rel).chmod(0o755)
    monkeypatch.setattr(packages, "ensure_packages", lambda name: fake)
    monkeypatch.setattr(
        packages,
        "package_versions",
        lambda name: {"docker.io": "28.5.2+dfsg4-5", "containerd": "2.1.9+ds1-5"},
    )
    eng = binaries.engine_binaries(log=lambda *_: None)
    assert eng["source"] == "packages" and eng["version"] == "28.5.2"
    assert eng["paths"]["/usr/sbin/dockerd"] == fake / "usr/sbin/dockerd"
    assert str(eng["paths"]["/usr/sbin/runc"]).startswith(("/usr/sbin", "/usr/bin", "/sbin", "/bin"))
    assert "Docker 28.5.2" in eng["title"] and "docker.io 28.5.2+dfsg4-5" in eng["title"]
    assert binaries.daemon_config(eng["version"]) == {
        "features": {"containerd-snapshotter": True},
        "storage-driver": "overlayfs",
    }
    key_pkgs = disk.disk_key(disk.inputs(log=lambda *_: None))

    def unavailable(name):
        raise packages.EngineError("cannot read Debian's package lists (test)")

    monkeypatch.setattr(packages, "ensure_packages", unavailable)
    hostd = tmp_path / "host"
    hostd.mkdir()
    for name in ("dockerd", "containerd", "containerd-shim-runc-v2"):
        (hostd / name).write_text("#!/bin/sh\necho Docker version 20.10.24+dfsg1, build 297e128\n")
        (hostd / name).chmod(0o755)
    bins = dict(binaries.BINARIES)
    bins["/usr/sbin/dockerd"] = [str(hostd / "dockerd")]
    bins["/usr/bin/containerd"] = [str(hostd / "containerd")]
    bins["/usr/bin/containerd-shim-runc-v2"] = [str(hostd / "containerd-shim-runc-v2")]
    bins["/usr/sbin/docker-proxy"] = []
    bins["/usr/bin/docker-init"] = []
    monkeypatch.setattr(binaries, "BINARIES", bins)
    logs = []
    eng = binaries.engine_binaries(log=logs.append)
    assert eng["source"] == "host" and eng["version"] == "20.10.24"
    assert "could not be fetched: cannot read Debian's package lists (test)" in eng["title"]
    assert any("using this machine's dockerd 20.10.24" in m for m in logs), logs
    assert binaries.daemon_config(eng["version"]) == {"storage-driver": "overlay2"}
    inp = disk.inputs(log=lambda *_: None)
    assert inp["engine"]["source"] == "host" and disk.disk_key(inp) != key_pkgs
    assert inp["engine"]["fallback_reason"].startswith("cannot read Debian's package lists")
    bins["/usr/sbin/dockerd"] = []
    with pytest.raises(CourseError, match="could not be fetched .* and this machine has no dockerd"):
        binaries.engine_binaries(log=lambda *_: None)


def _limits_in_container(client) -> list[str]:
    out = client.containers.run(
        "busybox:1.35.0",
        ["cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"],
        mem_limit="64m",
        pids_limit=50,
        remove=True,
    )
    return out.decode().split()


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_engine_vm_docker28_cgroup2_containerd_store():
    """The VM engine's guest: Docker 28.5 from the course's packages, cgroup v2 with the
    limits applied (memory.max, pids.max in the container), the containerd image store."""
    from dockercourse.vm import engine as vme

    if vme.requirements():
        pytest.skip(f"missing {', '.join(vme.requirements())}")
    with vme.vm_engine(images=vme.DEFAULT_IMAGES, log=lambda *_: None, forward_ports=False) as env:
        c = env.client()
        try:
            info = c.info()
            assert info["ServerVersion"].startswith("28.5"), info["ServerVersion"]
            assert info["CgroupVersion"] == "2" and info["CgroupDriver"] == "cgroupfs"
            assert info["Driver"] == "overlayfs", info["Driver"]
            assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"], info[
                "DriverStatus"
            ]
            assert _limits_in_container(c) == ["67108864", "50"]
            assert env.engine.startswith("Docker 28.5") and env.flavor == "docker"
            st = vme.status(name=env.name)
            assert st["engine"] == env.engine
            print(
                f"VM engine: {env.engine}; booted in {env.boot_seconds} s; qemu RSS "
                f"{env.rss_bytes() / 2**20:.0f} MB"
            )
        finally:
            c.close()


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_engine_vm_podman_flavour(tmp_path):
    """`--flavor podman`: Podman 5 (Debian trixie guest) answers the Docker API: cgroup v2
    limits, containers, published ports forwarded to the host like the Docker flavour's."""
    from dockercourse.vm import engine as vme

    if vme.requirements() or not shutil.which("mmdebstrap"):
        pytest.skip("needs qemu, runc, iptables, busybox, mke2fs and mmdebstrap")
    if os.geteuid() != 0 and not shutil.which("newuidmap"):
        pytest.skip("mmdebstrap --mode=unshare needs uidmap (newuidmap) and /etc/subuid for this user")
    images = ["busybox:1.35.0", "nginx:1.22", "python:3.11-slim-bookworm"]
    here = tmp_path  # shared into the guest (9p) at the same path
    with vme.vm_engine(images=images, log=lambda *_: None, flavor="podman", shares=[here]) as env:
        c = env.client()
        try:
            ver = c.version()
            assert any(comp.get("Name") == "Podman Engine" for comp in ver.get("Components", [])), ver
            assert ver["Version"].startswith("5."), ver["Version"]
            info = c.info()
            assert info["CgroupVersion"] == "2", info.get("CgroupVersion")
            assert _limits_in_container(c) == ["67108864", "50"]
            assert env.engine.startswith("Podman 5") and env.flavor == "podman"
            out = c.containers.run("busybox:1.35.0", ["sh", "-c", "echo hello from $(uname -n)"], remove=True)
            assert b"hello from" in out
            # a shared host folder, as for the Docker flavour: a bind mount of it shows its file
            # (chapter 06 makes its host folders in the temporary folder, which `vm up` shares)
            (here / "note.txt").write_text("made on the host\n")
            bind = {str(here): {"bind": "/here"}}
            out = c.containers.run("busybox:1.35.0", ["cat", "/here/note.txt"], volumes=bind, remove=True)
            assert out == b"made on the host\n"
            t = c.containers.run("busybox:1.35.0", ["tty"], tty=True, detach=True)  # a console socket
            try:
                assert t.wait(timeout=60)["StatusCode"] == 0
            finally:
                t.remove(force=True)
            _check_published_ports(
                env.docker_host,
                lambda *a: subprocess.run(
                    [sys.executable, "-m", "dockercourse.cli", "engine", "vm", *a, "--name", env.name],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                ),
            )
            print(
                f"VM engine: {env.engine}; booted in {env.boot_seconds} s; qemu RSS "
                f"{env.rss_bytes() / 2**20:.0f} MB"
            )
        finally:
            c.close()


@pytest.mark.unit
def test_the_vm_kernel_is_new_enough_for_docker_cp_or_says_why_not(monkeypatch, tmp_path):
    """Docker 28's `docker cp` into a container fails on kernels before 6.6 ("chmod ...: via
    /proc/self/fd/NN: no such file or directory"). A host's 6.1 kernel is passed over for a fetched
    6.12; a cache holding 6.1 from before is fetched again once; when nothing newer can be had, the old
    kernel boots with one line saying what fails there."""
    assert kernel.version_tuple("6.12.117+deb13-cloud-amd64") == (6, 12, 117)
    assert kernel.version_tuple("6.1.0-57-cloud-amd64") == (6, 1, 0)
    old = kernel.KernelInfo(tmp_path / "vmlinuz-6.1.0-57", "6.1.0-57-cloud-amd64", None, "host")
    new = kernel.KernelInfo(tmp_path / "vmlinuz-6.12.117", "6.12.117+deb13-cloud-amd64", None, "apt")
    assert not kernel.new_enough(old) and kernel.new_enough(new) and not kernel.new_enough(None)
    monkeypatch.delenv("DOCKERCOURSE_VM_KERNEL", raising=False)
    lines: list[str] = []

    def pick(host, cached, fetched):
        monkeypatch.setattr(kernel, "_CURRENT", None)
        monkeypatch.setattr(kernel, "_host_kernel", lambda: host)
        monkeypatch.setattr(kernel, "_cached_kernel", lambda any_policy=False: cached)

        def fetch(log):
            if isinstance(fetched, Exception):
                raise fetched
            return fetched

        monkeypatch.setattr(kernel, "_fetch_kernel", fetch)
        lines.clear()
        return kernel.find_kernel(log=lines.append)

    assert pick(old, None, new) is new and not lines  # the host's 6.1 is passed over
    assert pick(new, None, CourseError("unreachable")) is new  # a new enough host kernel: nothing fetched
    assert pick(old, new, CourseError("unreachable")) is new  # the cache's 6.12
    got = pick(old, None, CourseError("apt knows no kernel package"))
    assert got is old and "apt knows no kernel package" in lines[0]
    assert "older than 6.6" in lines[1] and "docker cp" in lines[1]
    with pytest.raises(CourseError, match="unreachable"):
        pick(None, None, CourseError("unreachable"))


@pytest.mark.unit
def test_a_cached_kernel_from_the_old_choice_is_fetched_again_once(monkeypatch, tmp_path):
    """The cache marker records the kernel choice it was made under: an old 6.1 from before is not
    used (the course's archive may give 6.12 now), one fetched under today's choice is (it was the
    best the archives gave), and any is the fallback when fetching fails."""
    monkeypatch.setenv("DOCKERCOURSE_VM_CACHE", str(tmp_path))
    root = tmp_path / "kernel" / "linux-image-6.1.0-57-cloud-amd64"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-57-cloud-amd64").write_bytes(b"kernel")
    marker = kernel._kernel_root() / "current.json"
    marker.write_text(json.dumps({"root": str(root), "packages": ["linux-image-6.1.0-57-cloud-amd64"]}))
    assert kernel._cached_kernel() is None
    assert kernel._cached_kernel(any_policy=True).version == "6.1.0-57-cloud-amd64"
    marker.write_text(json.dumps({"root": str(root), "packages": [], "policy": kernel._POLICY}))
    assert kernel._cached_kernel().version == "6.1.0-57-cloud-amd64"
    # a new enough kernel of an older choice (the cloud kernel, which has no 9p) is fetched again too
    new = tmp_path / "kernel" / "linux-image-6.12.117+deb13-cloud-amd64"
    (new / "boot").mkdir(parents=True)
    (new / "boot" / "vmlinuz-6.12.117+deb13-cloud-amd64").write_bytes(b"kernel")
    marker.write_text(json.dumps({"root": str(new), "packages": [], "policy": kernel._POLICY - 1}))
    assert kernel._cached_kernel() is None


@needs_qemu
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_engine_vm_with_tls_answers_only_its_owners_certificate(tmp_path):
    """`--tls` (a machine other people log in to): the API refuses plain HTTP, a client with no
    certificate and one with another engine's; the owner's certificate works from docker-py, the course's
    connect() (the environment's DOCKER_TLS_VERIFY and DOCKER_CERT_PATH) and the `docker` command, and the
    forwarder of published ports (a client of the API too) still forwards."""
    import ssl
    import urllib.request

    from dockercourse.core.dockercli import find_cli
    from dockercourse.core.engine import connect
    from dockercourse.vm import engine as vme
    from dockercourse.vm import tls
    from dockercourse.vm.seed import ping

    if vme.requirements():
        pytest.skip(f"missing {', '.join(vme.requirements())}")
    with vme.vm_engine(images=vme.DEFAULT_IMAGES, log=lambda *_: None, tls=True) as env:
        assert env.tls_dir and ping(env.port, 5, env.tls_dir)
        assert not ping(env.port, 5)  # plain HTTP
        bare = ssl.create_default_context(cafile=str(Path(env.tls_dir) / "ca.pem"))  # shows no certificate
        with pytest.raises(OSError):
            urllib.request.urlopen(f"https://127.0.0.1:{env.port}/_ping", timeout=10, context=bare).read()
        other, _ = tls.make(tmp_path / "another-vm")
        assert not ping(env.port, 5, other)
        assert vme.status(name=env.name)["answers"]

        c = env.client()
        try:
            assert c.info()["ServerVersion"].startswith("28.5")
            made = c.containers.run(
                "busybox:1.35.0",
                ["sh", "-c", "mkdir /w && echo served through TLS > /w/index.html && httpd -f -p 80 -h /w"],
                detach=True,
                ports={"80/tcp": ("127.0.0.1", None)},
            )
            try:
                made.reload()
                port = int(made.ports["80/tcp"][0]["HostPort"])
                assert "served through TLS" in _until(f"httpd on 127.0.0.1:{port}", lambda: _http(port))
            finally:
                made.remove(force=True)
        finally:
            c.close()

        saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        os.environ.update(env.env())
        try:
            course = connect(timeout=60)  # what a notebook's setup() does
            assert course.ping() and course.version()["Version"].startswith("28.5")
            course.close()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        cli = find_cli()
        if cli is not None:
            base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            ok = subprocess.run(
                [cli.path, "version", "--format", "{{.Server.Version}}"],
                env={**base, **env.env()},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ok.returncode == 0 and ok.stdout.startswith("28.5"), ok.stderr
            refused = subprocess.run(
                [cli.path, "version", "--format", "{{.Server.Version}}"],
                env={**base, "DOCKER_HOST": env.docker_host},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert refused.returncode != 0, refused.stdout


@pytest.mark.unit
def test_a_dead_engine_s_reason_reaches_the_error_however_slowly_the_guest_prints_it():
    """The guest prints "dockerd died:" and then the engine's log; an emulated guest under load can take
    seconds between the two (CI, 2026-12-07: the error ended at "dockerd died:"). A process writes the
    console as the guest does: the error waits for the log."""
    import socket

    from dockercourse.errors import BootError
    from dockercourse.vm.boot import Boot
    from dockercourse.vm.seed import wait_api

    script = (
        'echo "dockercourse: dockerd died:"; sleep 1.5; echo "failed to start daemon: the reason"; sleep 30'
    )
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with socket.socket() as s:  # a port nothing answers on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = Boot(proc, "tcg", time.monotonic(), None, ["sh"])
    try:
        with pytest.raises(BootError) as e:
            wait_api(b, port, timeout=20)
        assert "dockerd died:" in str(e.value) and "failed to start daemon: the reason" in str(e.value)
    finally:
        proc.kill()
        proc.wait()
