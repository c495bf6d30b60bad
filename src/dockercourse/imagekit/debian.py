"""Host side of the offline builds: Debian bookworm's packages and the .deb cache.

Everything that needs the network (apt) happens here, on the host; containers
that build images never get a network. apt reads Debian bookworm's archive through a
private configuration under the kit's cache (the system's sources stay as they are), so
the kit builds the same images on any host with apt: Debian 12, Ubuntu (Binder), Debian 13.
No root is needed: the root file system is bootstrapped inside the engine (:mod:`.build`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from dockercourse import config
from dockercourse.engines.specs import DEBIAN_MIRROR, KEYRING
from dockercourse.errors import ImageKitError

SUITE = "bookworm"
#: how old the private package lists may get before they are read again
LISTS_MAX_AGE = 86400

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


def kit_cache() -> Path:
    """The kit's cache (downloaded .debs, the private package lists): ``DOCKERCOURSE_KIT_CACHE``,
    by default ``/var/cache/dockercourse`` as root and ``~/.cache/dockercourse/kit`` for anyone else."""
    if config.is_set("DOCKERCOURSE_KIT_CACHE") or os.geteuid() == 0:
        return config.path("DOCKERCOURSE_KIT_CACHE")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockercourse" / "kit"


def apt_cache() -> Path:
    """Where the downloaded .debs are kept, so a rebuild needs no network."""
    d = kit_cache() / "apt"
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
            msg += f" (not in Debian {SUITE}'s archive?)"
        raise ImageKitError(f"{what} failed: {msg[:300]}")
    return p.stdout


def _apt_env() -> dict:
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env["LC_ALL"] = "C"
    return env


def _archive_dir() -> Path:
    return kit_cache() / "archive"


def sources_text(mirror: str) -> str:
    """bookworm, its updates and its security fixes (where the mirror is Debian's layout)."""
    m = mirror.rstrip("/")
    repos = [(m, SUITE), (m, f"{SUITE}-updates")]
    if m.endswith("/debian"):
        repos.append((f"{m}-security", f"{SUITE}-security"))
    lines = [f"deb [signed-by={KEYRING}] {url} {suite} main" for url, suite in repos]
    return "\n".join(lines) + "\n"


def _archive_opts() -> list[str]:
    from dockercourse.engines.packages import private_apt_options

    return private_apt_options(_archive_dir())


_ARCHIVE_LOCK = threading.Lock()
_archive_read = False


def _lists(a: Path) -> list[Path]:
    return list((a / "lists").glob("*_Packages*"))


def ensure_archive(log=None) -> None:
    """Write the private apt configuration and read bookworm's package lists (at most daily; with
    lists already there, a failed read keeps them: the kit then works from its cache, offline)."""
    global _archive_read
    with _ARCHIVE_LOCK:
        if _archive_read:
            return
        need_tool("apt-get", "apt")
        if not os.path.exists(KEYRING):
            raise ImageKitError(
                f"the image kit reads Debian's archive, signed with {KEYRING}, which is missing: "
                "apt-get install debian-archive-keyring"
            )
        a = _archive_dir()
        for d in (a / "lists" / "partial", a / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        text = sources_text(DEBIAN_MIRROR)
        src = a / "sources.list"
        if not src.exists() or src.read_text() != text:
            src.write_text(text)
            for f in _lists(a):
                f.unlink()
        lists = _lists(a)
        if not lists or time.time() - min(f.stat().st_mtime for f in lists) > LISTS_MAX_AGE:
            if log:
                log(f"reading Debian {SUITE}'s package lists ({DEBIAN_MIRROR}) ...")
            p = subprocess.run(
                ["apt-get", *_archive_opts(), "update", "-qq"], capture_output=True, text=True, env=_apt_env()
            )
            if p.returncode != 0 and not _lists(a):
                last = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no package lists"]
                raise ImageKitError(
                    f"cannot read Debian {SUITE}'s package lists from {DEBIAN_MIRROR}: {last[0][:200]} "
                    "(set DOCKERCOURSE_DEBIAN_MIRROR to a reachable Debian mirror)"
                )
        _archive_read = True


def _apt_opts(status_file: Path | None) -> list[str]:
    ensure_archive()
    opts = [
        *_archive_opts(),
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
            ["sh", "-c", 'cd "$0" && exec apt-get -q "$@"', str(cache), *_apt_opts(None), "download"]
            + missing,
            f"downloading {len(missing)} Debian packages",
            env=_apt_env(),
        )
    lost = [f.name for f in files if not f.exists()]
    if lost:
        raise ImageKitError(f"Debian packages missing after download: {', '.join(lost[:5])}")
    return files


def candidate_version(package: str) -> str | None:
    """The version Debian bookworm's archive offers (the private lists), or None."""
    try:
        p = subprocess.run(["apt-cache", *_apt_opts(None), "policy", package], capture_output=True, text=True)
    except OSError:
        return None
    m = re.search(r"Candidate:\s*(\S+)", p.stdout)
    return m.group(1) if m and m.group(1) != "(none)" else None


def busybox_binary(workdir: Path) -> tuple[Path, str]:
    """Debian bookworm's static busybox, from its .deb (in the cache, else downloaded): the same
    binary on every host, whatever busybox the host has."""
    ver = candidate_version("busybox-static")
    if not ver:
        raise ImageKitError(f"Debian {SUITE}'s archive offers no busybox-static")
    (deb,) = fetch([("busybox-static", ver, _arch())])
    _run(["dpkg-deb", "-x", str(deb), str(workdir / "bb")], "unpacking busybox-static")
    return workdir / "bb" / "bin" / "busybox", ver


def _arch() -> str:
    return _run(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()


def minbase_packages() -> list[str]:
    """What ``mmdebstrap --variant=minbase`` installs: every package that is Essential or of
    priority required, and apt; ``usr-is-merged`` says /usr is merged (no ``usrmerge`` run)."""
    out = _run(["apt-cache", *_apt_opts(None), "dumpavail"], f"listing Debian {SUITE}'s packages")
    names = set()
    for stanza in out.split("\n\n"):
        if re.search(r"^(Essential: yes|Priority: required)$", stanza, re.M):
            m = re.search(r"^Package: (\S+)$", stanza, re.M)
            if m:
                names.add(m.group(1))
    if "dpkg" not in names:
        raise ImageKitError(f"Debian {SUITE}'s package lists name no essential packages")
    return sorted(names | {"apt", "usr-is-merged"})


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
