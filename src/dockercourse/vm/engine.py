"""A Docker engine inside a qemu VM, for machines where the course gets no engine and
no privileges (Binder), and for throwaway engines in isolated grading.

How it is made (all as an ordinary user, from the host's own packages):

* the kernel and its modules: :mod:`.kernel` (host's ``/boot`` or Debian's cloud kernel
  unpacked from its ``.deb``);
* a tiny initramfs (busybox + the modules) that mounts the system disk and
  ``switch_root``s into it;
* the system disk, an ext4 image written by ``mke2fs -d`` (no root, no loop device):
  busybox, the engine (``dockerd``, ``containerd``, ``containerd-shim-runc-v2``,
  ``docker-proxy``, ``docker-init``) from the course's Debian packages (Docker 28.5,
  :func:`dockercourse.engines.packages.ensure_packages`; the host's own binaries only when
  those cannot be fetched), the host's ``runc`` and ``iptables-legacy``, their libraries,
  and ``/var/lib/docker``. The guest mounts cgroup v2 and runs ``dockerd`` with the
  containerd image store. It is *seeded* once: booted writable, the course images loaded
  into its engine (from the host's registry mirror, else the host's engine, else Docker
  Hub), then shut down cleanly. The disk, not RAM, holds the binaries and images, so the
  guest's memory stays small.
* every later boot uses that disk with ``snapshot=on``: writes go to a throwaway
  overlay, the seeded disk never changes, and any number of VMs can share it.

The engine's API is forwarded by qemu's user network to ``tcp://127.0.0.1:<free port>``
(loopback only); ports that containers publish are forwarded to the host's 127.0.0.1 at
the same port by a forwarder process (:mod:`.portfwd`) driving qemu's monitor. Inside
the guest the engine reaches the host's loopback as 10.0.2.2, which is how the host's
registry mirror serves pulls.

A second flavour, ``podman`` (:mod:`.podman`), boots the same kernel and initramfs on a
Debian trixie root file system (``mmdebstrap``) that runs Podman 5's Docker-compatible API.

API: :func:`up`, :func:`down`, :func:`status`, :func:`vm_engine` (context manager),
:func:`build` (artifacts only). CLI: ``dockercourse engine vm up|down|status``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dockercourse.errors import CourseError
from dockercourse.vm import cache_dir
from dockercourse.vm.boot import (
    Boot,
    BootError,
    boot,
    free_port,
    kvm_usable,
    require_qemu,
)
from dockercourse.vm.initramfs import build as build_initramfs
from dockercourse.vm.kernel import find_kernel, get_modules

__all__ = ["VMEngine", "up", "down", "status", "vm_engine", "build", "DEFAULT_IMAGES",
           "DEFAULT_MEMORY_MB", "state_root"]

#: Guest RAM. With the TCG translation cache (128 MB) and qemu itself, qemu's RSS
#: stays under 1 GB.
DEFAULT_MEMORY_MB = 768
#: Size of the (sparse) system disk; the seeded images use a fraction of it.
DISK_SIZE_MB = 6144
#: The course images loaded by default (gcc:12, 1.3 GB, only on request).
DEFAULT_IMAGES = ("busybox:1.35.0", "debian:bookworm-slim", "python:3.11-slim-bookworm",
                  "nginx:1.22", "registry:2.8")
GUEST_API_PORT = 2375
LAYOUT_VERSION = "3"
#: the course's engine packages the guest's engine comes from (see engines/specs.py)
ENGINE_PKGSET = "28.5"
#: the guest's flavours: Docker (this module) and Podman (:mod:`.podman`)
FLAVORS = ("docker", "podman")
#: the forwarder of published ports (``python -m`` this module), see :mod:`.portfwd`
PORTFWD_MODULE = "dockercourse.vm.portfwd"

MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "overlay", "bridge", "br_netfilter",
           "veth", "nf_conntrack", "nf_nat", "ip_tables", "iptable_nat", "iptable_filter",
           "xt_MASQUERADE", "xt_addrtype", "xt_conntrack", "xt_tcpudp", "xt_nat", "xt_mark",
           "ipt_REJECT", "nf_reject_ipv4", "xt_comment", "xt_multiport"]
OPTIONAL_MODULES = {"virtio_console", "xt_mark", "ipt_REJECT", "nf_reject_ipv4", "xt_comment",
                    "xt_multiport", "xt_tcpudp", "xt_nat"}
#: Docker 28 also writes the raw table (direct-routing protection) and ip6tables rules
#: (and flushes conntrack entries of UDP mappings through netlink)
DOCKER_MODULES = MODULES + ["iptable_raw", "ip6_tables", "ip6table_filter", "ip6table_nat", "ip6table_raw",
                            "nf_reject_ipv6", "ip6t_REJECT", "nf_conntrack_netlink"]
OPTIONAL_MODULES |= {"iptable_raw", "ip6_tables", "ip6table_filter", "ip6table_nat", "ip6table_raw",
                     "nf_reject_ipv6", "ip6t_REJECT", "nf_conntrack_netlink"}

BINARIES = {
    # guest path: candidates on the host
    "/usr/sbin/dockerd": ["/usr/sbin/dockerd", "/usr/bin/dockerd"],
    "/usr/bin/containerd": ["/usr/bin/containerd", "/usr/sbin/containerd"],
    "/usr/bin/containerd-shim-runc-v2": ["/usr/bin/containerd-shim-runc-v2"],
    "/usr/sbin/runc": ["/usr/sbin/runc", "/usr/bin/runc"],
    "/usr/sbin/docker-proxy": ["/usr/sbin/docker-proxy", "/usr/bin/docker-proxy",
                               "/usr/libexec/docker/docker-proxy"],
    "/usr/bin/docker-init": ["/usr/bin/docker-init", "/usr/sbin/docker-init",
                             "/usr/libexec/docker/docker-init"],
    "/usr/sbin/xtables-legacy-multi": ["/usr/sbin/xtables-legacy-multi"],
    "/bin/busybox": ["/bin/busybox", "/usr/bin/busybox"],
}
OPTIONAL_BINARIES = {"/usr/bin/docker-init", "/usr/sbin/docker-proxy"}
#: the engine's binaries in the course's unpacked packages (guest path: path in the package root)
PKG_BINARIES = {
    "/usr/sbin/dockerd": "usr/sbin/dockerd",
    "/usr/bin/containerd": "usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/docker-proxy": "usr/sbin/docker-proxy",
    "/usr/bin/docker-init": "usr/bin/docker-init",
}
#: always the host's: sid's runc needs a newer libc than Debian 12's; iptables-legacy; busybox
HOST_ONLY = ("/usr/sbin/runc", "/usr/sbin/xtables-legacy-multi", "/bin/busybox")
APT_PACKAGES = "qemu-system-x86 qemu-utils runc iptables busybox-static e2fsprogs debian-archive-keyring"

STAGE1 = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "dockercourse: stage1"
for m in $(cat /modules.order); do insmod /lib/dcmod/$m.ko 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
  echo "dockercourse: cannot mount the system disk /dev/vda"; poweroff -f
fi
umount /dev 2>/dev/null; umount /sys; umount /proc
exec switch_root /newroot /sbin/engine-init
"""

STAGE2 = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
cgroup=v2
for a in $(cat /proc/cmdline); do
  case "$a" in dc.cgroup=v1) cgroup=v1;; esac
done
# cgroup v2 (the unified hierarchy, as on current distributions and Docker Desktop), its
# controllers enabled for child groups so dockerd can apply limits; else cgroup v1
if [ "$cgroup" = v2 ] && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup 2>/dev/null; then
  for c in cpuset cpu io memory pids hugetlb misc rdma; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.controllers && echo "+$c" 2>/dev/null > /sys/fs/cgroup/cgroup.subtree_control
  done
  # the engine in a group of its own, as under systemd (dockerd then finds memory.swap.max)
  mkdir -p /sys/fs/cgroup/engine && echo $$ > /sys/fs/cgroup/engine/cgroup.procs
  echo "dockercourse: cgroup v2 ($(cat /sys/fs/cgroup/cgroup.subtree_control))"
else
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for c in cpuset cpu,cpuacct blkio memory devices freezer net_cls,net_prio perf_event hugetlb pids; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c 2>/dev/null || rmdir /sys/fs/cgroup/$c
  done
  for pair in cpu:cpu,cpuacct cpuacct:cpu,cpuacct net_cls:net_cls,net_prio net_prio:net_cls,net_prio; do
    [ -d /sys/fs/cgroup/${pair#*:} ] && ln -s ${pair#*:} /sys/fs/cgroup/${pair%%:*}
  done
  echo "dockercourse: cgroup v1"
fi
hostname dockercourse-vm
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 1 > /proc/sys/net/ipv4/ip_forward
# published ports: qemu forwards the host's 127.0.0.1:P to 10.0.2.15:P (from 10.0.2.2, see
# portfwd.py); deliver those to the guest's 127.0.0.1:P, where docker-proxy listens for every
# binding (127.0.0.1:P as well as 0.0.0.0:P). The API port stays as it is.
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
iptables -t nat -A PREROUTING -i eth0 -s 10.0.2.2 -d 10.0.2.15 -p tcp -m tcp ! --dport 2375 -j DNAT --to-destination 127.0.0.1
iptables -t nat -A PREROUTING -i eth0 -s 10.0.2.2 -d 10.0.2.15 -p udp -j DNAT --to-destination 127.0.0.1
mirror=""
for a in $(cat /proc/cmdline); do
  case "$a" in dc.mirror=*) mirror="${a#dc.mirror=}";; esac
done
# the image store and storage driver are in /etc/docker/daemon.json (engine.daemon_config)
set -- --host tcp://0.0.0.0:2375 --tls=false --iptables=true \
  --data-root /var/lib/docker --exec-root /run/docker --pidfile /run/docker.pid
if [ -n "$mirror" ]; then
  # the host's mirror at the same address as on the host: 127.0.0.1:PORT -> 10.0.2.2:PORT
  iptables -t nat -A OUTPUT -d 127.0.0.1/32 -p tcp --dport "$mirror" -j DNAT --to-destination "10.0.2.2:$mirror"
  iptables -t nat -A POSTROUTING -s 127.0.0.1/32 -o eth0 -j MASQUERADE
  set -- "$@" --registry-mirror "http://127.0.0.1:$mirror"
fi
mkdir -p /var/log
echo "dockercourse: starting dockerd"
dockerd "$@" > /var/log/dockerd.log 2>&1 &
halt_engine() {
  echo "dockercourse: halting"
  kill -TERM $(pidof dockerd) 2>/dev/null
  i=0
  while pidof dockerd >/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -TERM $(pidof containerd) 2>/dev/null
  sleep 0.5
  sync
  mount -o remount,ro / 2>/dev/null
  sync
  echo "dockercourse: halted"
  poweroff -f
}
trap halt_engine TERM
( i=0; while [ $i -lt 600 ]; do
    if grep -q "API listen on" /var/log/dockerd.log 2>/dev/null; then echo "dockercourse: engine ready"; exit 0; fi
    if ! pidof dockerd >/dev/null; then echo "dockercourse: dockerd died:"; tail -n 20 /var/log/dockerd.log; exit 1; fi
    sleep 0.1; i=$((i+1)); done ) &
if [ -e /dev/hvc0 ]; then
  while read -r cmd < /dev/hvc0; do
    case "$cmd" in
      halt) halt_engine;;
      log) tail -n 40 /var/log/dockerd.log;;
    esac
  done
fi
while :; do sleep 3600; done
"""


@dataclass
class VMEngine:
    """A running VM engine."""

    docker_host: str
    pid: int
    port: int
    state_dir: str
    accel: str
    memory_mb: int
    boot_seconds: float = 0.0
    name: str = "default"
    images: list = field(default_factory=list)
    started: float = 0.0
    portfwd_pid: int = 0
    flavor: str = "docker"
    engine: str = ""  # what runs in the guest ("Docker 28.5.2 (the course's Debian packages: ...)")
    _boot: Boot | None = field(default=None, repr=False, compare=False)
    _portfwd: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def client(self, timeout: int = 300):
        """A ``docker.DockerClient`` for this engine."""
        import docker

        return docker.DockerClient(base_url=self.docker_host, version="auto", timeout=timeout)

    def env(self) -> dict[str, str]:
        """Environment variables that point docker (CLI and docker-py) at this engine."""
        return {"DOCKER_HOST": self.docker_host}

    def rss_bytes(self) -> int:
        return _rss(self.pid)


# --------------------------------------------------------------------------- paths

def state_root() -> Path:
    """Per-user state directory (``DOCKERCOURSE_VM_STATE`` overrides it)."""
    env = os.environ.get("DOCKERCOURSE_VM_STATE")
    if env:
        p = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        p = Path(base) / "dockercourse" / "vm"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _engine_cache() -> Path:
    p = cache_dir() / "engine"
    p.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------- build

def _find(cands: list[str]) -> Path | None:
    for c in cands:
        if os.path.exists(c) and os.access(c, os.R_OK):
            return Path(c)
    return None


def _libs(binary: Path) -> list[Path]:
    """Shared libraries (and the loader) a binary needs, from ``ldd``."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split()
        for tok in parts:
            if tok.startswith("/") and os.path.exists(tok):
                out.append(Path(tok))
                break
    return out


def _copy(src: Path, root: Path, dest: str) -> None:
    d = root / dest.lstrip("/")
    d.parent.mkdir(parents=True, exist_ok=True)
    if d.exists() or d.is_symlink():
        return
    shutil.copy2(os.path.realpath(src), d)


def _dockerd_version(dockerd: Path) -> str:
    """``"28.5.2"`` from ``dockerd --version`` ("" when it does not run here)."""
    try:
        r = subprocess.run([str(dockerd), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    import re

    m = re.search(r"version\s+v?(\d+\.\d+(?:\.\d+)?)", r.stdout)
    return m.group(1) if m else ""


def engine_binaries(log=print) -> dict:
    """Where the guest's engine comes from.

    The course's Debian packages (Docker 28.5: ``ensure_packages("28.5")``, fetched once as
    any user), else, when they cannot be fetched (not Debian/Ubuntu, no network), this
    machine's own ``dockerd``/``containerd``. ``runc``, ``iptables-legacy`` and busybox are
    always the host's. ``DOCKERCOURSE_VM_BINARIES=host`` forces the host's engine.

    Returns:
        ``{"source": "packages"|"host", "title": str, "version": "28.5.2", "versions": {pkg: ver},
        "paths": {guest path: host path}, "fallback_reason": str}``.

    Raises:
        CourseError: neither the packages nor the host's binaries are there.
    """
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for dest in HOST_ONLY:
        p = _find(BINARIES[dest])
        if p is None:
            missing.append(dest.rsplit("/", 1)[-1].replace("xtables-legacy-multi", "iptables"))
        else:
            paths[dest] = p
    if missing:
        raise CourseError(f"the VM engine needs {', '.join(missing)} on this machine; fix: "
                          f"sudo apt-get install -y {APT_PACKAGES} (Binder: binder/apt.txt)")
    why = ""
    if os.environ.get("DOCKERCOURSE_VM_BINARIES", "").lower() == "host":
        why = "DOCKERCOURSE_VM_BINARIES=host"
    else:
        try:
            from dockercourse.engines.packages import ensure_packages, package_versions

            root = ensure_packages(ENGINE_PKGSET)
            pk = {dest: root / rel for dest, rel in PKG_BINARIES.items()}
            lack = [d for d, p in pk.items() if not p.exists() and d not in OPTIONAL_BINARIES]
            if lack:
                raise CourseError(f"{root} has no {', '.join(lack)}")
            versions = package_versions(ENGINE_PKGSET)
            version = ".".join(map(str, _upstream(versions.get("docker.io", "")))) or _dockerd_version(
                pk["/usr/sbin/dockerd"])
            paths.update({d: p for d, p in pk.items() if p.exists()})
            short = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("docker.io", "containerd"))
            return {"source": "packages", "pkgset": ENGINE_PKGSET, "version": version, "versions": versions,
                    "paths": paths, "fallback_reason": "",
                    "title": f"Docker {version} (the course's Debian packages: {short})"}
        except Exception as e:  # noqa: BLE001 - any failure to fetch: the host's binaries
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    lack = []
    for dest, cands in BINARIES.items():
        if dest in HOST_ONLY:
            continue
        p = _find(cands)
        if p is None:
            if dest not in OPTIONAL_BINARIES:
                lack.append(dest.rsplit("/", 1)[-1])
            continue
        paths[dest] = p
    if lack:
        raise CourseError(f"the VM engine's Docker comes from the course's Debian packages, which could not be "
                          f"fetched ({why}), and this machine has no {', '.join(lack)} either; fix: make "
                          f"{os.environ.get('DOCKERCOURSE_DEBIAN_MIRROR', 'http://deb.debian.org/debian')} "
                          "reachable (DOCKERCOURSE_DEBIAN_MIRROR), or sudo apt-get install -y docker.io")
    version = _dockerd_version(paths["/usr/sbin/dockerd"])
    versions = {}
    with contextlib.suppress(Exception):  # not a dpkg system: no versions
        from dockercourse.engines.packages import dpkg_version

        versions = {k: v for k in ("docker.io", "containerd") if (v := dpkg_version(k))}
    log(f"vm: the course's engine packages are not available ({why}); using this machine's dockerd "
        f"{version or '(unknown version)'}")
    return {"source": "host", "pkgset": None, "version": version, "versions": versions, "paths": paths,
            "fallback_reason": why,
            "title": f"Docker {version or '?'} (this machine's {paths['/usr/sbin/dockerd']}; the course's "
                     f"packages could not be fetched: {why})"}


def _upstream(debver: str) -> tuple[int, ...]:
    try:
        from dockercourse.engines.packages import upstream

        return upstream(debver) if debver else ()
    except Exception:  # noqa: BLE001
        return ()


def daemon_config(version: str) -> dict:
    """The guest's ``/etc/docker/daemon.json``: the containerd image store with its
    ``overlayfs`` snapshotter (Docker 24+; the store of the course's primary engine and of
    Docker Desktop), else the classic store's ``overlay2`` (``DOCKERCOURSE_VM_SNAPSHOTTER=0``,
    or the host's older dockerd)."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major >= 24 and os.environ.get("DOCKERCOURSE_VM_SNAPSHOTTER", "1") != "0":
        return {"features": {"containerd-snapshotter": True}, "storage-driver": "overlayfs"}
    return {"storage-driver": "overlay2"}


def requirements() -> list[str]:
    """What this machine lacks to build the Docker VM engine (empty: nothing). The engine
    itself comes from the course's packages (fetched) or the host; qemu, runc, iptables,
    busybox and mke2fs must be installed."""
    from dockercourse.vm.boot import qemu_binary

    out = []
    if qemu_binary() is None:
        out.append("qemu-system-x86")
    for dest in HOST_ONLY:
        if _find(BINARIES[dest]) is None:
            out.append({"/usr/sbin/runc": "runc", "/usr/sbin/xtables-legacy-multi": "iptables",
                        "/bin/busybox": "busybox-static"}[dest])
    if not shutil.which("mke2fs") and not os.path.exists("/sbin/mke2fs"):
        out.append("e2fsprogs")
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")) and _find(BINARIES["/usr/sbin/dockerd"]) is None:
        out.append("docker.io (no apt-get to fetch the course's packages)")
    return out


def _inputs(log=print) -> dict:
    """What the system disk is made of (for the cache key): paths, sizes and mtimes of
    every binary copied in (so other binaries make another disk), the engine's source and
    versions, its daemon.json, the init scripts and the module list."""
    k = find_kernel()
    eng = engine_binaries(log)
    found = {}
    for dest, p in eng["paths"].items():
        st = os.stat(p)
        found[dest] = (str(p), st.st_size, int(st.st_mtime))
    if not shutil.which("mke2fs") and not os.path.exists("/sbin/mke2fs"):
        raise CourseError("the VM engine needs mke2fs; fix: sudo apt-get install -y e2fsprogs")
    return {"layout": LAYOUT_VERSION, "kernel": k.version, "binaries": found,
            "engine": {"source": eng["source"], "version": eng["version"], "versions": eng["versions"],
                       "title": eng["title"], "fallback_reason": eng["fallback_reason"],
                       "daemon": daemon_config(eng["version"])},
            "modules": DOCKER_MODULES,
            "stage1": hashlib.sha256(STAGE1.encode()).hexdigest()[:16],
            "stage2": hashlib.sha256(STAGE2.encode()).hexdigest()[:16]}


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _disk_key(inp: dict) -> str:
    """The key of a system disk's inputs; the engine's title (which, for the host-binaries
    fallback, quotes why the packages could not be fetched) is for people, not the key."""
    eng = {k: v for k, v in inp.get("engine", {}).items() if k not in ("title", "fallback_reason")}
    return _key({**inp, "engine": eng})


def initrd_for(modules: list[str], log) -> Path:
    """The initramfs (cached) that loads ``modules`` and switches to the system disk."""
    k = find_kernel(log)
    out = _engine_cache() / f"initrd-{_key([k.version, modules, STAGE1])}.gz"
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
    files: dict[str, Path | bytes] = {"bin/busybox": _find(BINARIES["/bin/busybox"])}
    order = []
    for name, path in mods.items():
        if name not in order:
            order.append(name)
            files[f"lib/dcmod/{name}.ko"] = path
    files["modules.order"] = ("\n".join(order) + "\n").encode()
    for lib in _libs(files["bin/busybox"]):  # a dynamic busybox needs its libraries
        files[str(lib).lstrip("/")] = lib
    return build_initramfs(out, files, STAGE1)


def _build_system_disk(out: Path, inp: dict, log) -> Path:
    staging = Path(tempfile.mkdtemp(prefix="stage-", dir=_engine_cache()))
    try:
        root = staging
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "etc", "proc", "sys", "dev",
                  "run", "tmp", "var/lib/docker", "var/log", "root", "newroot", "mnt"):
            (root / d).mkdir(parents=True, exist_ok=True)
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
            libs.update(_libs(b))
        for lib in libs:
            _copy(lib, root, str(lib))
            real = Path(os.path.realpath(lib))
            if real != lib:
                _copy(real, root, str(real))
        # busybox applets as symlinks (skip names a real binary already has)
        r = subprocess.run([str(root / "bin/busybox"), "--list-full"], capture_output=True, text=True)
        for applet in r.stdout.split():
            link = root / applet
            if link.exists() or link.is_symlink():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
        for name in ("iptables", "iptables-save", "iptables-restore", "iptables-legacy",
                     "iptables-legacy-save", "iptables-legacy-restore", "ip6tables", "ip6tables-save",
                     "ip6tables-restore", "ip6tables-legacy"):
            link = root / "usr/sbin" / name
            if not link.exists():
                link.symlink_to("xtables-legacy-multi")
        etc = root / "etc"
        (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        (etc / "group").write_text("root:x:0:\ntty:x:5:\ndocker:x:999:\nnogroup:x:65534:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost dockercourse-vm\n")
        (etc / "nsswitch.conf").write_text("hosts: files dns\n")
        (etc / "resolv.conf").write_text("nameserver 10.0.2.3\n")
        (etc / "hostname").write_text("dockercourse-vm\n")
        osr = _find(["/etc/os-release", "/usr/lib/os-release"])
        if osr:  # the userland is this distribution's binaries
            (etc / "os-release").write_text(Path(osr).read_text())
        ca = _find(["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"])
        if ca:
            _copy(ca, root, "/etc/ssl/certs/ca-certificates.crt")
        (etc / "docker").mkdir(exist_ok=True)
        (etc / "docker/daemon.json").write_text(json.dumps(inp["engine"]["daemon"], indent=1) + "\n")
        (etc / "dockercourse-engine.json").write_text(json.dumps(inp["engine"], indent=1) + "\n")
        init = root / "sbin/engine-init"
        if init.exists() or init.is_symlink():
            init.unlink()
        init.write_text(STAGE2)
        init.chmod(0o755)
        mke2fs = shutil.which("mke2fs") or "/sbin/mke2fs"
        part = out.with_name(out.name + ".part")
        if part.exists():
            part.unlink()
        r = subprocess.run([mke2fs, "-q", "-F", "-t", "ext4", "-L", "dcengine", "-m", "0",
                            "-E", "root_owner=0:0,lazy_itable_init=1,nodiscard", "-d", str(root),
                            str(part), f"{DISK_SIZE_MB}M"], capture_output=True, text=True)
        if r.returncode != 0:
            part.unlink(missing_ok=True)
            raise CourseError(f"mke2fs failed: {r.stderr.strip()[-200:]}; fix: apt-get install e2fsprogs (>= 1.43)")
        return part
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Artifacts:
    kernel: Path
    initrd: Path
    disk: Path
    key: str
    images: list
    flavor: str = "docker"
    engine: dict = field(default_factory=dict)  # source, version, title (the disk's metadata)


def _flavor_inputs(flavor: str, log, rebuild: bool = False) -> tuple[dict, list[str], str]:
    """(cache-key inputs, kernel modules, disk file prefix) of a flavour."""
    if flavor == "docker":
        return _inputs(log), DOCKER_MODULES, "system"
    if flavor == "podman":
        from dockercourse.vm import podman

        return podman.inputs(log, rebuild=rebuild), podman.MODULES, "podman"
    raise CourseError(f"unknown VM engine flavour {flavor!r}; choose one of: {', '.join(FLAVORS)}")


def build(images=DEFAULT_IMAGES, *, rebuild: bool = False, log=print, accel: str = "auto",
          memory_mb: int = DEFAULT_MEMORY_MB, mirror_port: int | None = None, flavor: str = "docker") -> Artifacts:
    """Make (or find in the cache) the kernel, initramfs and seeded system disk of ``flavor``
    ("docker": Docker 28.5 from the course's packages; "podman": Podman on Debian trixie)."""
    require_qemu()
    images = sorted(set(images))
    k = find_kernel(log)
    inp, modules, prefix = _flavor_inputs(flavor, log, rebuild)
    sys_key = _disk_key(inp)
    ecache = _engine_cache()
    if rebuild:
        (ecache / f"initrd-{_key([k.version, modules, STAGE1])}.gz").unlink(missing_ok=True)
    initrd = initrd_for(modules, log)
    disk_key = f"{sys_key}-{_key(images)}"
    disk = ecache / f"{prefix}-{disk_key}.img"
    meta = ecache / f"{prefix}-{disk_key}.json"

    def artifacts() -> Artifacts:
        m = json.loads(meta.read_text())
        return Artifacts(k.image, initrd, disk, disk_key, m.get("images", []), flavor,
                         m.get("inputs", {}).get("engine", {}))

    if rebuild or not disk.is_file() or not meta.is_file():
        # one builder at a time (parallel grading workers share the cache); leftovers of
        # an interrupted build are removed under the lock
        import fcntl

        with open(ecache / "build.lock", "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            if not rebuild and disk.is_file() and meta.is_file():
                return artifacts()
            for junk in list(ecache.glob("seed-*")) + list(ecache.glob("stage-*")):
                shutil.rmtree(junk, ignore_errors=True)
            for junk in ecache.glob("*.part"):
                junk.unlink(missing_ok=True)
            _build_disk(k, initrd, disk, meta, inp, sys_key, images, log, accel, memory_mb, mirror_port,
                        flavor, prefix)
    return artifacts()


def _build_disk(k, initrd, disk, meta, inp, sys_key, images, log, accel, memory_mb, mirror_port,
                flavor="docker", prefix="system") -> list[str]:
    ecache = _engine_cache()
    t0 = time.monotonic()
    if flavor == "podman":
        from dockercourse.vm import podman

        log(f"vm: building the podman system disk ({inp['engine']['title']}, kernel {k.version})")
        part = podman.build_disk(disk, inp, log)
    else:
        log(f"vm: building the system disk ({inp['engine']['title']}, kernel {k.version})")
        part = _build_system_disk(disk, inp, log)
    t_disk = time.monotonic() - t0
    try:
        loaded = _seed(k.image, initrd, part, images, log=log, accel=accel, memory_mb=memory_mb,
                       mirror_port=mirror_port)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, disk)
    meta.write_text(json.dumps({"inputs": inp, "flavor": flavor, "images": loaded, "initrd": initrd.name,
                                "disk_seconds": round(t_disk, 1), "seconds": round(time.monotonic() - t0, 1),
                                "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    # remove disks of this flavour made from other binaries or another kernel (a running
    # VM keeps reading an unlinked disk); disks of other image lists with these binaries
    # stay, and so do the other flavour's
    for old in ecache.glob(f"{prefix}-*"):
        if not old.name.startswith(f"{prefix}-{sys_key}-"):
            old.unlink(missing_ok=True)
    wanted = {initrd.name}
    for m in ecache.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            wanted.add(json.loads(m.read_text()).get("initrd", ""))
    for old in ecache.glob("initrd-*.gz"):
        if old.name not in wanted:
            old.unlink(missing_ok=True)
    log(f"vm: system disk ready ({len(loaded)} images, {time.monotonic() - t0:.0f} s; "
        f"the disk itself {t_disk:.0f} s)")
    return loaded


# --------------------------------------------------------------------------- images

def _mirror_port() -> int | None:
    """The host's course registry mirror port, when it answers on 127.0.0.1."""
    cands = []
    env = os.environ.get("DOCKERCOURSE_MIRROR_PORT")
    if env and env.isdigit():
        cands.append(int(env))
    try:
        cands.append(int(Path("/var/lib/dockercourse/mirror-port").read_text().strip()))
    except (OSError, ValueError):
        pass
    cands.append(5501)
    for port in dict.fromkeys(cands):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                if r.status == 200:
                    return port
        except Exception:
            continue
    return None


def _host_engine():
    """A client for the host's own engine (not DOCKER_HOST, which may be a VM), or None.

    The default socket, then the course's own engine's socket (``scripts/engine-up``).
    """
    import docker

    from dockercourse.engines.specs import DEFAULT_SOCKET, course_socket

    for path in (DEFAULT_SOCKET, str(course_socket())):
        if not os.path.exists(path):
            continue
        try:
            c = docker.DockerClient(base_url=f"unix://{path}", version="auto", timeout=300)
            c.ping()
            return c
        except (docker.errors.DockerException, OSError):
            continue
    return None


def load_images(client, images, *, mirror: bool, log=print) -> list[str]:
    """Put ``images`` into the engine behind ``client``: pull (through the mirror when the
    engine has one, else from Docker Hub), else copy from the host's engine."""
    import docker.errors

    done = []
    host = None
    for ref in images:
        try:
            client.images.get(ref)
            done.append(ref)
            continue
        except docker.errors.ImageNotFound:
            pass
        t0 = time.monotonic()
        how = None
        try:
            repo, tag = ref.rsplit(":", 1)
            client.images.pull(repo, tag=tag)
            how = "pulled through the host's mirror" if mirror else "pulled"
        except Exception as e:  # noqa: BLE001 - fall back to the host engine
            err = str(e).splitlines()[0][:300]
            host = host or _host_engine()
            if host is not None:
                try:
                    host.images.get(ref)
                    stream = host.api.get_image(ref)
                    client.api.load_image(_IterFile(stream))
                    how = f"copied from the host's engine; the pull failed: {err}"
                except Exception as e2:  # noqa: BLE001
                    err = str(e2).splitlines()[0][:300]
            if how is None:
                log(f"vm: {ref}: not loaded ({err})")
                continue
        done.append(ref)
        log(f"vm: {ref}: {how} ({time.monotonic() - t0:.0f} s)")
    if host is not None:
        host.close()
    return done


class _IterFile:
    """A file-like object over an iterator of bytes (for docker-py's load_image)."""

    def __init__(self, it):
        self.it = iter(it)
        self.buf = b""

    def read(self, n=-1):
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def __iter__(self):
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return
            yield chunk


def _seed(kernel: Path, initrd: Path, disk: Path, images, *, log, accel, memory_mb, mirror_port) -> list[str]:
    """Boot ``disk`` writable, load ``images``, shut the guest down cleanly."""
    mirror_port = mirror_port if mirror_port is not None else _mirror_port()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="seed-", dir=_engine_cache()))
    ctl = work / "ctl.sock"
    append = "quiet" + (f" dc.mirror={mirror_port}" if mirror_port else "")
    log(f"vm: seeding the disk with {len(images)} images"
        + (f" from the mirror on 127.0.0.1:{mirror_port}" if mirror_port else ""))
    b = boot(kernel, initrd, append, memory_mb, accel=accel, hostfwd=[(port, GUEST_API_PORT)],
             drives=[{"file": disk, "format": "raw", "if": "virtio", "cache": "unsafe"}],
             extra_args=_ctl_args(ctl), workdir=work, die_with_parent=True)
    try:
        _wait_api(b, port, timeout=_api_timeout(b.accel))
        import docker

        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="auto", timeout=900)
        loaded = load_images(client, images, mirror=bool(mirror_port), log=log)
        client.close()
        _send(ctl, "halt")
        try:
            b.wait_for(b"dockercourse: halted", timeout=90)
            b.proc.wait(30)
        except (BootError, subprocess.TimeoutExpired) as e:
            raise CourseError(f"the seeding VM did not shut down cleanly: {e}") from None
        return loaded
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


def _ctl_args(ctl: Path) -> list[str]:
    return ["-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=ctl0,path={ctl},server=on,wait=off",
            "-device", "virtconsole,chardev=ctl0,bus=vser0.0"]


def _send(ctl: Path, cmd: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(ctl))
        s.sendall(cmd.encode() + b"\n")
        time.sleep(0.3)


def _api_timeout(accel: str) -> float:
    return float(os.environ.get("DOCKERCOURSE_VM_TIMEOUT", 60 if accel == "kvm" else 240))


def _ping(port: int, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ping", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def _wait_api(b: Boot, port: int, timeout: float) -> float:
    """Wait until the engine answers /_ping; return seconds since qemu started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not b.alive():
            raise BootError(f"the VM stopped before its engine answered; console:\n{b.tail(25)}")
        if "dockercourse: dockerd died" in b.console or "dockercourse: engine died" in b.console:
            time.sleep(0.5)
            raise BootError(f"dockerd failed in the VM; console:\n{b.tail(30)}")
        if _ping(port, 1):
            return time.monotonic() - b.t_start
        time.sleep(0.1)
    raise BootError(f"the VM engine did not answer within {timeout:.0f} s ({b.accel}); console:\n{b.tail(25)}")


# --------------------------------------------------------------------------- up/down

def _state_dir(name: str) -> Path:
    return state_root() / name


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _is_our_qemu(pid: int, state_dir: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmd) and b"qemu" in cmd[0] and any(str(state_dir).encode() in a for a in cmd)


def up(*, memory_mb: int = DEFAULT_MEMORY_MB, images=DEFAULT_IMAGES, name: str = "default",
       accel: str = "auto", port: int | None = None, cpus: int | None = None, log=print,
       state_dir: Path | None = None, rebuild: bool = False, die_with_parent: bool = False,
       forward_ports: bool = True, flavor: str = "docker") -> VMEngine:
    """Boot a VM engine (building its artifacts on first use) and wait for its API.

    The VM outlives this process (``down(name)`` stops it); its state (pid, port) is in
    ``state_root()/name/state.json``. When one named ``name`` already runs, it is
    returned as it is (its port forwarder restarted if it died).

    With ``forward_ports`` a forwarder process (:mod:`.portfwd`) makes the ports that
    containers in the VM publish reachable on the host's 127.0.0.1 at the same port.

    ``flavor``: "docker" (Docker 28.5, cgroup v2, containerd image store) or "podman"
    (Podman 5's Docker-compatible API on a Debian trixie guest, :mod:`.podman`).

    Returns:
        A :class:`VMEngine`; ``.docker_host`` is ``tcp://127.0.0.1:<port>``.
    """
    sd = Path(state_dir) if state_dir else _state_dir(name)
    cur = status(name=name, state_dir=sd)
    if cur is not None and cur.get("running"):
        if cur.get("flavor", "docker") != flavor:
            raise CourseError(f"VM engine {name!r} runs the {cur.get('flavor', 'docker')} flavour; stop it first "
                              f"(dockercourse engine vm down --name {name}) or choose another --name")
        log(f"vm: engine {name!r} already running at {cur['docker_host']}")
        eng = VMEngine(**{k: v for k, v in cur.items() if k in VMEngine.__dataclass_fields__ and k[0] != "_"})
        if forward_ports and cur.get("monitor") and not cur.get("portfwd_running"):
            _start_portfwd(eng, sd, log)
            _write_state(eng, sd, monitor=True)
        return eng
    _cleanup_state(sd)
    reap_stale()
    if accel == "auto":
        accel = "kvm" if kvm_usable() else "tcg"
    art = build(images, rebuild=rebuild, log=log, accel=accel, memory_mb=memory_mb, flavor=flavor)
    sd.mkdir(parents=True, exist_ok=True)
    sd.chmod(0o700)  # the monitor socket and the overlay are this user's only
    port = port or free_port()
    cpus = cpus or default_cpus()
    mirror = _mirror_port()
    append = "quiet" + (f" dc.mirror={mirror}" if mirror else "")
    log(f"vm: booting {art.engine.get('title') or flavor} ({accel.upper()}{', emulated' if accel == 'tcg' else ''}, "
        f"{memory_mb} MB) ...")
    b = boot(art.kernel, art.initrd, append, memory_mb, accel=accel, hostfwd=[(port, GUEST_API_PORT)],
             drives=[{"file": art.disk, "format": "raw", "if": "virtio", "snapshot": "on", "cache": "unsafe"}],
             cpus=cpus, workdir=sd, die_with_parent=die_with_parent, monitor=forward_ports)
    try:
        t_api = _wait_api(b, port, timeout=_api_timeout(accel))
    except BaseException:
        b.close()
        shutil.rmtree(sd, ignore_errors=True)
        raise
    eng = VMEngine(docker_host=f"tcp://127.0.0.1:{port}", pid=b.proc.pid, port=port, state_dir=str(sd),
                   accel=accel, memory_mb=memory_mb, boot_seconds=round(t_api, 2), name=name,
                   images=list(art.images), started=time.time(), flavor=flavor,
                   engine=art.engine.get("title", ""), _boot=b)
    try:
        if forward_ports:
            _start_portfwd(eng, sd, log)
        _write_state(eng, sd, monitor=forward_ports)
    except BaseException:
        _stop_portfwd(sd, eng.portfwd_pid, eng._portfwd)
        b.close()
        shutil.rmtree(sd, ignore_errors=True)
        raise
    log(f"vm: engine ready in {t_api:.1f} s at {eng.docker_host}")
    return eng


def _write_state(eng: VMEngine, sd: Path, *, monitor: bool) -> None:
    d = {k: getattr(eng, k) for k in VMEngine.__dataclass_fields__ if not k.startswith("_")}
    d["monitor"] = monitor
    tmp = sd / ".state.json.tmp"
    tmp.write_text(json.dumps(d, indent=1))
    os.replace(tmp, sd / "state.json")


# --------------------------------------------------------------------------- published ports

def _start_portfwd(eng: VMEngine, sd: Path, log) -> None:
    """Start the forwarder of published ports (a process of its own: it outlives ``up``
    run from the CLI, and exits when qemu does)."""
    src = str(Path(__file__).resolve().parents[2])  # where the dockercourse package is
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(sd / "portfwd.log", "ab") as flog:
        proc = subprocess.Popen(
            [sys.executable, "-m", PORTFWD_MODULE, "--state-dir", str(sd), "--qemu-pid", str(eng.pid),
             "--api-port", str(eng.port)],
            stdin=subprocess.DEVNULL, stdout=flog, stderr=flog, env=env, cwd="/",
            start_new_session=True, close_fds=True)
    eng.portfwd_pid = proc.pid
    eng._portfwd = proc
    log(f"vm: published ports of containers are forwarded to 127.0.0.1 (forwarder pid {proc.pid})")


def _is_our_portfwd(pid: int, sd: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return PORTFWD_MODULE.encode() in cmd and str(sd).encode() in cmd


def _stop_portfwd(sd: Path, pid: int = 0, proc: subprocess.Popen | None = None) -> None:
    """Stop the forwarder of ``sd`` (its pid from state.json unless given)."""
    if not pid:
        try:
            pid = int(json.loads((sd / "state.json").read_text()).get("portfwd_pid", 0))
        except (OSError, ValueError):
            pid = 0
    if pid and _is_our_portfwd(pid, sd):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _is_our_portfwd(pid, sd):
            if proc is not None and proc.poll() is not None:
                break
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
        else:
            if _is_our_portfwd(pid, sd):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def default_cpus() -> int:
    """vCPUs: the host's count up to 2 (so the engine reports what a small host would)."""
    return max(1, min(2, os.cpu_count() or 1))


def _cleanup_state(sd: Path) -> None:
    if sd.exists():
        shutil.rmtree(sd, ignore_errors=True)


def status(*, name: str = "default", state_dir: Path | None = None) -> dict | None:
    """The state of VM engine ``name`` (None when there is none): its saved fields plus
    ``running`` (qemu alive), ``answers`` (API ping) and ``rss_bytes``."""
    sd = Path(state_dir) if state_dir else _state_dir(name)
    try:
        st = json.loads((sd / "state.json").read_text())
    except (OSError, ValueError):
        return None
    pid = int(st.get("pid", 0))
    st["running"] = pid > 0 and _is_our_qemu(pid, sd)
    st["answers"] = st["running"] and _ping(int(st["port"]))
    st["rss_bytes"] = _rss(pid) if st["running"] else 0
    fpid = int(st.get("portfwd_pid") or 0)
    st["portfwd_running"] = bool(st["running"] and fpid and _is_our_portfwd(fpid, sd))
    fw = read_forwards(sd) if st["portfwd_running"] else None
    st["forwards"] = (fw or {}).get("forwards", [])
    st["forwards_failed"] = (fw or {}).get("failed", [])
    return st


def read_forwards(sd: Path) -> dict | None:
    """The forwarder's current state (``forwards``, ``failed``), or None."""
    from dockercourse.vm.portfwd import read_state

    return read_state(sd)


def down(*, name: str = "default", state_dir: Path | None = None, log=print) -> bool:
    """Stop VM engine ``name`` (kill qemu, remove its state and overlay). True if one ran."""
    sd = Path(state_dir) if state_dir else _state_dir(name)
    st = status(name=name, state_dir=sd)
    ran = False
    if st is not None and st["running"]:
        pid = int(st["pid"])
        ran = True
        _stop_portfwd(sd)
        _stop_pid(pid, sd)
        log(f"vm: engine {name!r} stopped (pid {pid})")
    elif st is None and not sd.exists():
        log(f"vm: no engine {name!r} runs")
    _cleanup_state(sd)
    return ran


def _stop_pid(pid: int, sd: Path) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not _is_our_qemu(pid, sd):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                # reap it when it is our child (vm_engine); else just watch it go away
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if not Path(f"/proc/{pid}").exists() or not _is_our_qemu(pid, sd):
                return
            time.sleep(0.05)


@contextlib.contextmanager
def vm_engine(*, memory_mb: int = DEFAULT_MEMORY_MB, images=DEFAULT_IMAGES, accel: str = "auto",
              cpus: int | None = None, log=print, forward_ports: bool = True, flavor: str = "docker"):
    """A throwaway VM engine: booted on entry, destroyed (qemu, overlay, state) on exit.

    Yields a :class:`VMEngine`; use ``env.docker_host`` (for ``DOCKER_HOST``) or
    ``env.client()``. Each call gets its own VM and port, so parallel grading workers are
    isolated from each other and from the host's engine. The seeded system disk is
    shared read-only (built once, on first use). Ports its containers publish answer on
    the host's 127.0.0.1 (``forward_ports``; see :mod:`.portfwd`)::

        with vm_engine(images=["busybox:1.35.0"]) as env:
            subprocess.run([...], env={**os.environ, "DOCKER_HOST": env.docker_host})
    """
    name = f"w-{uuid.uuid4().hex[:10]}"
    sd = state_root() / name
    eng = up(memory_mb=memory_mb, images=images, name=name, accel=accel, cpus=cpus, log=log, state_dir=sd,
             die_with_parent=True, forward_ports=forward_ports, flavor=flavor)
    try:
        yield eng
    finally:
        _stop_portfwd(sd, eng.portfwd_pid, eng._portfwd)
        if eng._boot is not None:
            eng._boot.close(grace=2)
        _stop_pid(eng.pid, sd)
        _cleanup_state(sd)


def reap_stale() -> list[str]:
    """Remove state directories of throwaway VMs (``w-*``) whose qemu is gone (a worker
    that crashed); returns their names. Running VMs are left alone."""
    gone = []
    try:
        dirs = [d for d in state_root().iterdir() if d.is_dir() and d.name.startswith("w-")]
    except OSError:
        return gone
    for d in dirs:
        try:
            pid = int(json.loads((d / "state.json").read_text()).get("pid", 0))
        except (OSError, ValueError):
            # no state yet: a VM booting right now, or one that died booting; judge by age
            try:
                if time.time() - d.stat().st_mtime < 900:
                    continue
            except OSError:
                continue
            pid = 0
        if pid and _is_our_qemu(pid, d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        gone.append(d.name)
    return gone


def worker_init(images=DEFAULT_IMAGES, memory_mb: int = DEFAULT_MEMORY_MB, accel: str = "auto",
                log=None) -> VMEngine:
    """Give this process its own throwaway VM engine until it exits.

    For a ``ProcessPoolExecutor(initializer=worker_init, initargs=(...))``: boots a VM,
    sets ``os.environ["DOCKER_HOST"]`` (so ``connect()`` and the notebook kernels this
    worker starts use it), and stops the VM when the worker process ends normally
    (a ``multiprocessing`` finalizer; atexit does not run in pool workers). If the worker
    is killed, qemu dies with it (``PR_SET_PDEATHSIG``) and the next ``up``/``reap_stale``
    removes its state directory.
    """
    import multiprocessing.util

    name = f"w-{uuid.uuid4().hex[:10]}"
    sd = state_root() / name
    eng = up(memory_mb=memory_mb, images=images, name=name, accel=accel, state_dir=sd,
             log=log or (lambda *_: None), die_with_parent=True)
    os.environ["DOCKER_HOST"] = eng.docker_host
    multiprocessing.util.Finalize(None, _finish_worker, args=(eng.pid, str(sd), eng.portfwd_pid),
                                  exitpriority=100)
    return eng


def _finish_worker(pid: int, sd: str, portfwd_pid: int = 0) -> None:
    _stop_portfwd(Path(sd), portfwd_pid)
    _stop_pid(pid, Path(sd))
    _cleanup_state(Path(sd))


# --------------------------------------------------------------------------- for setup cells and doctor

def find_by_docker_host(docker_host: str | None = None) -> dict | None:
    """The state of the VM engine whose DOCKER_HOST is ``docker_host`` (default: the
    environment's), or None when it is not one of this user's VM engines."""
    docker_host = docker_host or os.environ.get("DOCKER_HOST", "")
    if not docker_host.startswith("tcp://127.0.0.1:"):
        return None
    try:
        root = state_root()
        dirs = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return None
    for d in dirs:
        st = status(state_dir=d)
        if st and st.get("docker_host") == docker_host:
            return st
    return None


def describe(docker_host: str | None = None) -> str | None:
    """One line for ``doctor``: "VM (emulated, TCG): Docker 28.5.2, booted in 35 s, qemu RSS 500 MB, ...",
    or None when DOCKER_HOST is not a VM engine of this user."""
    st = find_by_docker_host(docker_host)
    if st is None:
        return None
    kind = "VM (KVM)" if st.get("accel") == "kvm" else "VM (emulated, TCG: containers start in seconds, not milliseconds)"
    what = (st.get("engine") or "").split(" (", 1)[0]
    return (f"{kind}: {what + ', ' if what else ''}booted in {st.get('boot_seconds')} s, {st.get('memory_mb')} MB guest, "
            f"qemu RSS {st.get('rss_bytes', 0) / 2**20:.0f} MB, "
            f"{'answering' if st.get('answers') else 'not answering'}")


def wait_ready(docker_host: str | None = None, timeout: float = 900, progress=None) -> bool:
    """Wait until the engine at ``docker_host`` (default DOCKER_HOST) answers /_ping.

    For a notebook's setup cell on Binder, where ``binder/start`` boots the VM in the
    background: prints one updating progress line (``progress(text)`` if given, else
    ``\\r`` on stdout). Returns True when it answers, False on timeout. Returns at once
    for engines that are not on 127.0.0.1 TCP.
    """
    import sys

    docker_host = docker_host or os.environ.get("DOCKER_HOST", "")
    if not docker_host.startswith("tcp://127.0.0.1:"):
        return True
    port = int(docker_host.rsplit(":", 1)[1])
    t0 = time.monotonic()
    shown = False
    while True:
        if _ping(port, 1):
            if shown:
                msg = f"VM engine ready after {time.monotonic() - t0:.0f} s"
                progress(msg) if progress else print("\r" + msg + " " * 20, flush=True)
            return True
        waited = time.monotonic() - t0
        if waited > timeout:
            return False
        phase = "starting"
        log = Path(os.environ.get("DOCKERCOURSE_VM_UP_LOG", state_root().parent / "vm-up.log"))
        try:
            last = [ln for ln in log.read_text().splitlines() if ln.strip()][-1]
            phase = last.replace("vm: ", "")[:70]
        except (OSError, IndexError):
            pass
        msg = f"waiting for the VM engine ({waited:.0f} s): {phase}"
        if progress:
            progress(msg)
        else:
            sys.stdout.write("\r" + msg[:100].ljust(100))
            sys.stdout.flush()
        shown = True
        time.sleep(2)
