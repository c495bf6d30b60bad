"""What the course's engines are: names, Debian package pins, folders, errors.

Standard library only (``scripts/engine-up`` runs before the course's environment exists).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from dockercourse import config
from dockercourse.errors import UsageError

MIN_SYSTEM_VERSION = (25, 0)


WAIT = config.number("DOCKERCOURSE_ENGINE_WAIT")


DEBIAN_MIRROR = config.get("DOCKERCOURSE_DEBIAN_MIRROR")


KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


DEFAULT_SOCKET = "/var/run/docker.sock"


MAX_RESTARTS, RESTART_WINDOW = 5, 300.0


def state_dir() -> Path:
    return config.path("DOCKERCOURSE_STATE")


def run_dir() -> Path:
    return config.path("DOCKERCOURSE_RUN_DIR")


def course_socket() -> Path:
    """Where the course's own engine listens (one engine at a time, so one socket)."""
    return run_dir() / "docker.sock"


SOCKET = "/run/dockercourse/docker.sock"  # the default of course_socket(), for discovery


@dataclass(frozen=True)
class PackageSet:
    """Debian packages of one engine release, pinned by upstream version."""

    name: str
    suite: str
    pins: dict  # package -> upstream version prefix ("28.5.2")
    title: str


PACKAGE_SETS = {
    "28.5": PackageSet(
        "28.5",
        "sid",
        {
            "docker.io": "28.5.2",
            "containerd": "2.1.9",
            "docker-cli": "28.5.2",
            "docker-buildx": "0.29.1",
            "tini-static": "0.19.0",
        },
        "Debian sid: docker.io 28.5.2, containerd 2.1.9, docker-buildx 0.29.1",
    ),
    "26.1": PackageSet(
        "26.1",
        "trixie",
        {
            "docker.io": "26.1.5",
            "containerd": "1.7.24",
            "docker-cli": "26.1.5",
            "docker-buildx": "0.13.1",
            "tini": "0.19.0",
        },
        "Debian 13 (trixie): docker.io 26.1.5, containerd 1.7.24, docker-buildx 0.13.1",
    ),
}


@dataclass(frozen=True)
class EngineSpec:
    name: str
    title: str
    kind: str  # "own": course packages; "system": the distribution's docker.io; "vm"; "podman"
    pkgset: str | None = None
    snapshotter: bool | None = None  # containerd image store on/off (None: the engine's default)
    aliases: tuple = ()


ENGINES = {
    "28-containerd": EngineSpec(
        "28-containerd",
        "Docker 28.5, containerd image store (primary)",
        "own",
        "28.5",
        True,
        ("28", "primary"),
    ),
    "28-classic": EngineSpec("28-classic", "Docker 28.5, classic image store", "own", "28.5", False),
    "26": EngineSpec("26", "Docker 26.1 (Debian 13's packages)", "own", "26.1", None, ("26.1",)),
    "system": EngineSpec(
        "system", "the distribution's docker.io (Debian 12: Docker 20.10)", "system", aliases=("20.10",)
    ),
    "vm": EngineSpec("vm", "Docker 28.5 in a qemu VM (cgroup v2 guest)", "vm"),
    "podman": EngineSpec("podman", "Podman 5 through its Docker API (in the VM)", "podman"),
}


PRIMARY = "28-containerd"


def resolve(choice: str) -> EngineSpec:
    """The engine a ``--engine`` value names (``auto`` is decided by :func:`choose`)."""
    c = (choice or "").strip().lower()
    for spec in ENGINES.values():
        if c == spec.name or c in spec.aliases:
            return spec
    names = ", ".join(["auto", *ENGINES, "28", "20.10"])
    raise UsageError(f"unknown engine {choice!r}; choose one of: {names}")


def log(msg: str) -> None:
    print(f"engine-up: {msg}", file=sys.stderr, flush=True)


def engine_dir(name: str) -> Path:
    return state_dir() / "engines" / name


def exec_root(name: str) -> Path:
    return run_dir() / "x" / name


def log_path(name: str) -> Path:
    return state_dir() / "log" / f"{name}.log"
