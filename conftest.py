"""Session-wide guards: the learner's own resources survive the whole test run, and
no course resource is left on the engine at its end; and the markers of every test.

Before any test or notebook runs (and only when some selected test needs an engine),
unlabelled resources named like the source tutorial's examples are made (containers `web`,
`db`, `test1`; volume `dbdata`; network `test1`; image tag `ubuntu:latest` made from the
course busybox without course labels on the tag). After the session, each must still exist
with the same ID; then the ones this guard made are removed. If a name already exists on the
engine (a real learner's), it is left alone and only checked.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_made: dict[str, list] = {"containers": [], "volumes": [], "networks": [], "images": []}
#: The guard's own stand-ins carry this label (never a course label, so course cleanup ignores
#: them); a run that was killed before its end leaves them, and the next run removes them.
GUARD = "io.dockercourse.testguard"
#: ... whose value is the pid of the pytest session that made them: a stand-in of a session still
#: running (another test run on the same engine) is never taken for a stale one.
ME = str(os.getpid())
#: An image tag cannot carry a label: the tags the guard made are listed in this file (named
#: with the session's pid) until the run ends, so a killed run's tag is recognised and removed by
#: the next one, and another session running meanwhile never takes it for a stale one.
TAG_FILE = Path(tempfile.gettempdir()) / f"dockercourse-testguard-tags-{ME}"
_ids: dict[tuple[str, str], str] = {}


def _client():
    from dockercourse.core.engine import connect
    from dockercourse.errors import NoEngineError

    try:
        return connect(timeout=60)
    except NoEngineError:
        return None


def pytest_collection_finish(session):
    """Make the stand-ins once the tests are known: a run of `unit` tests only never touches an engine."""
    if not any(item.get_closest_marker("unit") is None for item in session.items):
        return
    import docker.errors

    from dockercourse.core.images import BUSYBOX

    c = _client()
    if c is None:
        return
    try:
        c.images.get(BUSYBOX)
    except docker.errors.ImageNotFound:
        return
    _remove_stale_stand_ins(c)
    for cname, cmd in (("web", ["sleep", "3600"]), ("db", ["sleep", "3600"]), ("test1", ["true"])):
        try:
            _ids[("container", cname)] = c.containers.get(cname).id
        except docker.errors.NotFound:
            ct = c.containers.create(BUSYBOX, cmd, name=cname, labels={GUARD: ME})  # no course labels
            if cname != "test1":
                ct.start()
            _made["containers"].append(cname)
            _ids[("container", cname)] = ct.id
    try:
        _ids[("volume", "dbdata")] = c.volumes.get("dbdata").id
    except docker.errors.NotFound:
        _ids[("volume", "dbdata")] = c.volumes.create("dbdata", labels={GUARD: ME}).id
        _made["volumes"].append("dbdata")
    try:
        _ids[("network", "test1")] = c.networks.get("test1").id
    except docker.errors.NotFound:
        _ids[("network", "test1")] = c.networks.create("test1", labels={GUARD: ME}).id
        _made["networks"].append("test1")
    try:
        _ids[("image", "ubuntu:latest")] = c.images.get("ubuntu:latest").id
    except docker.errors.ImageNotFound:
        TAG_FILE.write_text("ubuntu:latest\n")
        c.images.get(BUSYBOX).tag("ubuntu", "latest")
        _made["images"].append("ubuntu:latest")
        _ids[("image", "ubuntu:latest")] = c.images.get("ubuntu:latest").id


def _remove_stale_stand_ins(c) -> None:
    """Stand-ins a killed earlier run left (they carry the guard's label, nothing else does)."""
    from dockercourse.core.cleanup import Sweep

    sweep = Sweep(c)
    owners = {r.get("Labels", {}).get(GUARD) for r in c.api.containers(all=True, filters={"label": [GUARD]})}
    owners |= {
        v.get("Labels", {}).get(GUARD)
        for v in (c.api.volumes(filters={"label": [GUARD]}) or {}).get("Volumes") or []
    }
    owners |= {n.get("Labels", {}).get(GUARD) for n in c.api.networks(filters={"label": [GUARD]})}
    for pid in owners:
        if pid and not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            for kind in ("containers", "volumes", "networks"):
                getattr(sweep, kind)(filters={"label": [f"{GUARD}={pid}"]})
    for tags in TAG_FILE.parent.glob("dockercourse-testguard-tags-*"):
        pid = tags.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):  # its session is gone
            sweep.image_refs(tags.read_text().split())
            tags.unlink(missing_ok=True)


def pytest_sessionfinish(session, exitstatus):
    import docker.errors

    if not _ids:  # the guard made nothing (e.g. a unit run): no engine to ask
        return
    c = _client()
    if c is None:
        return
    damaged = []
    getters = {
        "container": c.containers.get,
        "volume": c.volumes.get,
        "network": c.networks.get,
        "image": c.images.get,
    }
    for (kind, name), rid in _ids.items():
        try:
            now = getters[kind](name).id
            if now != rid:
                damaged.append(f"{kind} {name} was replaced")
            elif kind == "container" and name in ("web", "db") and name in _made["containers"]:
                if c.containers.get(name).status != "running":
                    damaged.append(f"container {name} was stopped")
        except docker.errors.NotFound:
            damaged.append(f"{kind} {name} was removed")
    from dockercourse.core.cleanup import Sweep

    sweep = Sweep(c)  # only what this session's guard made: its label and its own names
    for kind in ("containers", "volumes", "networks"):
        getattr(sweep, kind)(filters={"label": [f"{GUARD}={ME}"]})
    sweep.image_refs(_made["images"])
    if _made["images"]:
        TAG_FILE.unlink(missing_ok=True)
    # Nothing of the course may remain: every notebook and test cleans up after itself.
    from dockercourse.core.cleanup import leftovers

    left = {k: v for k, v in leftovers(c).items() if v}
    if left:
        damaged.append(
            "course resources left on the engine after the run: "
            + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in left.items())
        )
    if damaged:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = "SESSION GUARD FAILED: " + "; ".join(damaged)
        if tr:
            tr.write_line(msg, red=True)
        else:
            print(msg)
    else:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr:
            tr.write_line(
                f"learner's own resources untouched: {len(_ids)} checked "
                "(containers web, db, test1; volume dbdata; network test1; image ubuntu:latest)"
            )


# --------------------------------------------------------------------------- notebook times

_nb_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _nb_seconds[path] = _nb_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _nb_seconds:
        terminalreporter.write_line(
            "notebook execution times (nbval): "
            + ", ".join(f"{Path(p).stem} {s:.1f} s" for p, s in sorted(_nb_seconds.items()))
        )


# --------------------------------------------------------------------------- markers
VM_MODULES = {"test_vm_engine.py", "test_grade_vm.py"}


def pytest_collection_modifyitems(config, items):
    """Every test that is not `unit` needs an engine (notebooks too); the VM modules boot qemu."""
    for item in items:
        if item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.engine)
        if item.path.name in VM_MODULES:
            item.add_marker(pytest.mark.vm)
