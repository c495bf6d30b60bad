"""Debian packages: the distribution's own (``apt-get install``) and the course's engine packages,
fetched with a private apt configuration (the system's sources stay as they are) and unpacked
with ``dpkg-deb -x`` under the state folder. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from dockercourse import config
from dockercourse.engines.specs import DEBIAN_MIRROR, KEYRING, PACKAGE_SETS, PackageSet, log
from dockercourse.errors import EngineError

#: Packages fetched as root; an ordinary user reuses them when they are there.
SYSTEM_HOME = Path("/var/lib/dockercourse")


def package_home() -> Path:
    """Where fetched packages live (``DOCKERCOURSE_PKGS`` overrides): ``/var/lib/dockercourse`` as root,
    else the user's cache (``~/.cache/dockercourse``): the VM engine fetches them as any user."""
    if config.get("DOCKERCOURSE_PKGS"):
        return config.path("DOCKERCOURSE_PKGS")
    if os.geteuid() == 0:
        return SYSTEM_HOME
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockercourse"


def dpkg_version(pkg: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg], capture_output=True, text=True)
    if r.returncode != 0 or "install ok installed" not in r.stdout:
        return None
    return r.stdout.split("\t", 1)[1].strip()


def _candidate_version(pkg: str) -> str | None:
    if not shutil.which("apt-cache"):
        return None
    r = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True)
    m = re.search(r"Candidate:\s*(\S+)", r.stdout)
    return m.group(1) if m and m.group(1) != "(none)" else None


def upstream(debver: str) -> tuple[int, ...]:
    """``"5:20.10.24+dfsg1-1+deb12u1"`` -> ``(20, 10, 24)``."""
    v = debver.split(":", 1)[-1]
    v = re.split(r"[+~-]", v, maxsplit=1)[0]
    out = []
    for part in v.split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def system_docker_version() -> str | None:
    """The distribution's docker.io: installed version, else the candidate apt would install."""
    return dpkg_version("docker.io") or _candidate_version("docker.io")


def apt_install(pkgs: list[str]) -> None:
    """Install distribution packages (only those missing), as ``docker.io`` would pull them in."""
    missing = [p for p in pkgs if not dpkg_version(p)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise EngineError(
            f"{', '.join(missing)} missing and there is no apt-get: install them with your "
            "distribution's package manager"
        )
    log(f"installing the distribution's {' '.join(missing)} (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        capture_output=True,
        text=True,
        env=env,
    )
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            capture_output=True,
            text=True,
            env=env,
        )
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        raise EngineError(f"apt-get install {' '.join(missing)} failed: {last[0]}")


def apt_dir() -> Path:
    return package_home() / "apt"


def _apt_options() -> list[str]:
    return private_apt_options(apt_dir())


def private_apt_options(a: Path) -> list[str]:
    """apt options that read only the configuration under ``a`` (``sources.list``, ``lists/``,
    ``cache/``), never the system's sources or preferences: the engines' archive, and the image kit's."""
    return [
        "-o",
        f"Dir::Etc::SourceList={a / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={a / 'lists'}",
        "-o",
        f"Dir::Cache={a / 'cache'}",
        "-o",
        "Dir::Etc::Preferences=/dev/null",
        "-o",
        "Dir::Etc::PreferencesParts=/dev/null",
        "-o",
        "APT::Sandbox::User=root",
        "-o",
        "Acquire::Retries=3",
    ]


def _write_apt_config() -> None:
    a = apt_dir()
    for d in (a / "lists" / "partial", a / "cache" / "archives" / "partial", a / "debs"):
        d.mkdir(parents=True, exist_ok=True)
    if not os.path.exists(KEYRING):
        apt_install(["debian-archive-keyring"])
    suites = sorted({s.suite for s in PACKAGE_SETS.values()})
    text = "".join(f"deb [signed-by={KEYRING}] {DEBIAN_MIRROR} {s} main\n" for s in suites)
    p = a / "sources.list"
    if not p.exists() or p.read_text() != text:
        p.write_text(text)
        for f in (a / "lists").glob("*_Packages*"):
            f.unlink()


def _apt_update(force: bool = False) -> None:
    lists = list((apt_dir() / "lists").glob("*_Packages*"))
    if lists and not force and time.time() - min(f.stat().st_mtime for f in lists) < 86400:
        return
    log(f"reading Debian's package lists ({DEBIAN_MIRROR}, private apt configuration) ...")
    r = subprocess.run(["apt-get", *_apt_options(), "update", "-qq"], capture_output=True, text=True)
    if r.returncode != 0 or not list((apt_dir() / "lists").glob("*_Packages*")):
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no package lists"]
        raise EngineError(
            f"cannot read Debian's package lists from {DEBIAN_MIRROR}: {last[0]} "
            "(set DOCKERCOURSE_DEBIAN_MIRROR to a reachable Debian mirror)"
        )


def archive_options() -> list[str]:
    """apt options for the course's private archive (its sources written, its lists read at most daily):
    what the engines' packages, and the VM engine's kernel, are fetched with."""
    _write_apt_config()
    _apt_update()
    return _apt_options()


def _madison(pkg: str) -> list[tuple[str, str]]:
    """``(version, suite)`` pairs the private archive offers for ``pkg``."""
    r = subprocess.run(["apt-cache", *_apt_options(), "madison", pkg], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] == pkg:
            m = re.search(r"\s(sid|trixie|unstable|testing|forky|bookworm)[/\s]", " " + parts[2] + " ")
            out.append((parts[1], m.group(1) if m else parts[2]))
    return out


def _pick(pkgset: PackageSet, pkg: str, pin: str) -> str:
    offers = _madison(pkg)
    suite = {"sid": ("sid", "unstable")}.get(pkgset.suite, (pkgset.suite,))
    for ver, s in offers:
        if s in suite and (upstream(ver)[: len(upstream(pin))] == upstream(pin)):
            return ver
    for ver, _ in offers:  # the same upstream release in another suite is as good
        if upstream(ver)[: len(upstream(pin))] == upstream(pin):
            return ver
    have = ", ".join(f"{v} ({s})" for v, s in offers) or "none"
    raise EngineError(
        f"Debian's archive no longer offers {pkg} {pin} (it has: {have}); "
        f"update the pins of engine packages {pkgset.name!r} in src/dockercourse/engines/specs.py"
    )


def pkg_root(pkgset: str) -> Path:
    """The unpacked packages of ``pkgset``; an ordinary user reuses root's when they are there
    (not when DOCKERCOURSE_PKGS names a folder: then that folder only)."""
    shared = SYSTEM_HOME / "pkgs" / pkgset / "root"
    mine = package_home() / "pkgs" / pkgset / "root"
    if (
        not config.is_set("DOCKERCOURSE_PKGS")
        and mine != shared
        and not (mine / "usr/sbin/dockerd").exists()
        and os.access(shared / "usr/sbin/dockerd", os.X_OK)
    ):
        return shared
    return mine


def ensure_packages(pkgset_name: str) -> Path:
    """Fetch (once) and unpack an engine's packages; returns the unpacked root."""
    ps = PACKAGE_SETS[pkgset_name]
    root = pkg_root(ps.name)
    stamp = root.parent / "versions.json"
    want = {"pins": ps.pins, "suite": ps.suite}
    try:
        have = json.loads(stamp.read_text())
    except (OSError, ValueError):
        have = {}
    if have.get("want") == want and (root / "usr/sbin/dockerd").exists():
        return root
    root = package_home() / "pkgs" / ps.name / "root"  # (re)made where this user may write
    stamp = root.parent / "versions.json"
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise EngineError(
            "the course's own engine comes from Debian's packages and needs apt-get and dpkg "
            "(Debian or Ubuntu); elsewhere install Docker 25 or newer yourself"
        )
    archive_options()
    try:
        versions = {p: _pick(ps, p, pin) for p, pin in ps.pins.items()}
    except EngineError:
        _apt_update(force=True)
        versions = {p: _pick(ps, p, pin) for p, pin in ps.pins.items()}
    debs = apt_dir() / "debs"
    files = []
    for pkg, ver in versions.items():
        fname = f"{pkg}_{ver.split(':', 1)[-1]}_amd64.deb"
        f = debs / fname
        if not f.exists():
            log(f"fetching {pkg} {ver} from Debian {ps.suite} ...")
            r = subprocess.run(
                ["apt-get", *_apt_options(), "download", "-qq", f"{pkg}={ver}"],
                cwd=debs,
                capture_output=True,
                text=True,
            )
            cands = sorted(debs.glob(f"{pkg}_*.deb"), key=lambda p: p.stat().st_mtime)
            got = [
                c for c in cands if c.name.replace("%3a", ":").startswith(f"{pkg}_{ver.split(':', 1)[-1]}")
            ]
            if r.returncode != 0 or not got:
                last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
                raise EngineError(f"cannot fetch {pkg} {ver} from {DEBIAN_MIRROR}: {last[0]}")
            f = got[-1]
        files.append(f)
    tmp = root.parent / "root.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        r = subprocess.run(["dpkg-deb", "-x", str(f), str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EngineError(f"cannot unpack {f.name}: {r.stderr.strip()[:200]} (delete it and run again)")
    if not (tmp / "usr/bin/docker-init").exists():
        for cand in ("usr/bin/tini-static",):
            if (tmp / cand).exists():
                (tmp / "usr/bin/docker-init").symlink_to("tini-static")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp.write_text(json.dumps({"want": want, "versions": versions}, indent=1))
    log(f"engine packages {ps.name}: {', '.join(f'{p} {v}' for p, v in versions.items())}")
    return root


def package_versions(pkgset: str) -> dict:
    """``{package: Debian version}`` of the unpacked ``pkgset`` ({} when not fetched)."""
    try:
        return json.loads((pkg_root(pkgset).parent / "versions.json").read_text()).get("versions", {})
    except (OSError, ValueError):
        return {}
