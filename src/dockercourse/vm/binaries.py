"""Where the Docker VM engine's binaries come from: the course's Debian packages (Docker 28.5,
:func:`dockercourse.engines.packages.ensure_packages`) or, when those cannot be fetched, the
host's own (:func:`engine_binaries`); the guest's ``daemon.json`` (:func:`daemon_config`);
and what this machine lacks to build the VM engine (:func:`requirements`).

The host always gives ``runc`` (sid's needs a newer libc than Debian 12's), ``iptables-legacy``
and ``busybox``. :mod:`.disk` copies these files into the system disk.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from dockercourse import config
from dockercourse.errors import CourseError

logger = logging.getLogger(__name__)

#: the course's engine packages the guest's engine comes from (see engines/specs.py)
ENGINE_PKGSET = "28.5"


BINARIES = {
    # guest path: candidates on the host
    "/usr/sbin/dockerd": ["/usr/sbin/dockerd", "/usr/bin/dockerd"],
    "/usr/bin/containerd": ["/usr/bin/containerd", "/usr/sbin/containerd"],
    "/usr/bin/containerd-shim-runc-v2": ["/usr/bin/containerd-shim-runc-v2"],
    "/usr/sbin/runc": ["/usr/sbin/runc", "/usr/bin/runc"],
    "/usr/sbin/docker-proxy": [
        "/usr/sbin/docker-proxy",
        "/usr/bin/docker-proxy",
        "/usr/libexec/docker/docker-proxy",
    ],
    "/usr/bin/docker-init": [
        "/usr/bin/docker-init",
        "/usr/sbin/docker-init",
        "/usr/libexec/docker/docker-init",
    ],
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


#: what a failure to fetch the course's packages can raise (then the host's binaries are used)
_PACKAGE_ERRORS = (CourseError, OSError, subprocess.SubprocessError, ValueError, KeyError, ImportError)


def find(cands: list[str]) -> Path | None:
    for c in cands:
        if os.path.exists(c) and os.access(c, os.R_OK):
            return Path(c)
    return None


def libs(binary: Path) -> list[Path]:
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


def have_mke2fs() -> bool:
    return bool(shutil.which("mke2fs")) or os.path.exists("/sbin/mke2fs")


def require_mke2fs() -> None:
    if not have_mke2fs():
        raise CourseError("the VM engine needs mke2fs; fix: sudo apt-get install -y e2fsprogs")


def _dockerd_version(dockerd: Path) -> str:
    """``"28.5.2"`` from ``dockerd --version`` ("" when it does not run here)."""
    try:
        r = subprocess.run([str(dockerd), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.debug("%s --version did not run (%s): version unknown", dockerd, e)
        return ""
    m = re.search(r"version\s+v?(\d+\.\d+(?:\.\d+)?)", r.stdout)
    return m.group(1) if m else ""


def _upstream(debver: str) -> tuple[int, ...]:
    try:
        from dockercourse.engines.packages import upstream

        return upstream(debver) if debver else ()
    except (ImportError, ValueError) as e:
        logger.debug("no upstream version in %r (%s)", debver, e)
        return ()


def _host_only_paths() -> dict[str, Path]:
    """runc, iptables-legacy and busybox: always the host's."""
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for dest in HOST_ONLY:
        p = find(BINARIES[dest])
        if p is None:
            missing.append(dest.rsplit("/", 1)[-1].replace("xtables-legacy-multi", "iptables"))
        else:
            paths[dest] = p
    if missing:
        raise CourseError(
            f"the VM engine needs {', '.join(missing)} on this machine; fix: "
            f"sudo apt-get install -y {APT_PACKAGES} (Binder: binder/apt.txt)"
        )
    return paths


def _from_packages(paths: dict[str, Path]) -> dict:
    """The engine from the course's Debian packages (fetched once); raises one of
    :data:`_PACKAGE_ERRORS` when they cannot be had."""
    from dockercourse.engines.packages import ensure_packages, package_versions

    root = ensure_packages(ENGINE_PKGSET)
    pk = {dest: root / rel for dest, rel in PKG_BINARIES.items()}
    lack = [d for d, p in pk.items() if not p.exists() and d not in OPTIONAL_BINARIES]
    if lack:
        raise CourseError(f"{root} has no {', '.join(lack)}")
    versions = package_versions(ENGINE_PKGSET)
    version = ".".join(map(str, _upstream(versions.get("docker.io", "")))) or _dockerd_version(
        pk["/usr/sbin/dockerd"]
    )
    paths.update({d: p for d, p in pk.items() if p.exists()})
    short = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("docker.io", "containerd"))
    return {
        "source": "packages",
        "pkgset": ENGINE_PKGSET,
        "version": version,
        "versions": versions,
        "paths": paths,
        "fallback_reason": "",
        "title": f"Docker {version} (the course's Debian packages: {short})",
    }


def _host_versions() -> dict:
    """The host's docker.io and containerd package versions (empty when not a dpkg system)."""
    try:
        from dockercourse.engines.packages import dpkg_version

        return {k: v for k in ("docker.io", "containerd") if (v := dpkg_version(k))}
    except (ImportError, OSError, subprocess.SubprocessError) as e:
        logger.debug("no dpkg versions of the host's engine (%s)", e)
        return {}


def _from_host(paths: dict[str, Path], why: str, log) -> dict:
    """The engine from this machine's own ``dockerd``/``containerd`` (the fallback)."""
    lack = []
    for dest, cands in BINARIES.items():
        if dest in HOST_ONLY:
            continue
        p = find(cands)
        if p is None:
            if dest not in OPTIONAL_BINARIES:
                lack.append(dest.rsplit("/", 1)[-1])
            continue
        paths[dest] = p
    if lack:
        raise CourseError(
            f"the VM engine's Docker comes from the course's Debian packages, which could not be "
            f"fetched ({why}), and this machine has no {', '.join(lack)} either; fix: make "
            f"{config.get('DOCKERCOURSE_DEBIAN_MIRROR')} "
            "reachable (DOCKERCOURSE_DEBIAN_MIRROR), or sudo apt-get install -y docker.io"
        )
    version = _dockerd_version(paths["/usr/sbin/dockerd"])
    versions = _host_versions()
    log(
        f"vm: the course's engine packages are not available ({why}); using this machine's dockerd "
        f"{version or '(unknown version)'}"
    )
    return {
        "source": "host",
        "pkgset": None,
        "version": version,
        "versions": versions,
        "paths": paths,
        "fallback_reason": why,
        "title": f"Docker {version or '?'} (this machine's {paths['/usr/sbin/dockerd']}; the course's "
        f"packages could not be fetched: {why})",
    }


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
    paths = _host_only_paths()
    if (config.get("DOCKERCOURSE_VM_BINARIES") or "").lower() == "host":
        why = "DOCKERCOURSE_VM_BINARIES=host"
    else:
        try:
            return _from_packages(paths)
        except _PACKAGE_ERRORS as e:  # any failure to fetch: the host's binaries (said in the title)
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            logger.info("the course's engine packages are not available: %s", why)
    return _from_host(paths, why, log)


def daemon_config(version: str) -> dict:
    """The guest's ``/etc/docker/daemon.json``: the containerd image store with its
    ``overlayfs`` snapshotter (Docker 24+; the store of the course's primary engine and of
    Docker Desktop), else the classic store's ``overlay2`` (``DOCKERCOURSE_VM_SNAPSHOTTER=0``,
    or the host's older dockerd)."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major >= 24 and config.get("DOCKERCOURSE_VM_SNAPSHOTTER") != "0":
        return {"features": {"containerd-snapshotter": True}, "storage-driver": "overlayfs"}
    return {"storage-driver": "overlay2"}


def requirements() -> list[str]:
    """What this machine lacks to build the Docker VM engine (empty: nothing). The engine
    itself comes from the course's packages (fetched) or the host; qemu, runc, iptables,
    busybox and mke2fs must be installed."""
    from dockercourse.vm.qemu import qemu_binary

    out = []
    if qemu_binary() is None:
        out.append("qemu-system-x86")
    for dest in HOST_ONLY:
        if find(BINARIES[dest]) is None:
            out.append(
                {
                    "/usr/sbin/runc": "runc",
                    "/usr/sbin/xtables-legacy-multi": "iptables",
                    "/bin/busybox": "busybox-static",
                }[dest]
            )
    if not have_mke2fs():
        out.append("e2fsprogs")
    if (
        not (shutil.which("apt-get") and shutil.which("dpkg-deb"))
        and find(BINARIES["/usr/sbin/dockerd"]) is None
    ):
        out.append("docker.io (no apt-get to fetch the course's packages)")
    return out
