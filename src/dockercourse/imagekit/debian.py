"""Host side of the offline builds: Debian packages, mmdebstrap, the .deb cache.

Everything that needs the network (apt) happens here, on the host; containers
that build images never get a network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from dockercourse import config
from dockercourse.errors import ImageKitError

#: Downloaded .debs are kept here so a rebuild needs no network.
CACHE_DIR = config.path("DOCKERCOURSE_KIT_CACHE")
SUITE = "bookworm"

#: Paths the official slim images leave out (docs, man pages, translations).
SLIM_DPKG_OPTS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/lintian/*",
]


def apt_cache() -> Path:
    d = CACHE_DIR / "apt"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageKitError(f"cannot create the kit's package cache {d}: {e.strerror}") from None
    return d


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ImageKitError(
            f"the offline build needs `{name}` (Debian package {package}), which is not installed: "
            f"apt-get install {package}"
        )
    return path


def _run(cmd: list[str], what: str, timeout: int = 600, env: dict | None = None) -> str:
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ImageKitError(f"{what} took longer than {timeout} s and was stopped") from None
    except OSError as e:
        raise ImageKitError(f"{what} could not start: {e.strerror}") from None
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        # apt and mmdebstrap put the useful line near the end, marked E:
        lines = [ln for ln in err if ln.startswith(("E:", "ERROR", "dpkg:"))] or err[-1:] or ["(no message)"]
        msg = lines[-1] if not lines[0].startswith("E: Unable to locate") else lines[0]
        if "Unable to locate package" in msg or "has no installation candidate" in msg:
            msg += " (is this a Debian bookworm host with `apt-get update` run?)"
        raise ImageKitError(f"{what} failed: {msg[:300]}")
    return p.stdout


def host_version(package: str) -> str | None:
    """The version of an installed host package, or None."""
    try:
        p = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}\t${Version}", package], capture_output=True, text=True
        )
    except OSError:
        return None
    if p.returncode != 0 or "install ok installed" not in p.stdout:
        return None
    return p.stdout.split("\t", 1)[1].strip()


def _apt_env() -> dict:
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env["LC_ALL"] = "C"
    return env


def _apt_opts(status_file: Path | None) -> list[str]:
    opts = [
        "-o",
        f"Dir::Cache::archives={apt_cache()}",
        "-o",
        "APT::Install-Recommends=false",
        "-o",
        "APT::Install-Suggests=false",
        "-o",
        "Debug::NoLocking=true",
    ]
    if status_file is not None:
        opts += ["-o", f"Dir::State::status={status_file}"]
    return opts


_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[(\S+)\]\)")


def resolve(packages: list[str], status_text: str) -> list[tuple[str, str, str]]:
    """(name, version, arch) of every package to add to a system with that dpkg status."""
    need_tool("apt-get", "apt")
    with tempfile.TemporaryDirectory(prefix="dc-kit-") as td:
        status = Path(td) / "status"
        status.write_text(status_text)
        out = _run(
            ["apt-get", "-s", *_apt_opts(status), "install", *packages],
            f"resolving Debian packages {' '.join(packages)}",
            env=_apt_env(),
        )
    res = []
    for line in out.splitlines():
        m = _INST.match(line)
        if m:
            res.append((m.group(1).split(":")[0], m.group(2), m.group(3)))
    return res


def deb_filename(name: str, version: str, arch: str) -> str:
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def fetch(pkgs: list[tuple[str, str, str]]) -> list[Path]:
    """The .deb files of those packages, downloaded into the cache when missing."""
    cache = apt_cache()
    files = [cache / deb_filename(*p) for p in pkgs]
    missing = [f"{n}={v}" for (n, v, a), f in zip(pkgs, files, strict=True) if not f.exists()]
    if missing:
        _run(
            ["sh", "-c", 'cd "$0" && exec apt-get -q download "$@"', str(cache), *missing],
            f"downloading {len(missing)} Debian packages",
            env=_apt_env(),
        )
    lost = [f.name for f in files if not f.exists()]
    if lost:
        raise ImageKitError(f"Debian packages missing after download: {', '.join(lost[:5])}")
    return files


def candidate_version(package: str) -> str | None:
    try:
        p = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True)
    except OSError:
        return None
    m = re.search(r"Candidate:\s*(\S+)", p.stdout)
    return m.group(1) if m and m.group(1) != "(none)" else None


def busybox_binary(workdir: Path) -> tuple[Path, str]:
    """Debian's static busybox: the host's busybox-static, else its .deb from the cache."""
    ver = host_version("busybox-static")
    if ver and Path("/bin/busybox").exists():
        return Path("/bin/busybox"), ver
    ver = candidate_version("busybox-static")
    if not ver:
        raise ImageKitError(
            "the Debian package busybox-static is neither installed nor known to apt: "
            "apt-get update && apt-get install busybox-static"
        )
    arch = _run(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()
    (deb,) = fetch([("busybox-static", ver, arch)])
    _run(["dpkg-deb", "-x", str(deb), str(workdir / "bb")], "unpacking busybox-static")
    return workdir / "bb" / "bin" / "busybox", ver


def mmdebstrap_minbase(out_tar: Path, log=None) -> str:
    """Build a Debian bookworm minbase root file system as a tarball; return its dpkg status."""
    need_tool("mmdebstrap", "mmdebstrap")
    cache = apt_cache()
    status_copy = out_tar.with_suffix(".status")
    cmd = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=auto",
        "--quiet",
        "--skip=download/empty",
        "--skip=essential/unlink",
        "--setup-hook",
        'mkdir -p "$1"/var/cache/apt/archives/',
        "--setup-hook",
        f"sync-in {cache} /var/cache/apt/archives/",
        "--customize-hook",
        f"sync-out /var/cache/apt/archives {cache}",
        "--customize-hook",
        f'cp "$1"/var/lib/dpkg/status {status_copy}',
        # the engine provides these per container
        "--customize-hook",
        'rm -f "$1"/etc/hostname "$1"/etc/resolv.conf',
    ]
    hooks = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    if hooks.is_dir():
        cmd += ["--hook-dir", str(hooks)]
    for o in SLIM_DPKG_OPTS:
        cmd += ["--dpkgopt", o]
    cmd += [SUITE, str(out_tar)]
    _run(cmd, "mmdebstrap --variant=minbase bookworm", timeout=900, env=_apt_env())
    return status_copy.read_text()


def dpkg_versions(status_text: str, names) -> dict[str, str]:
    out, cur = {}, None
    for line in status_text.splitlines():
        if line.startswith("Package: "):
            cur = line[9:].strip()
        elif line.startswith("Version: ") and cur in names:
            out[cur] = line[9:].strip()
    return out


def tar_bytes_of(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar archive (bytes) holding name -> (content, mode)."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, (data, mode) in files.items():
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.size = len(data)
            ti.mode = mode
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
