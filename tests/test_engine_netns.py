"""A killed engine's network namespaces are removed before the next engine starts (engines.plan).

A real namespace, bind-mounted where a killed engine leaves its containers' ones (its exec root's
netns/ folder): with addresses on the shared docker0 bridge, they made the next engine's
containers with the same address unreachable (chapter 04's web server, connection refused).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from dockercourse.engines import plan

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind-mounting a network namespace needs root"),
]


def _mounted(path) -> bool:
    return any(line.split()[1] == str(path) for line in open("/proc/self/mounts"))


def test_stale_namespaces_go_and_used_ones_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_RUN_DIR", str(tmp_path))
    killed, running = tmp_path / "x" / "26" / "netns", tmp_path / "x" / "28-containerd" / "netns"
    killed.mkdir(parents=True)
    running.mkdir(parents=True)
    stale, used, plain = killed / "stale", killed / "used", killed / "plain"
    for f in (stale, used, plain):
        f.touch()
    subprocess.run(["unshare", f"--net={stale}", "true"], check=True)  # nobody is in it any more
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(used)], check=True)  # this process is
    # an engine whose containerd still runs keeps its namespaces, even one nobody is in yet (a container
    # being created): a process named containerd stands in for it
    (running / "new").touch()
    fake = tmp_path / "containerd"
    fake.write_bytes(open("/bin/sleep", "rb").read())
    fake.chmod(0o755)
    containerd = subprocess.Popen([str(fake), "60"])
    (running.parent / "containerd").mkdir()
    (running.parent / "containerd" / "containerd.pid").write_text(str(containerd.pid))
    try:
        assert plan.clear_stale_netns() == 2  # stale and plain
        assert sorted(p.name for p in killed.iterdir()) == ["used"]
        assert not _mounted(stale) and _mounted(used)
        assert (running / "new").exists()
        containerd.kill()
        containerd.wait()
        assert plan.clear_stale_netns() == 1 and not (running / "new").exists()
    finally:
        if containerd.poll() is None:
            containerd.kill()
        for f in (stale, used):
            subprocess.run(["umount", "-l", str(f)], capture_output=True)
