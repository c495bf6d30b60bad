"""A bootable x86_64 kernel and its modules, found or fetched without root.

Order of preference, among kernels of at least :data:`MIN_VERSION` (6.6: Docker 28's ``docker cp``
into a container fails on older ones):

1. the host's own ``/boot/vmlinuz-*`` when it is readable and its modules are under
   ``/lib/modules/<version>`` (Debian hosts with a kernel installed);
2. a kernel already unpacked in the cache (``~/.cache/dockercourse/vm/kernel/``,
   ``DOCKERCOURSE_VM_CACHE`` moves it);
3. Debian's (or Ubuntu's) kernel package, fetched with ``apt-get download`` and unpacked with
   ``dpkg-deb -x`` into the cache. This works as an ordinary user. On Debian the course's own
   package archive (the private apt configuration the engines come from) is asked first, for
   Debian 13's ``linux-image-amd64`` (6.12; Debian 12's is 6.1): the generic kernel, which has the
   9p file system the shared host folders need (:mod:`.shares`), before the cloud one, which has not. Then the
   system's apt lists; when they are missing (Binder images delete them) a private copy of
   the lists is fetched into the cache first (``apt-get update`` with ``Dir::State``
   pointing there). On Ubuntu, whose ``/boot/vmlinuz-*`` is readable by root only, this
   is the way too (Ubuntu 24.04's is 6.8).

When nothing newer can be had, an older kernel boots, with one line saying what fails there.

``DOCKERCOURSE_VM_KERNEL`` (a kernel image path) and ``DOCKERCOURSE_VM_MODULES`` (its
``/lib/modules/<version>`` directory) override the search.
"""

from __future__ import annotations

import gzip
import json
import logging
import lzma
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockercourse import config
from dockercourse.errors import CourseError
from dockercourse.vm import cache_dir

logger = logging.getLogger(__name__)

__all__ = [
    "MIN_VERSION",
    "KernelInfo",
    "find_kernel",
    "get_kernel",
    "get_modules",
    "kernel_packages",
    "new_enough",
]


@dataclass
class KernelInfo:
    """The kernel in use: image path, version, module directory, where it came from."""

    image: Path
    version: str
    moddir: Path | None
    source: str  # "host", "cache", "apt", "env"


_CURRENT: KernelInfo | None = None

#: The oldest kernel the VM engine boots without a warning. Docker 28 extracts ``docker cp``'s archive
#: in a namespace without /proc and sets modes with fchmodat2 (Linux 6.6); on 6.1 it falls back to
#: /proc/self/fd and the copy ends in "chmod ...: via /proc/self/fd/NN: no such file or directory".
MIN_VERSION = (6, 6)

#: The Debian release whose kernel the course's archive gives the VM (6.12 LTS in Debian 13).
KERNEL_SUITE = "trixie"

#: Bumped when the choice of kernel changes, so a cache made under the old choice is fetched again once
#: (3: Debian's generic kernel before the cloud one, for the 9p file system).
_POLICY = 3


def version_tuple(version: str) -> tuple[int, ...]:
    """``"6.12.117+deb13-cloud-amd64"`` -> ``(6, 12, 117)``."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(g) for g in m.groups() if g is not None) if m else ()


def new_enough(info: KernelInfo | None) -> bool:
    return info is not None and version_tuple(info.version)[:2] >= MIN_VERSION


def _readable(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            f.read(512)
        return True
    except OSError:
        return False


def _host_kernel() -> KernelInfo | None:
    boot = Path("/boot")
    try:
        images = sorted(boot.glob("vmlinuz-*"), reverse=True)
    except OSError:
        return None
    running = platform.release()
    images.sort(key=lambda p: p.name != f"vmlinuz-{running}")  # the running one first
    for img in images:
        ver = img.name[len("vmlinuz-") :]
        for base in (Path("/lib/modules"), Path("/usr/lib/modules")):
            moddir = base / ver
            if (moddir / "modules.dep").is_file() and _readable(img):
                return KernelInfo(img, ver, moddir, "host")
    return None


def _os_release() -> dict[str, str]:
    out = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v.strip().strip('"')
    except OSError as e:
        logger.debug("no /etc/os-release (%s): Debian's kernel packages are tried", e)
    return out


def kernel_packages() -> list[str]:
    """Metapackages to try, in order, for this distribution."""
    env = config.get("DOCKERCOURSE_VM_KERNEL_PKG")
    if env:
        return [env]
    osr = _os_release()
    ids = (osr.get("ID", "") + " " + osr.get("ID_LIKE", "")).split()
    if "ubuntu" in ids:
        return ["linux-image-virtual", "linux-image-generic", "linux-image-kvm"]
    # the generic kernel first: it has the 9p file system that shares host folders into the guest
    # (shares.py); the cloud kernel (a third of the size) has none
    return ["linux-image-amd64", "linux-image-cloud-amd64"]


def _kernel_root() -> Path:
    p = cache_dir() / "kernel"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _from_dir(root: Path, source: str) -> KernelInfo | None:
    for img in sorted((root / "boot").glob("vmlinuz-*")):
        ver = img.name[len("vmlinuz-") :]
        for base in (root / "lib/modules", root / "usr/lib/modules"):
            if (base / ver / "kernel").is_dir():
                _ensure_depmod(base / ver)
                return KernelInfo(img, ver, base / ver, source)
        return KernelInfo(img, ver, None, source)
    return None


def _cached_kernel(*, any_policy: bool = False) -> KernelInfo | None:
    """The kernel the cache holds: one new enough, or the best the archives gave under today's choice
    of kernel (``any_policy``: whatever it holds, the fallback when fetching fails)."""
    marker = _kernel_root() / "current.json"
    try:
        data = json.loads(marker.read_text())
        info = _from_dir(Path(data["root"]), "cache")
        if info and info.image.is_file() and (any_policy or data.get("policy") == _POLICY):
            return info
    except (OSError, ValueError, KeyError) as e:
        logger.debug("no kernel in the cache (%s)", e)
    return None


def _apt_opts(private: bool) -> list[str]:
    if not private:
        return []
    state = cache_dir() / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (state / d).mkdir(parents=True, exist_ok=True)
    return [
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Sandbox::User=" + (os.environ.get("USER") or "root"),
    ]


def _run(cmd: list[str], cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _resolve(meta: str, opts: list[str]) -> list[str]:
    """Concrete ``linux-image-<ver>...``/``linux-modules-<ver>...`` packages behind ``meta``."""
    r = _run(
        [
            "apt-cache",
            *opts,
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            meta,
        ]
    )
    if r.returncode != 0:
        return []
    names = []
    for line in r.stdout.splitlines():
        line = line.strip().lstrip("|")
        m = re.match(r"^(?:Depends:\s*)?(linux-(?:image|modules)(?:-unsigned)?-\d[\w.+-]*)$", line.strip())
        if m and m.group(1) not in names and not m.group(1).startswith("linux-image-unsigned"):
            names.append(m.group(1))
    return names


def _course_archive_opts(log) -> list[str]:
    """apt options for the course's own archive (the engines' private configuration), with Debian 13
    as the default release; ``[]`` on Ubuntu (its own VM kernel is new enough) or when it cannot be read."""
    from dockercourse.engines import packages
    from dockercourse.errors import EngineError

    osr = _os_release()
    if "ubuntu" in (osr.get("ID", "") + " " + osr.get("ID_LIKE", "")).split():
        return []
    try:
        opts = packages.archive_options()
    except (EngineError, OSError) as e:
        log(f"kernel: the course's package archive cannot be read ({e}); trying the system's")
        return []
    if f" {KERNEL_SUITE} " not in (packages.apt_dir() / "sources.list").read_text():
        return []
    return [*opts, "-o", f"APT::Default-Release={KERNEL_SUITE}"]


def _fetch_kernel(log) -> KernelInfo:
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise CourseError(
            "no readable kernel and no apt-get/dpkg-deb to fetch one; fix: set "
            "DOCKERCOURSE_VM_KERNEL=/path/to/vmlinuz (and DOCKERCOURSE_VM_MODULES=/lib/modules/<version>)"
        )
    pkgs: list[str] = []
    opts: list[str] = []
    for private in ("course", False, True):
        opts = _course_archive_opts(log) if private == "course" else _apt_opts(private)
        if private == "course" and not opts:
            continue
        if private is True:
            log("kernel: no usable apt lists; fetching a private copy into " + str(cache_dir() / "apt"))
            r = _run(["apt-get", *opts, "-qq", "update"], timeout=900)
            if r.returncode != 0:
                raise CourseError(
                    "cannot fetch the apt package lists for a VM kernel ("
                    + (r.stderr.strip().splitlines() or ["apt-get update failed"])[-1][:160]
                    + "); fix: run `apt-get update` as root, or set DOCKERCOURSE_VM_KERNEL"
                )
        for meta in kernel_packages():
            pkgs = _resolve(meta, opts)
            if any(p.startswith("linux-image-") for p in pkgs):
                break
            pkgs = []
        if pkgs:
            break
    if not pkgs:
        raise CourseError(
            f"apt knows no kernel package ({', '.join(kernel_packages())}); fix: "
            "`apt-get update` as root, or set DOCKERCOURSE_VM_KERNEL=/path/to/vmlinuz"
        )
    root_base = _kernel_root()
    name = pkgs[0]
    dest = root_base / name
    work = Path(tempfile.mkdtemp(prefix="dl-", dir=root_base))
    try:
        log(f"kernel: apt-get download {' '.join(pkgs)}")
        r = _run(["apt-get", *opts, "download", *pkgs], cwd=work, timeout=900)
        debs = sorted(work.glob("*.deb"))
        if r.returncode != 0 or not debs:
            raise CourseError(
                "apt-get download of the VM kernel failed ("
                + (r.stderr.strip().splitlines() or ["no .deb"])[-1][:160]
                + "); fix: check the package registry is reachable, or set DOCKERCOURSE_VM_KERNEL"
            )
        unpack = work / "root"
        for deb in debs:
            log(f"kernel: unpacking {deb.name}")
            r = _run(["dpkg-deb", "-x", str(deb), str(unpack)])
            if r.returncode != 0:
                raise CourseError(f"dpkg-deb -x {deb.name} failed: {r.stderr.strip()[:160]}")
        for deb in debs:
            deb.unlink()
        if dest.exists():
            shutil.rmtree(dest)
        unpack.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = _from_dir(dest, "apt")
    if info is None:
        raise CourseError(f"no /boot/vmlinuz-* in {', '.join(pkgs)}; fix: set DOCKERCOURSE_VM_KERNEL")
    if info.moddir is not None:
        _ensure_depmod(info.moddir)
    (root_base / "current.json").write_text(
        json.dumps({"root": str(dest), "packages": pkgs, "policy": _POLICY})
    )
    # drop older unpacked kernels
    for old in root_base.iterdir():
        if old.is_dir() and old != dest and old.name.startswith("linux-"):
            shutil.rmtree(old, ignore_errors=True)
    return info


def _ensure_depmod(moddir: Path) -> None:
    """Write ``modules.dep`` when the package left it out (it is made by depmod at install).

    Pure Python: each module's ``depends=`` field is read from its ``.modinfo`` strings.
    """
    if (moddir / "modules.dep").is_file():
        return
    files = sorted(
        p for p in (moddir / "kernel").rglob("*.ko*") if re.search(r"\.ko(\.(xz|gz|zst))?$", p.name)
    )
    by_name = {_modname(p.name): p.relative_to(moddir).as_posix() for p in files}
    direct: dict[str, list[str]] = {}
    for p in files:
        data = _module_bytes(p)
        m = re.search(rb"\0depends=([^\0]*)\0", b"\0" + data)
        direct[_modname(p.name)] = (
            [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []
        )

    def closure(name: str) -> list[str]:
        out: list[str] = []
        todo = list(direct.get(name, []))
        while todo:
            d = todo.pop(0)
            if d in out or d not in by_name:
                continue
            out.append(d)
            todo.extend(direct.get(d, []))
        return out

    lines = [f"{by_name[n]}: {' '.join(by_name[d] for d in closure(n))}".rstrip() for n in sorted(by_name)]
    tmp = moddir / "modules.dep.part"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, moddir / "modules.dep")


def find_kernel(log=print) -> KernelInfo:
    """The kernel to boot (see the module docstring for the order). Cached per process."""
    global _CURRENT
    if _CURRENT is not None and _CURRENT.image.is_file():
        return _CURRENT
    env = config.get("DOCKERCOURSE_VM_KERNEL")
    if env:
        img = Path(env).expanduser()
        if not _readable(img):
            raise CourseError(
                f"DOCKERCOURSE_VM_KERNEL={env} is not a readable file; fix the path or unset it"
            )
        mods = config.get("DOCKERCOURSE_VM_MODULES")
        moddir = Path(mods).expanduser() if mods else None
        ver = moddir.name if moddir else img.name.replace("vmlinuz-", "")
        _CURRENT = KernelInfo(img, ver, moddir, "env")
        return _CURRENT
    host = _host_kernel()
    info = host if new_enough(host) else _cached_kernel()
    if info is None:
        try:
            info = _fetch_kernel(log)
        except CourseError as e:
            info = host or _cached_kernel(any_policy=True)
            if info is None:
                raise
            log(f"kernel: {e}")
    if not new_enough(info):
        log(
            f"kernel: booting {info.version}, older than 6.6: `docker cp` into a container ends in an "
            "error there (the files are copied); fix: DOCKERCOURSE_VM_KERNEL"
        )
    _CURRENT = info
    return info


def get_kernel(log=print) -> Path:
    """Path of a bootable x86_64 kernel image; fetches one on first use.

    Raises:
        CourseError: no kernel could be found or fetched (the message says how to fix it).
    """
    return find_kernel(log).image


def _modname(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def _builtin(moddir: Path) -> set[str]:
    try:
        return {
            _modname(line.strip())
            for line in (moddir / "modules.builtin").read_text().splitlines()
            if line.strip()
        }
    except OSError:
        return set()


def _module_bytes(src: Path) -> bytes:
    data = src.read_bytes()
    if src.suffix == ".xz":
        return lzma.decompress(data)
    if src.suffix == ".gz":
        return gzip.decompress(data)
    if src.suffix == ".zst":
        if not shutil.which("zstd"):
            raise CourseError(f"module {src.name} is zstd-compressed; fix: apt-get install zstd")
        return subprocess.run(["zstd", "-dc", str(src)], capture_output=True, check=True).stdout
    return data


def _decompress(src: Path) -> Path:
    if src.suffix == ".ko":
        return src
    import hashlib

    out_dir = cache_dir() / "modules-plain" / hashlib.sha1(str(src.parent).encode()).hexdigest()[:12]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / re.sub(r"\.(xz|gz|zst)$", "", src.name)
    if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.write_bytes(_module_bytes(src))
    return out


def get_modules(names: list[str], log=print) -> dict[str, Path]:
    """Module files for ``names`` matching :func:`get_kernel`'s kernel, dependencies first.

    Returns an ordered ``{module name: path to an uncompressed .ko}``; insert the modules
    in this order (``insmod``). Modules built into the kernel are left out.

    Raises:
        CourseError: the kernel has no module directory, or a module is unknown.
    """
    info = find_kernel(log)
    if info.moddir is None:
        raise CourseError(
            f"kernel {info.image} has no module directory; "
            "fix: set DOCKERCOURSE_VM_MODULES=/lib/modules/<version>"
        )
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (info.moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, rest = line.split(":", 1)
        deps[_modname(mod)] = (mod, [_modname(d) for d in rest.split()])
    builtin = _builtin(info.moddir)
    order: dict[str, Path] = {}

    def visit(name: str, stack: tuple = ()) -> None:
        name = name.replace("-", "_")
        if name in order or name in stack:
            return
        if name not in deps:
            if name in builtin:
                return
            raise CourseError(
                f"kernel {info.version} has no module {name!r}; fix: use a kernel with it "
                "(DOCKERCOURSE_VM_KERNEL / DOCKERCOURSE_VM_MODULES)"
            )
        rel, ds = deps[name]
        # modules.dep lists dependencies deepest-last; insert those first
        for d in reversed(ds):
            visit(d, stack + (name,))
        p = Path(rel) if rel.startswith("/") else info.moddir / rel
        order[name] = _decompress(p)

    for n in names:
        visit(n)
    return order
