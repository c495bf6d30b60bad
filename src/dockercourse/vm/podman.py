"""The VM engine's ``podman`` flavour: Podman 5 through its Docker-compatible API.

Podman 5 needs a newer C library than Debian 12's, so its binaries cannot be copied from
the host like the Docker flavour's. The guest's userland is instead a Debian trixie root
file system made by ``mmdebstrap --variant=minbase`` (as root; as an ordinary user with
``--mode=unshare``, which needs ``uidmap`` and ``/etc/subuid``), booted with the same
kernel and initramfs as the Docker flavour. Its init (catatonit as PID 1, then
:data:`INIT`) mounts cgroup v2, configures the network like the Docker guest and runs
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
like the Docker flavour's, and seeded the same way (:func:`.engine._seed`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from dockercourse.errors import CourseError
from dockercourse.vm.kernel import find_kernel

SUITE = "trixie"
PACKAGES = ["podman", "crun", "conmon", "netavark", "aardvark-dns", "catatonit", "nftables", "iproute2",
            "procps", "ca-certificates"]
ROOTFS_LAYOUT = "1"
#: nftables for netavark and for the guest's own rules, on top of the Docker guest's list
NFT_MODULES = ["nf_conntrack_netlink", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_fib", "nft_fib_inet",
               "nft_fib_ipv4", "nft_fib_ipv6", "nft_reject", "nft_reject_inet", "nft_reject_ipv4",
               "nft_reject_ipv6", "nft_compat", "nft_redir", "nft_limit"]


def _base_modules() -> list[str]:
    from dockercourse.vm.engine import MODULES

    return list(MODULES) + NFT_MODULES


MODULES = _base_modules()

CONTAINERS_CONF = """\
# dockercourse VM engine (podman flavour): no systemd, no journald in the guest
[containers]
log_driver = "k8s-file"
netns = "bridge"

[engine]
cgroup_manager = "cgroupfs"
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

#: PID 1: catatonit reaps the orphans conmon leaves and runs the init script
ENGINE_INIT = """#!/bin/sh
exec /usr/libexec/podman/catatonit -- /usr/lib/dockercourse/init.sh
"""

INIT = r"""#!/bin/sh
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
if mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup; then
  for c in cpuset cpu io memory pids hugetlb misc rdma; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.controllers && echo "+$c" 2>/dev/null > /sys/fs/cgroup/cgroup.subtree_control
  done
  mkdir -p /sys/fs/cgroup/engine && echo $$ > /sys/fs/cgroup/engine/cgroup.procs
  echo "dockercourse: cgroup v2 ($(cat /sys/fs/cgroup/cgroup.subtree_control))"
else
  echo "dockercourse: cannot mount cgroup2 (podman needs it here)"
fi
hostname dockercourse-vm
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
mirror=""
for a in $(cat /proc/cmdline); do
  case "$a" in dc.mirror=*) mirror="${a#dc.mirror=}";; esac
done
{
  echo 'table ip dockercourse {'
  # published ports: a new connection qemu delivers from the host (10.0.2.2 -> 10.0.2.15:P)
  # is readdressed to 127.0.0.1:P after conntrack saw it and before NAT, so netavark's DNAT
  # (for 127.0.0.1:P and 0.0.0.0:P bindings alike) takes it to the container; conntrack
  # keeps 10.0.2.15:P as the original address, so replies leave with it
  echo '  chain dc_pre { type filter hook prerouting priority -150; policy accept;'
  echo '    iifname "eth0" ip saddr 10.0.2.2 ip daddr 10.0.2.15 ct state new tcp dport != 2375 ip daddr set 127.0.0.1'
  echo '    iifname "eth0" ip saddr 10.0.2.2 ip daddr 10.0.2.15 ct state new meta l4proto udp ip daddr set 127.0.0.1'
  echo '  }'
  if [ -n "$mirror" ]; then
    # the host's mirror at the same address as on the host: 127.0.0.1:PORT -> 10.0.2.2:PORT
    echo '  chain dc_out { type nat hook output priority -100; policy accept;'
    echo "    ip daddr 127.0.0.1 tcp dport $mirror dnat to 10.0.2.2:$mirror"
    echo '  }'
    echo '  chain dc_masq { type nat hook postrouting priority 100; policy accept;'
    echo '    oifname "eth0" ip saddr 127.0.0.1 masquerade'
    echo '  }'
  fi
  echo '}'
} > /run/dockercourse.nft
nft -f /run/dockercourse.nft || echo "dockercourse: nft rules failed"
if [ -n "$mirror" ]; then
  cat > /etc/containers/registries.conf.d/99-dockercourse-mirror.conf <<EOF
[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"

[[registry.mirror]]
location = "127.0.0.1:$mirror"
insecure = true
EOF
fi
mkdir -p /var/log /run/containers /var/lib/containers
echo "dockercourse: starting podman"
podman system service --time=0 tcp://0.0.0.0:2375 > /var/log/podman.log 2>&1 &
halt_engine() {
  echo "dockercourse: halting"
  for c in $(podman ps -q 2>/dev/null); do podman stop -t 2 "$c" >/dev/null 2>&1; done
  kill -TERM $(pidof podman) 2>/dev/null
  i=0
  while pidof podman >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  sync
  mount -o remount,ro / 2>/dev/null
  sync
  echo "dockercourse: halted"
  echo o > /proc/sysrq-trigger
}
trap halt_engine TERM
( i=0; while [ $i -lt 1200 ]; do
    if ss -ltn 2>/dev/null | grep -q ':2375 '; then echo "dockercourse: engine ready"; exit 0; fi
    if ! pidof podman >/dev/null; then echo "dockercourse: engine died:"; tail -n 20 /var/log/podman.log; exit 1; fi
    sleep 0.1; i=$((i+1)); done ) &
if [ -e /dev/hvc0 ]; then
  while read -r cmd < /dev/hvc0; do
    case "$cmd" in
      halt) halt_engine;;
      log) tail -n 40 /var/log/podman.log;;
    esac
  done
fi
while :; do sleep 3600; done
"""


def debian_mirror() -> str:
    """The Debian archive to build from: ``DOCKERCOURSE_DEBIAN_MIRROR``, else the host's own
    Debian mirror (from its apt sources), else deb.debian.org."""
    env = os.environ.get("DOCKERCOURSE_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            try:
                texts.append(p.read_text())
            except OSError:
                pass
    for t in texts:
        for m in re.finditer(r"(?m)^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?://\S+)", t):
            url = m.group(1).rstrip("/")
            if url.endswith("/debian") and "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def _rootfs_dir() -> Path:
    from dockercourse.vm.engine import _engine_cache

    p = _engine_cache() / "debian"
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
        raise CourseError("the podman flavour makes a Debian trixie root file system with mmdebstrap; fix: "
                          "sudo apt-get install -y mmdebstrap")
    part = tar.with_suffix(".tar.part")
    part.unlink(missing_ok=True)
    cmd = [mm, "--variant=minbase", f"--include={','.join(PACKAGES)}",
           "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
           "--dpkgopt=path-exclude=/usr/share/locale/*", "--format=tar"]
    if os.geteuid() != 0:
        cmd.append("--mode=unshare")
    cmd += [SUITE, str(part), mirror]
    log(f"vm: making a Debian {SUITE} root file system with podman (mmdebstrap, {mirror}) ...")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or not part.is_file():
        part.unlink(missing_ok=True)
        err = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.startswith("E:")] or \
            (r.stderr or r.stdout).strip().splitlines()[-3:] or ["?"]
        hint = (" (as an ordinary user mmdebstrap needs --mode=unshare: apt-get install uidmap and give the "
                "user a range in /etc/subuid and /etc/subgid)" if os.geteuid() != 0 else "")
        raise CourseError(f"mmdebstrap {SUITE} failed: {' / '.join(err)[:400]}{hint}")
    versions = _dpkg_versions(part)
    os.replace(part, tar)
    info = {"suite": SUITE, "mirror": mirror, "versions": versions, "seconds": round(time.monotonic() - t0, 1)}
    meta.write_text(json.dumps(info, indent=1))
    for old in d.glob(f"{SUITE}-*"):
        if old not in (tar, meta):
            old.unlink(missing_ok=True)
    log(f"vm: root file system ready ({tar.stat().st_size / 2**20:.0f} MB, {time.monotonic() - t0:.0f} s)")
    return tar, info


def _short(ver: str) -> str:
    return re.split(r"[+~-]", ver.split(":", 1)[-1], maxsplit=1)[0]


def inputs(log=print, rebuild: bool = False) -> dict:
    """What the podman system disk is made of (the cache key), like ``engine._inputs``."""
    from dockercourse.vm.engine import LAYOUT_VERSION, STAGE1

    k = find_kernel()
    tar, info = rootfs(log, rebuild=rebuild)
    st = tar.stat()
    v = info.get("versions", {})
    version = _short(v.get("podman", "")) or "?"
    parts = ", ".join(f"{p} {v[p]}" for p in ("podman", "crun", "netavark") if p in v)
    if not shutil.which("mke2fs") and not os.path.exists("/sbin/mke2fs"):
        raise CourseError("the VM engine needs mke2fs; fix: sudo apt-get install -y e2fsprogs")
    return {"layout": LAYOUT_VERSION, "flavor": "podman", "kernel": k.version,
            "rootfs": (str(tar), st.st_size, int(st.st_mtime)),
            "engine": {"source": f"debian-{SUITE}", "version": version,
                       "versions": {p: v[p] for p in ("podman", "crun", "conmon", "netavark", "aardvark-dns",
                                                       "libc6") if p in v},
                       "title": f"Podman {version} (Debian {SUITE}: {parts})"},
            "modules": MODULES,
            "stage1": hashlib.sha256(STAGE1.encode()).hexdigest()[:16],
            "init": hashlib.sha256((ENGINE_INIT + INIT + CONTAINERS_CONF + STORAGE_CONF).encode()).hexdigest()[:16]}


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


def build_disk(out: Path, inp: dict, log) -> Path:
    """Write the podman system disk (``out`` + ``.part``): the root file system, the
    course's init and configuration, by ``mke2fs -d``."""
    from dockercourse.vm.engine import DISK_SIZE_MB, _engine_cache

    tar = Path(inp["rootfs"][0])
    staging = Path(tempfile.mkdtemp(prefix="stage-", dir=_engine_cache()))
    try:
        root = staging / "root"
        root.mkdir()
        fix = _extract(tar, root)
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
        (lib / "init.sh").write_text(INIT)
        (lib / "init.sh").chmod(0o755)
        init = root / "usr/sbin/engine-init"
        init.write_text(ENGINE_INIT)
        init.chmod(0o755)
        for d in ("var/lib/containers/storage", "run", "tmp", "var/log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        mke2fs = shutil.which("mke2fs") or "/sbin/mke2fs"
        part = out.with_name(out.name + ".part")
        part.unlink(missing_ok=True)
        r = subprocess.run([mke2fs, "-q", "-F", "-t", "ext4", "-L", "dcpodman", "-m", "0",
                            "-E", "root_owner=0:0,lazy_itable_init=1,nodiscard", "-d", str(root),
                            str(part), f"{DISK_SIZE_MB}M"], capture_output=True, text=True)
        if r.returncode != 0:
            part.unlink(missing_ok=True)
            raise CourseError(f"mke2fs failed: {r.stderr.strip()[-200:]}; fix: apt-get install e2fsprogs (>= 1.43)")
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
            except OSError:
                pass
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
        r = subprocess.run([debugfs, "-w", "-f", f.name, str(img)], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise CourseError(f"debugfs could not set the owners of the podman disk's files: {r.stderr[-200:]}")
    finally:
        os.unlink(f.name)
