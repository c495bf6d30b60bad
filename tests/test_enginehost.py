"""The engine's host as chapter 01 looks at it: this machine's /proc, or a helper container's view.

A learner on Docker Desktop (or the course's VM engine) has the engine's host in a VM, and a learner
in the ``docker`` group cannot read a root process's namespace links here: both go through the helper
(``--pid host --cap-add SYS_PTRACE``). These tests run the helper on the real engine and hold its answer
against this machine's own /proc, which the course's engine here lets us read.
"""

from __future__ import annotations

import os

import pytest

from dockercourse.bench import containers as C
from dockercourse.core.engine import connect
from dockercourse.lessonkit import enginehost as E

HELPER_OUT = """sleep
pid pid:[4026532301] pid:[4026531836]
uts uts:[4026532299] uts:[4026531838]
mnt mnt:[4026532298] mnt:[4026531841]
net net:[4026532303] net:[4026531840]
ipc ipc:[4026531839] ipc:[4026531839]
model name\t: QEMU Virtual CPU version 2.5+
"""


@pytest.mark.unit
def test_the_helpers_answer_is_read_line_by_line():
    v = E.parse(HELPER_OUT)
    assert v["comm"] == "sleep"
    assert v["namespaces"] == {"pid": True, "uts": True, "mnt": True, "net": True, "ipc": False}
    assert v["cpu_model"] == "model name\t: QEMU Virtual CPU version 2.5+"
    # a link the helper could not read (a rootless engine, an LSM) is unknown, not "differs"
    assert E.parse("sleep\npid pid:[1]\n")["namespaces"] == {"pid": None}
    assert E.cpu_model("processor\t: 0\nBogoMIPS\t: 48.00\n") == ""  # arm64 names no model


@pytest.mark.unit
def test_the_shim_listing_is_read_in_bytes():
    got = E.parse_shims("abc 8728 18388\ndef ? 1000\nnot a shim line\n")
    assert got == {"abc": {"pss": 8728 * 1024, "rss": 18388 * 1024}, "def": {"pss": None, "rss": 1000 * 1024}}


@pytest.fixture
def lclient(ns):
    return connect(namespace=ns)


def test_the_helper_sees_what_this_machines_proc_shows(lclient, busybox, ns):
    """The path a Desktop or docker-group learner takes gives the same facts as the local one."""
    box = lclient.containers.run(busybox, ["sleep", "60"], name=ns.name("hv"), hostname="hvbox", detach=True)
    try:
        box.reload()
        pid = box.attrs["State"]["Pid"]
        if not os.path.exists(f"/proc/{pid}"):
            pytest.skip("the engine does not run on this machine: no local view to compare with")
        local = E.process_view(lclient, ns.name, box)
        assert local["seen_from"] == "this machine's /proc"
        assert local["comm"] == "sleep" and all(local["namespaces"].values())
        helper = E.parse(E._helper(lclient, ns.name, ["sh", "-c", E._SCRIPT, str(pid)]))
        assert helper == {k: local[k] for k in ("comm", "namespaces", "cpu_model")}
        # a PID this machine holds for another process is not taken for the container's
        assert E._local(os.getpid(), "hvbox") is None
        # a docker-group user: this machine's /proc holds the process, its links may not be read
        with pytest.MonkeyPatch.context() as mp:

            def refused(path):
                raise PermissionError(13, "Permission denied", str(path))

            mp.setattr(E.os, "readlink", refused)
            as_user = E.process_view(lclient, ns.name, box)
        assert as_user["seen_from"].startswith("the engine host's /proc")
        assert (as_user["comm"], as_user["namespaces"]) == (local["comm"], local["namespaces"])
        shims = E.shim_memory(lclient, ns.name)
        assert shims[box.id]["pss"] > 0 and shims[box.id]["rss"] >= shims[box.id]["pss"]
        mine = C.shim_memory(lclient, ns.name, [box.id])[box.id]
        assert mine["rss"] == pytest.approx(shims[box.id]["rss"], rel=0.2)
    finally:
        box.remove(force=True)
    left = lclient.containers.list(all=True, filters={"label": E.LABEL})
    assert left == [], "the helper containers are removed"
