"""Reading a container's limits from its cgroup, v2 first and v1 where the engine uses v1
(dockercourse.lessonkit.cgroups). The notebooks run it on the engines of the matrix (cgroup v1 on
this host, v2 in the VM engine); these tests pin the parsing of both formats."""

from __future__ import annotations

import subprocess

import pytest

from dockercourse.lessonkit import cgroups

pytestmark = pytest.mark.unit


def test_cgroup_v2_files():
    lim = cgroups.parse("2\n 134217728\n 50000 100000\n 8\n")
    assert (lim.version, lim.memory, lim.cpus, lim.pids) == (2, 128 * 2**20, 0.5, 8)
    assert lim.files == ["memory.max", "cpu.max", "pids.max"]
    unlimited = cgroups.parse("2\n max\n max 100000\n max\n")
    assert (unlimited.memory, unlimited.cpus, unlimited.pids) == (None, None, None)


def test_cgroup_v1_files():
    lim = cgroups.parse("1\n 67108864\n 20000 100000\n 16\n")
    assert (lim.version, lim.memory, lim.cpus, lim.pids) == (1, 64 * 2**20, 0.2, 16)
    assert lim.files[1] == "cpu/cpu.cfs_quota_us + cpu/cpu.cfs_period_us"
    unlimited = cgroups.parse("1\n 9223372036854771712\n -1 100000\n max\n")
    assert (unlimited.memory, unlimited.cpus, unlimited.pids) == (None, None, None)
    assert cgroups.parse("1\n ?\n ? ?\n ?\n").pids is None  # a controller the host does not mount


def test_the_same_lines_on_both_versions_but_the_files():
    v1 = cgroups.parse("1\n 134217728\n 50000 100000\n 8\n").lines()
    v2 = cgroups.parse("2\n 134217728\n 50000 100000\n 8\n").lines()
    assert v1[:3] == v2[:3] == ["memory limit : 128 MiB", "CPU limit    : 0.5 CPU", "process limit: 8"]
    assert v1[3] != v2[3] and v2[3].startswith("read from    : cgroup v2: memory.max")


def test_the_script_is_valid_sh_and_reads_builtins_only():
    script = cgroups.script()
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert "cat " not in script  # at pids.max a fork fails: read with the shell's own `read`
