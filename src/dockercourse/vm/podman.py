"""The VM engine's ``podman`` flavour: Podman 5 through its Docker-compatible API.

Podman 5 needs a newer C library than Debian 12's, so its binaries cannot be copied from
the host like the Docker flavour's. The guest's userland is instead a Debian trixie root
file system made by ``mmdebstrap --variant=minbase`` (as root; as an ordinary user with
``--mode=unshare``, which needs ``uidmap`` and ``/etc/subuid``), booted with the same
kernel and initramfs as the Docker flavour. Its init (``guest/podman-engine-init.sh``:
catatonit as PID 1, to reap the orphans conmon leaves, running ``guest/stage2-podman.sh``)
mounts cgroup v2, configures the network like the Docker guest and runs
``podman system service --time=0 tcp://0.0.0.0:2375`` (rootful, cgroupfs, netavark with
nftables, crun, overlay on ext4).

* Pulls go through the host's course mirror as ``127.0.0.1:PORT`` in the guest (a
  ``registries.conf`` mirror of docker.io, written at boot; an nftables DNAT sends that
  address to the host's loopback), as in the Docker guest.
* Published ports: qemu forwards the host's 127.0.0.1:P to the guest's 10.0.2.15:P (the
  same forwarder as the Docker flavour). Podman has no userland proxy and its conmon
  holds the published port open without ever accepting (port reservation), so the
  Docker guest's DNAT to 127.0.0.1 would connect to that dead socket. Instead the first
  packet of a new connection is readdressed to 127.0.0.1 between connection tracking and
  NAT (nftables, ``prerouting`` at priority -150), so that netavark's own DNAT rules (for
  ``127.0.0.1:P`` and ``0.0.0.0:P`` bindings alike) send it to the container; conntrack
  still holds 10.0.2.15:P as the original destination, so the replies leave from it.

The root file system is cached as a tarball (``<vm cache>/engine/debian/``) and reused
until ``--rebuild``; the system disk is an ext4 image written by ``mke2fs -d`` from it,
like the Docker flavour's (:func:`.disk.write_ext4`), and seeded the same way (:mod:`.seed`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from dockercourse import config
from dockercourse.errors import CourseError
from dockercourse.vm import binaries, disk, scripts
from dockercourse.vm.kernel import find_kernel

logger = logging.getLogger(__name__)

SUITE = "trixie"
PACKAGES = [
    "podman",
    "crun",
    "conmon",
    "netavark",
    "aardvark-dns",
    "catatonit",
    "nftables",
    "iproute2",
    "procps",
    "ca-certificates",
]
ROOTFS_LAYOUT = "1"
#: nftables for netavark and for the guest's own rules, on top of the Docker guest's list
NFT_MODULES = [
    "nf_conntrack_netlink",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib",
    "nft_fib_inet",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_reject",
    "nft_reject_inet",
    "nft_reject_ipv4",
    "nft_reject_ipv6",
    "nft_compat",
    "nft_redir",
    "nft_limit",
]
#: the Docker guest's modules (:data:`.disk.MODULES`), nftables, and 9p for the host folders shared
#: into the guest (:mod:`.shares`; optional: Debian's cloud kernel has none)
MODULES = list(disk.MODULES) + NFT_MODULES + ["9p", "9pnet_virtio"]

CONTAINERS_CONF = """\
# dockercourse VM engine (podman flavour): no systemd, no journald in the guest
[containers]
log_driver = "k8s-file"
netns = "bridge"

[engine]
cgroup_manager = "cgroupfs"
# an exec through the API keeps its two conmon processes until this delay has passed (default 300 s, so
# that a client can still read the exit code): the chapters' many short execs piled up hundreds of them
exit_command_delay = 15
events_logger = "file"
runtime = "crun"

[network]
network_backend = "netavark"
firewall_driver = "nftables"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
"""

_MIRROR = "DOCKERCOURSE_DEBIAN_MIRROR"


def debian_mirror() -> str:
    """The Debian archive to build from: ``DOCKERCOURSE_DEBIAN_MIRROR`` when set, else the host's
    own Debian mirror (from its apt sources), else deb.debian.org."""
    if config.is_set(_MIRROR) and config.get(_MIRROR):
        return config.get(_MIRROR).rstrip("/")
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            try:
                texts.append(p.read_text())
            except OSError as e:
                logger.debug("apt source %s not read (%s); looking at the others", p, e)
    for t in texts:
        for m in re.finditer(r"(?m)^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?://\S+)", t):
            url = m.group(1).rstrip("/")
            if url.endswith("/debian") and "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def _rootfs_dir() -> Path:
    p = disk.engine_cache() / "debian"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _dpkg_versions(tar: Path) -> dict:
    with tarfile.open(tar) as t:
        for name in ("./var/lib/dpkg/status", "var/lib/dpkg/status"):
            try:
                f = t.extractfile(name)
            except KeyError:
                continue
            if f is None:
                continue
            text = f.read().decode(errors="replace")
            out, pkg = {}, None
            for line in text.splitlines():
                if line.startswith("Package: "):
                    pkg = line.split(": ", 1)[1]
                elif line.startswith("Version: ") and pkg:
                    out[pkg] = line.split(": ", 1)[1]
            return out
    return {}


def rootfs(log=print, rebuild: bool = False) -> tuple[Path, dict]:
    """The Debian trixie root file system (a tarball, made once by mmdebstrap) and the
    versions of its packages."""
    mirror = debian_mirror()
    key = hashlib.sha256(json.dumps([ROOTFS_LAYOUT, SUITE, PACKAGES, mirror]).encode()).hexdigest()[:12]
    d = _rootfs_dir()
    tar, meta = d / f"{SUITE}-{key}.tar", d / f"{SUITE}-{key}.json"
    if not rebuild and tar.is_file() and meta.is_file():
        return tar, json.loads(meta.read_text())
    mm = shutil.which("mmdebstrap")
    if not mm:
        raise CourseError(
            "the podman flavour makes a Debian trixie root file system with mmdebstrap; fix: "
            "sudo apt-get install -y mmdebstrap"
        )
    part = tar.with_suffix(".tar.part")
    part.unlink(missing_ok=True)
    cmd = [
        mm,
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--format=tar",
    ]
    if os.geteuid() != 0:
        cmd.append("--mode=unshare")
    cmd += [SUITE, str(part), mirror]
    log(f"vm: making a Debian {SUITE} root file system with podman (mmdebstrap, {mirror}) ...")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or not part.is_file():
        part.unlink(missing_ok=True)
        err = (
            [ln for ln in (r.stderr or r.stdout).splitlines() if ln.startswith("E:")]
            or (r.stderr or r.stdout).strip().splitlines()[-3:]
            or ["?"]
        )
        hint = (
            " (as an ordinary user mmdebstrap needs --mode=unshare: apt-get install uidmap and give the "
            "user a range in /etc/subuid and /etc/subgid)"
            if os.geteuid() != 0
            else ""
        )
        raise CourseError(f"mmdebstrap {SUITE} failed: {' / '.join(err)[:400]}{hint}")
    versions = _dpkg_versions(part)
    os.replace(part, tar)
    info = {
        "suite": SUITE,
        "mirror": mirror,
        "versions": versions,
        "seconds": round(time.monotonic() - t0, 1),
    }
    meta.write_text(json.dumps(info, indent=1))
    for old in d.glob(f"{SUITE}-*"):
        if old not in (tar, meta):
            old.unlink(missing_ok=True)
    log(f"vm: root file system ready ({tar.stat().st_size / 2**20:.0f} MB, {time.monotonic() - t0:.0f} s)")
    return tar, info


def _short(ver: str) -> str:
    return re.split(r"[+~-]", ver.split(":", 1)[-1], maxsplit=1)[0]


def inputs(log=print, rebuild: bool = False) -> dict:
    """What the podman system disk is made of (the cache key), like :func:`.disk.inputs`."""
    k = find_kernel()
    tar, info = rootfs(log, rebuild=rebuild)
    st = tar.stat()
    v = info.get("versions", {})
    version = _short(v.get("podman", "")) or "?"
    parts = ", ".join(f"{p} {v[p]}" for p in ("podman", "crun", "netavark") if p in v)
    binaries.require_mke2fs()
    return {
        "layout": disk.LAYOUT_VERSION,
        "flavor": "podman",
        "kernel": k.version,
        "rootfs": (str(tar), st.st_size, int(st.st_mtime)),
        "engine": {
            "source": f"debian-{SUITE}",
            "version": version,
            "versions": {
                p: v[p] for p in ("podman", "crun", "conmon", "netavark", "aardvark-dns", "libc6") if p in v
            },
            "title": f"Podman {version} (Debian {SUITE}: {parts})",
        },
        "modules": MODULES,
        "stage1": scripts.digest(scripts.STAGE1),
        "init": _init_digest(),
    }


def _init_digest() -> str:
    """The hash of the guest's init scripts (their bytes) and configuration."""
    data = (
        scripts.data(scripts.PODMAN_ENGINE_INIT)
        + scripts.data(scripts.STAGE2_PODMAN)
        + (CONTAINERS_CONF + STORAGE_CONF).encode()
    )
    return hashlib.sha256(data).hexdigest()[:16]


def _extract(tar: Path, root: Path) -> list[tuple[str, int, int]]:
    """Unpack the root file system (device nodes skipped: the guest mounts devtmpfs).
    Returns (path, uid, gid) of entries whose owner could not be set (not root)."""
    fix = []
    me = os.geteuid()
    with tarfile.open(tar) as t:
        members = []
        for m in t:
            if m.ischr() or m.isblk() or m.isfifo():
                continue
            members.append(m)
            if me != 0 and (m.uid, m.gid) != (me, os.getegid()):
                fix.append(("/" + m.name.lstrip("./"), m.uid, m.gid))
        kw = {"numeric_owner": True}
        if hasattr(tarfile, "fully_trusted_filter"):
            kw["filter"] = "fully_trusted"
        t.extractall(root, members=members, **kw)
    return fix


def _configure(root: Path, inp: dict) -> None:
    """The course's configuration and init in the unpacked root file system."""
    etc = root / "etc"
    (etc / "containers/containers.conf").write_text(CONTAINERS_CONF)
    (etc / "containers/storage.conf").write_text(STORAGE_CONF)
    (etc / "hostname").write_text("dockercourse-vm\n")
    (etc / "hosts").write_text("127.0.0.1 localhost dockercourse-vm\n")
    rc = etc / "resolv.conf"
    if rc.exists() or rc.is_symlink():
        rc.unlink()
    rc.write_text("nameserver 10.0.2.3\n")
    (etc / "dockercourse-engine.json").write_text(json.dumps(inp["engine"], indent=1) + "\n")
    lib = root / "usr/lib/dockercourse"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / "init.sh").write_bytes(scripts.data(scripts.STAGE2_PODMAN))
    (lib / "init.sh").chmod(0o755)
    init = root / "usr/sbin/engine-init"
    init.write_bytes(scripts.data(scripts.PODMAN_ENGINE_INIT))
    init.chmod(0o755)
    for d in ("var/lib/containers/storage", "run", "tmp", "var/log"):
        (root / d).mkdir(parents=True, exist_ok=True)


def build_disk(out: Path, inp: dict, log) -> Path:
    """Write the podman system disk (``out`` + ``.part``): the root file system, the
    course's init and configuration, by ``mke2fs -d``."""
    tar = Path(inp["rootfs"][0])
    staging = Path(tempfile.mkdtemp(prefix="stage-", dir=disk.engine_cache()))
    try:
        root = staging / "root"
        root.mkdir()
        fix = _extract(tar, root)
        _configure(root, inp)
        part = disk.write_ext4(root, out, "dcpodman")
        if fix:
            # an ordinary user unpacked the tarball: give the files their owners back
            _set_owners(part, fix, root)
        return part
    finally:
        _rmtree(staging)


def _rmtree(path: Path) -> None:
    """Remove an unpacked root file system; as an ordinary user its read-only folders
    (mode 0555 in the tarball) must be made writable first."""
    if os.geteuid() != 0:
        for d, _dirs, _files in os.walk(path):
            try:
                os.chmod(d, 0o755)
            except OSError as e:  # rmtree below ignores what stays
                logger.debug("cannot make %s writable to remove it (%s)", d, e)
    shutil.rmtree(path, ignore_errors=True)


def _set_owners(img: Path, fix: list[tuple[str, int, int]], root: Path) -> None:
    debugfs = shutil.which("debugfs") or "/sbin/debugfs"
    script = []
    for path, uid, gid in fix:
        if not (root / path.lstrip("/")).exists() and not (root / path.lstrip("/")).is_symlink():
            continue
        q = '"' + path.replace('"', '\\"') + '"'
        script.append(f"sif {q} uid {uid}")
        script.append(f"sif {q} gid {gid}")
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as f:
        f.write("\n".join(script) + "\n")
    try:
        r = subprocess.run(
            [debugfs, "-w", "-f", f.name, str(img)], capture_output=True, text=True, timeout=600
        )
        if r.returncode != 0:
            raise CourseError(
                f"debugfs could not set the owners of the podman disk's files: {r.stderr[-200:]}"
            )
    finally:
        os.unlink(f.name)
