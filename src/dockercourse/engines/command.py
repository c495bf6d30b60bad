"""``scripts/engine-up``'s command line (``python -m dockercourse.engines.command``).

Standard library only: it runs before the course's Python environment exists. The
``dockercourse engine up|down|status|remove|list`` command does the same through
:mod:`dockercourse.cli.engine`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from dockercourse import config
from dockercourse.engines.local import _script, env_lines, remove, status, stop, up
from dockercourse.engines.packages import ensure_packages
from dockercourse.engines.specs import ENGINES, PRIMARY, log, resolve
from dockercourse.engines.supervisor import supervise
from dockercourse.errors import CourseError, EngineError, UsageError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--supervise"]:  # how engines started by an earlier version are supervised
        return supervise(argv[1])
    a = _parser().parse_args(argv)
    try:
        return _act(a)
    except CourseError as e:  # EngineError, UsageError: one line
        print(f"engine-up: ERROR: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print("engine-up: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=config.get("DOCKERCOURSE_ENGINE_UP"),
        description="Bring up a Docker engine for the course (idempotent): one that already answers is used "
        "as it is; otherwise the distribution's docker.io when current enough, else the course's "
        "own Docker 28.5 from Debian's packages.",
    )
    ap.add_argument(
        "--engine",
        default=config.get("DOCKERCOURSE_ENGINE"),
        help="auto (default), 28 / 28-containerd (primary), 28-classic, 26, 20.10 / system "
        "(env: DOCKERCOURSE_ENGINE)",
    )
    ap.add_argument(
        "--data-root",
        help="start with this data root instead of the engine's own (the matrix uses a fresh one per engine)",
    )
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--stop", action="store_true", help="stop the engine the course started (only that one)")
    g.add_argument("--status", action="store_true", help="which engine answers, and how it was started")
    g.add_argument(
        "--env", action="store_true", help="print `export DOCKER_HOST=...` for the course's engine"
    )
    g.add_argument(
        "--remove",
        action="store_true",
        help="stop and delete the course's own engines: data, logs, fetched packages "
        "(with --engine NAME: only that engine's data and log)",
    )
    g.add_argument("--list", action="store_true", help="the engines the course knows")
    g.add_argument("--fetch", action="store_true", help="only fetch and unpack an engine's packages")
    return ap


def _act(a) -> int:
    choice = a.engine
    if a.list:
        for s in ENGINES.values():
            extra = f"  (also: {', '.join(s.aliases)})" if s.aliases else ""
            print(f"{s.name:14} {s.title}{extra}")
        return 0
    if a.env:
        for line in env_lines():
            print(line)
        return 0
    if a.status:
        st = status()
        print(json.dumps(st, indent=1))
        return 0 if st["answers"] else 3
    if a.stop:
        stop()
        return 0
    if a.remove:
        if os.geteuid() != 0:
            raise EngineError(f"removing the course's engine needs root: sudo {_script()} --remove")
        name = None if choice in ("", "auto") else resolve(choice).name
        for d in remove(name):
            log(f"removed {d}")
        return 0
    if a.fetch:
        spec = ENGINES[PRIMARY] if choice in ("", "auto") else resolve(choice)
        if not spec.pkgset:
            raise EngineError(f"{spec.name} has no packages of the course's to fetch")
        print(ensure_packages(spec.pkgset))
        return 0
    if choice not in ("", "auto"):
        resolve(choice)  # an unknown name fails before anything starts
    up(choice, a.data_root)
    ensure_buildx()
    return 0


def ensure_buildx() -> None:
    """Chapter 08 builds with BuildKit through ``docker buildx`` (docker-py has no BuildKit client). Where
    the ``docker`` command has no buildx (Debian 12's docker.io 20.10 has none), the course's Docker 28.5
    packages bring one (fetched once, as root; the engine stays the one chosen): the notebooks' builds
    then find it (:mod:`dockercourse.lessonkit.buildkit`). Without it they use the classic builder."""
    import shutil
    import subprocess

    primary = ENGINES[PRIMARY].pkgset
    from dockercourse.engines.packages import package_home

    plugin = package_home() / "pkgs" / primary / "root" / "usr/libexec/docker/cli-plugins/docker-buildx"
    if plugin.is_file() or os.geteuid() != 0:
        return
    docker = shutil.which("docker")
    try:
        own = docker and subprocess.run(
            [docker, "buildx", "version"], capture_output=True, stdin=subprocess.DEVNULL, timeout=60
        )
        if own and own.returncode == 0:
            return
        log(f"docker has no buildx (chapter 08 uses it): fetching the course's Docker {primary} packages")
        ensure_packages(primary)
    except (EngineError, OSError, subprocess.SubprocessError) as e:  # the engine is up: say so, go on
        log(f"could not fetch them ({e}); chapter 08's builds will use the classic builder")


if __name__ == "__main__":
    sys.exit(main())
