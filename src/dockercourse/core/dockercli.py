"""The ``docker`` command the course runs beside docker-py: which one, with which configuration.

Used by the ``%docker`` cells (:mod:`dockercourse.notebook.cli`) and by chapter 08's BuildKit builds
(:mod:`dockercourse.lessonkit.buildkit`), so that both run the same command against the same engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockercourse import config
from dockercourse.i18n.messages import N_


@dataclass(frozen=True)
class DockerCLI:
    """A ``docker`` command: where it is, its version, and why the course uses this one."""

    path: str
    version: str
    origin: str  # "the course's Docker 28.5 packages", "PATH", "DOCKERCOURSE_DOCKER_CLI"
    plugins: str | None = None  # a folder of CLI plugins (docker-buildx) beside a course's own CLI

    def describe(self) -> str:
        from dockercourse.i18n.messages import tr

        return tr(f"Docker CLI {self.version} ({self.path}, from {tr(self.origin)})")


def _version(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"version (\S+?),?\s", out + " ")
    return m.group(1).rstrip(",") if m else None


def _course_engine_cli(base_url: str | None) -> DockerCLI | None:
    """The ``docker`` command of the packages the course's own engine runs from, when that engine is
    the one the notebook talks to: client and engine of one release, as an install has them."""
    try:
        from dockercourse.engines.packages import pkg_root
        from dockercourse.engines.supervisor import read_record
    except ImportError:  # pragma: no cover - the toolkit is installed whole
        return None
    rec = read_record() or {}
    if not rec.get("pkgset") or not base_url or rec.get("docker_host") != base_url:
        return None
    root = pkg_root(rec["pkgset"])
    path = root / "usr" / "bin" / "docker"
    version = _version(str(path)) if path.is_file() else None
    if not version:
        return None
    plugins = root / "usr" / "libexec" / "docker" / "cli-plugins"
    return DockerCLI(
        str(path),
        version,
        N_(f"the course's Docker {rec['pkgset']} packages, like its engine"),
        str(plugins) if plugins.is_dir() else None,
    )


def find_cli(base_url: str | None = None) -> DockerCLI | None:
    """The ``docker`` command ``%docker`` runs: ``DOCKERCOURSE_DOCKER_CLI`` when set; else the one
    that came with the course's own engine when that engine is the one at ``base_url``; else the
    ``docker`` on ``PATH`` (what a terminal runs); else ``None``."""
    given = config.get("DOCKERCOURSE_DOCKER_CLI")
    if given:
        version = _version(given)
        return DockerCLI(given, version, "DOCKERCOURSE_DOCKER_CLI") if version else None
    own = _course_engine_cli(base_url)
    if own:
        return own
    path = shutil.which("docker")
    version = _version(path) if path else None
    return DockerCLI(path, version, "PATH") if path and version else None


def config_dir(cli: DockerCLI) -> str | None:
    """A ``DOCKER_CONFIG`` of the course's for its own CLI: it finds that release's plugins (buildx),
    and what it writes (``docker login``'s credentials, buildx's state) stays out of the learner's
    ``~/.docker``. A ``docker`` of the learner's own keeps the learner's configuration."""
    if not cli.plugins:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for parent in (base, Path(tempfile.gettempdir()) / f"dockercourse-{os.getuid()}"):
        d = parent / "dockercourse" / "docker-config"
        try:
            d.mkdir(parents=True, exist_ok=True)
            f = d / "config.json"
            want = json.dumps({"cliPluginsExtraDirs": [cli.plugins]}, indent=2) + "\n"
            if not f.is_file() or f.read_text() != want:
                f.write_text(want)
            return str(d)
        except OSError:
            continue
    return None


def stop_process_group(proc: subprocess.Popen) -> None:
    """Stop a command the course started in its own process group (a cell's shell and docker, a build),
    nothing else."""
    for sig, wait in ((signal.SIGINT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def course_plugin_dirs() -> list[str]:
    """The CLI plugin folders (``docker-buildx``) of the course's own engine packages on this machine,
    newest package set first."""
    from dockercourse.engines.packages import package_home

    found = sorted((package_home() / "pkgs").glob("*/root/usr/libexec/docker/cli-plugins"), reverse=True)
    return [str(p) for p in found if (p / "docker-buildx").is_file()]
