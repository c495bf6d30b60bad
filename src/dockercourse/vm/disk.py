"""The Docker flavour's boot files: its initramfs and its system disk, where the guest's
engine comes from, and the cache keys of both.

* the initramfs (busybox + the kernel modules, ``/init`` = ``guest/stage1.sh``) that
  mounts the system disk and ``switch_root``s into it; shared with the podman flavour;
* the system disk, an ext4 image written by ``mke2fs -d`` (no root, no loop device):
  busybox, the engine (``dockerd``, ``containerd``, ``containerd-shim-runc-v2``,
  ``docker-proxy``, ``docker-init``) from the course's Debian packages (Docker 28.5,
  :func:`dockercourse.engines.packages.ensure_packages`; the host's own binaries only when
  those cannot be fetched, :func:`engine_binaries`), the host's ``runc`` and
  ``iptables-legacy``, their libraries, ``/etc/docker/daemon.json``
  (:func:`daemon_config`) and the guest's init (``guest/stage2-docker.sh``).

A disk's cache key (:func:`inputs`, :func:`disk_key`) hashes the path, size and mtime of
every binary copied in, the engine's versions and daemon.json, the guest scripts' bytes
and the module list: any change makes another disk. Seeding it with images is
:mod:`.seed`'s; :func:`dockercourse.vm.artifacts.build` puts it all together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dockercourse.errors import CourseError
from dockercourse.vm import binaries, cache_dir, scripts
from dockercourse.vm.initramfs import build as build_initramfs
from dockercourse.vm.kernel import find_kernel, get_modules

logger = logging.getLogger(__name__)

#: Size of the (sparse) system disk; the seeded images use a fraction of it.
DISK_SIZE_MB = 6144
LAYOUT_VERSION = "3"

MODULES = [
    "virtio_pci",
    "virtio_blk",
    # the system disk's file system: built into the cloud kernel, modules of the generic one (ext4 asks
    # for a crc32c driver when it mounts, which modules.dep does not list)
    "crc32c_generic",
    "ext4",
    "virtio_net",
    "virtio_console",
    "overlay",
    "bridge",
    "br_netfilter",
    "veth",
    "nf_conntrack",
    "nf_nat",
    "ip_tables",
    "iptable_nat",
    "iptable_filter",
    "xt_MASQUERADE",
    "xt_addrtype",
    "xt_conntrack",
    "xt_tcpudp",
    "xt_nat",
    "xt_mark",
    "ipt_REJECT",
    "nf_reject_ipv4",
    "xt_comment",
    "xt_multiport",
]
OPTIONAL_MODULES = {
    "crc32c_generic",
    "virtio_console",
    "xt_mark",
    "ipt_REJECT",
    "nf_reject_ipv4",
    "xt_comment",
    "xt_multiport",
    "xt_tcpudp",
    "xt_nat",
}
#: Docker 28 also writes the raw table (direct-routing protection) and ip6tables rules
#: (and flushes conntrack entries of UDP mappings through netlink)
DOCKER_MODULES = MODULES + [
    "iptable_raw",
    "ip6_tables",
    "ip6table_filter",
    "ip6table_nat",
    "ip6table_raw",
    "nf_reject_ipv6",
    "ip6t_REJECT",
    "nf_conntrack_netlink",
    # host folders shared into the guest (:mod:`.shares`); Debian's cloud kernel has no 9p
    "9p",
    "9pnet_virtio",
]
OPTIONAL_MODULES |= {
    "9p",
    "9pnet_virtio",
    "iptable_raw",
    "ip6_tables",
    "ip6table_filter",
    "ip6table_nat",
    "ip6table_raw",
    "nf_reject_ipv6",
    "ip6t_REJECT",
    "nf_conntrack_netlink",
}


def engine_cache() -> Path:
    """``<vm cache>/engine``: initramfs images, system disks and their metadata."""
    p = cache_dir() / "engine"
    p.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------- files on the host


def _copy(src: Path, root: Path, dest: str) -> None:
    d = root / dest.lstrip("/")
    d.parent.mkdir(parents=True, exist_ok=True)
    if d.exists() or d.is_symlink():
        return
    shutil.copy2(os.path.realpath(src), d)


def write_ext4(root: Path, out: Path, label: str) -> Path:
    """Write ``root`` into a sparse ext4 image ``out`` + ``.part`` (``mke2fs -d``: no root,
    no loop device) of :data:`DISK_SIZE_MB`; returns the ``.part`` file."""
    mke2fs = shutil.which("mke2fs") or "/sbin/mke2fs"
    part = out.with_name(out.name + ".part")
    part.unlink(missing_ok=True)
    r = subprocess.run(
        [
            mke2fs,
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            label,
            "-m",
            "0",
            "-E",
            "root_owner=0:0,lazy_itable_init=1,nodiscard",
            "-d",
            str(root),
            str(part),
            f"{DISK_SIZE_MB}M",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        part.unlink(missing_ok=True)
        raise CourseError(
            f"mke2fs failed: {r.stderr.strip()[-200:]}; fix: apt-get install e2fsprogs (>= 1.43)"
        )
    return part


# --------------------------------------------------------------------------- the engine's binaries


# --------------------------------------------------------------------------- cache keys


def inputs(log=print) -> dict:
    """What the system disk is made of (for the cache key): paths, sizes and mtimes of
    every binary copied in (so other binaries make another disk), the engine's source and
    versions, its daemon.json, the guest scripts and the module list."""
    k = find_kernel()
    eng = binaries.engine_binaries(log)
    found = {}
    for dest, p in eng["paths"].items():
        st = os.stat(p)
        found[dest] = (str(p), st.st_size, int(st.st_mtime))
    binaries.require_mke2fs()
    return {
        "layout": LAYOUT_VERSION,
        "kernel": k.version,
        "binaries": found,
        "engine": {
            "source": eng["source"],
            "version": eng["version"],
            "versions": eng["versions"],
            "title": eng["title"],
            "fallback_reason": eng["fallback_reason"],
            "daemon": binaries.daemon_config(eng["version"]),
        },
        "modules": DOCKER_MODULES,
        "stage1": scripts.digest(scripts.STAGE1),
        "stage2": scripts.digest(scripts.STAGE2_DOCKER),
    }


def key(obj) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def disk_key(inp: dict) -> str:
    """The key of a system disk's inputs; the engine's title (which, for the host-binaries
    fallback, quotes why the packages could not be fetched) is for people, not the key."""
    eng = {k: v for k, v in inp.get("engine", {}).items() if k not in ("title", "fallback_reason")}
    return key({**inp, "engine": eng})


# --------------------------------------------------------------------------- the initramfs


def initrd_path(kernel_version: str, modules: list[str]) -> Path:
    """Where the initramfs of this kernel, these modules and ``guest/stage1.sh`` is cached."""
    return engine_cache() / f"initrd-{key([kernel_version, modules, scripts.text(scripts.STAGE1)])}.gz"


def initrd_for(modules: list[str], log) -> Path:
    """The initramfs (cached) that loads ``modules`` and switches to the system disk."""
    k = find_kernel(log)
    out = initrd_path(k.version, modules)
    if not out.is_file():
        log("vm: building the initramfs (busybox + kernel modules)")
        _build_initrd(out, log, modules)
    return out


def _build_initrd(out: Path, log, modules: list[str] | None = None) -> Path:
    names = list(modules or DOCKER_MODULES)
    mods: dict[str, Path] = {}
    for n in names:
        try:
            mods.update(get_modules([n], log=log))
        except CourseError:
            if n in MODULES and n not in OPTIONAL_MODULES:  # a flavour's extras are all optional
                raise
            log(f"vm: kernel module {n} not found; the guest goes without it")
    files: dict[str, Path | bytes] = {"bin/busybox": binaries.find(binaries.BINARIES["/bin/busybox"])}
    order = []
    for name, path in mods.items():
        if name not in order:
            order.append(name)
            files[f"lib/dcmod/{name}.ko"] = path
    files["modules.order"] = ("\n".join(order) + "\n").encode()
    for lib in binaries.libs(files["bin/busybox"]):  # a dynamic busybox needs its libraries
        files[str(lib).lstrip("/")] = lib
    return build_initramfs(out, files, scripts.text(scripts.STAGE1))


# --------------------------------------------------------------------------- the system disk

_DIRS = (
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "lib",
    "lib64",
    "etc",
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var/lib/docker",
    "var/log",
    "root",
    "newroot",
    "mnt",
)
_IPTABLES_LINKS = (
    "iptables",
    "iptables-save",
    "iptables-restore",
    "iptables-legacy",
    "iptables-legacy-save",
    "iptables-legacy-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "ip6tables-legacy",
)


def _copy_binaries(root: Path, inp: dict) -> None:
    """The engine's binaries, the xtables plugins and every library they need."""
    bins = []
    for dest, (src, _size, _mtime) in inp["binaries"].items():
        _copy(Path(src), root, dest)
        bins.append(Path(src))
    xt = None
    for cand in ("/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib64/xtables", "/usr/lib/xtables"):
        if os.path.isdir(cand):
            xt = Path(cand)
            break
    if xt is not None:
        for so in xt.glob("*.so"):
            _copy(so, root, str(so))
            bins.append(so)
    libs: set[Path] = set()
    for b in bins:
        libs.update(binaries.libs(b))
    for lib in libs:
        _copy(lib, root, str(lib))
        real = Path(os.path.realpath(lib))
        if real != lib:
            _copy(real, root, str(real))


def _link_applets(root: Path) -> None:
    """busybox applets as symlinks (skipping names a real binary already has), iptables names."""
    r = subprocess.run([str(root / "bin/busybox"), "--list-full"], capture_output=True, text=True)
    for applet in r.stdout.split():
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for name in _IPTABLES_LINKS:
        link = root / "usr/sbin" / name
        if not link.exists():
            link.symlink_to("xtables-legacy-multi")


def _write_etc(root: Path, inp: dict) -> None:
    """``/etc``: users, names, CA certificates, daemon.json, the engine's description, the init."""
    etc = root / "etc"
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (etc / "group").write_text("root:x:0:\ntty:x:5:\ndocker:x:999:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost dockercourse-vm\n")
    (etc / "nsswitch.conf").write_text("hosts: files dns\n")
    (etc / "resolv.conf").write_text("nameserver 10.0.2.3\n")
    (etc / "hostname").write_text("dockercourse-vm\n")
    osr = binaries.find(["/etc/os-release", "/usr/lib/os-release"])
    if osr:  # the userland is this distribution's binaries
        (etc / "os-release").write_text(Path(osr).read_text())
    ca = binaries.find(["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"])
    if ca:
        _copy(ca, root, "/etc/ssl/certs/ca-certificates.crt")
    (etc / "docker").mkdir(exist_ok=True)
    (etc / "docker/daemon.json").write_text(json.dumps(inp["engine"]["daemon"], indent=1) + "\n")
    (etc / "dockercourse-engine.json").write_text(json.dumps(inp["engine"], indent=1) + "\n")
    init = root / "sbin/engine-init"
    if init.exists() or init.is_symlink():
        init.unlink()
    init.write_bytes(scripts.data(scripts.STAGE2_DOCKER))
    init.chmod(0o755)


def build_system_disk(out: Path, inp: dict, log) -> Path:
    """Write the Docker flavour's system disk (``out`` + ``.part``) from :func:`inputs`."""
    staging = Path(tempfile.mkdtemp(prefix="stage-", dir=engine_cache()))
    try:
        root = staging
        for d in _DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        _copy_binaries(root, inp)
        _link_applets(root)
        _write_etc(root, inp)
        return write_ext4(root, out, "dcengine")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
