"""What JupyterHub runs when a student's server starts and stops (``Spawner.pre_spawn_hook`` and
``Spawner.post_stop_hook``; the hub's configuration, written by :mod:`.hub`, names them).

Start: the student's own engine, then its variables in the server's environment. The ``rootless`` kind
(default): ``dockerd`` as the user (:func:`dockercourse.grading.rootless.start_rootless`: rootlesskit +
slirp4netns, its socket in a folder only the student can open), with the classroom's course images pulled
through the course mirror (the first time; the engine's data root is in the student's home, so they
stay): ``DOCKER_HOST``. The ``vm`` kind: a VM engine of the student's own, on the class's shared disk,
its API on mutual TLS (:mod:`.vmengines`): ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``.
Stop: that engine, its containers and whatever else the student left running.

The engine is started from a thread the hub keeps for as long as it lives: the engine is started with
a parent-death signal, so it stops with the hub and is never orphaned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from dockercourse.classroom import state_root, students

log = logging.getLogger(__name__)

#: threads that start engines (two per CPU: a start mostly waits on the engine and the mirror); they live
#: as long as the hub (see the module's docstring)
_STARTERS = ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 2)), thread_name_prefix="dc-engine")


def settings() -> dict:
    """What ``classroom up`` wrote for the hooks: the images, the servers' environment."""
    return json.loads((state_root() / "settings.json").read_text())


def start_engine(name: str, s: dict) -> dict[str, str]:
    """Start student ``name``'s engine (of the kind in the settings ``s``) with the class's images in it;
    the variables that point the ``docker`` command and docker-py at it."""
    from dockercourse.grading.rootless import start_with_images
    from dockercourse.grading.users import _kill_all

    ident = students.load(name)
    _kill_all(ident)  # an engine of an earlier server that did not stop (the hub was killed)
    try:
        if s.get("engine") == "vm":
            from dockercourse.classroom import vmengines

            return vmengines.start(ident, s["images"], s["vm_memory"], s["python"])
        return {"DOCKER_HOST": start_with_images(ident, s["images"])}
    except BaseException:
        stop_engine(name)  # no half-started engine is left: the server does not start
        raise


def stop_engine(name: str) -> None:
    """Stop student ``name``'s engine and every process the student still runs."""
    from dockercourse.grading.users import _kill_all

    _kill_all(students.load(name))


async def pre_spawn(spawner) -> None:
    """JupyterHub's ``pre_spawn_hook``: the student's engine, then the server's environment."""
    s = settings()
    name = spawner.user.name
    spawner.log.info("starting %s's Docker engine", name)
    loop = asyncio.get_running_loop()
    engine = await loop.run_in_executor(_STARTERS, start_engine, name, s)
    ident = students.load(name)
    spawner.environment.update(s["environment"])
    spawner.environment.update(
        engine,
        DOCKERCOURSE_ROOT=str(ident.home / "course"),
        XDG_RUNTIME_DIR=str(ident.dir / "run"),
    )
    if s.get("engine") == "vm":  # the course's tools find the VM's state (doctor, setup's wait)
        from dockercourse.classroom.vmengines import state_dir

        spawner.environment["DOCKERCOURSE_VM_STATE"] = str(state_dir(ident))
    spawner.log.info("%s's Docker engine answers at %s", name, engine["DOCKER_HOST"])


async def post_stop(spawner) -> None:
    """JupyterHub's ``post_stop_hook``: the student's engine and leftovers stop with the server."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(_STARTERS, stop_engine, spawner.user.name)
    spawner.log.info("stopped %s's Docker engine", spawner.user.name)
