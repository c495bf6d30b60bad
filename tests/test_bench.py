"""The chapter 01 benchmarks measure something real on the real engine (and qemu when installed).

These tests check that the figures are real - non-zero, consistent with the engine's own clock,
ordered sensibly - never their absolute values, which depend on the machine.
"""

from __future__ import annotations

import statistics

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from dockercourse.bench import containers as C  # noqa: E402
from dockercourse.bench import plots, reference, save_csv  # noqa: E402
from dockercourse.bench import vm as V  # noqa: E402
from dockercourse.core.engine import connect  # noqa: E402


@pytest.fixture
def lclient(ns):
    """A client whose containers carry the test namespace's labels (so the benchmarks find them)."""
    return connect(namespace=ns)


def test_engine_time_and_percentile():
    assert C.engine_time("2024-01-02T03:04:05.123456789Z") - C.engine_time(
        "2024-01-02T03:04:05Z"
    ) == pytest.approx(0.123456789, abs=1e-6)
    assert C.engine_time("2024-01-02T03:04:05+01:00") == C.engine_time("2024-01-02T02:04:05Z")
    assert C.percentile([1, 2, 3, 4, 5], 50) == 3
    assert C.percentile([1, 2], 95) == pytest.approx(1.95)


def test_start_latency_is_real_and_cleaned(lclient, busybox, ns):
    rows = C.start_latency(lclient, ns.name, runs=3, network="none")
    assert len(rows) == 3
    for r in rows:
        assert r["seconds"] > 0 and r["engine_seconds"] > 0
        # the engine's Created->StartedAt lies inside the client's create+start round trip (+ clock slack)
        assert r["engine_seconds"] <= r["seconds"] + 0.05
    assert C.count_labelled(lclient, "start") == 0


def test_idle_container_memory(lclient, busybox, ns):
    m = C.idle_container_memory(lclient, ns.name)
    assert m["cgroup_bytes"] and m["cgroup_bytes"] > 0
    if m["shim_rss"] is not None:  # the engine runs on this host: its shim is visible
        assert m["shim_rss"] > 1 << 20
        assert m["shim_pss"] is None or 0 < m["shim_pss"] <= m["shim_rss"]
    assert C.count_labelled(lclient, "memory") == 0


def test_density_grows_and_leaves_nothing(lclient, busybox, ns):
    rows = C.density(lclient, ns.name, counts=[1, 3, 5])
    assert [r["n"] for r in rows] == [1, 3, 5]
    assert rows[0]["seconds"] < rows[1]["seconds"] < rows[2]["seconds"]
    assert rows[0]["cgroup_bytes"] < rows[2]["cgroup_bytes"]
    if rows[0]["shim_pss"]:
        assert rows[0]["shim_pss"] < rows[2]["shim_pss"]
    assert C.count_labelled(lclient, "density") == 0


def test_density_interrupted_leaves_nothing(lclient, busybox, ns):
    started = []

    def progress(k):
        started.append(k)
        if len(started) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        C.density(lclient, ns.name, counts=[10], progress=progress)
    assert len(started) == 4
    assert C.count_labelled(lclient, "density") == 0


def test_cpu_native_and_container(lclient, busybox, ns):
    bb = C.busybox_binary(lclient)
    r = C.cpu_compare(lclient, ns.name, bb, mb=8, repeat=2)
    assert r["native"] > 0 and r["container"] > 0
    assert 0.33 < r["native"] / r["container"] < 3  # the same binary on the same CPU
    assert C.count_labelled(lclient, "cpu") == 0


def test_reference_data_has_sources():
    rows = reference.startup_and_footprint() + reference.vm_vs_container()
    assert rows and all(r["source"] for r in rows)
    rel = reference.relative_speed("linpack_two_sockets")
    assert rel["native"] == 1.0 and 0.9 < rel["docker"] <= 1.01 and rel["kvm"] < rel["docker"]
    assert reference.figure("firecracker_microvm", "boot_to_init")[0] == 125


def test_plots_and_csv(tmp_path):
    runs = {"bridge": [{"seconds": 0.3}, {"seconds": 0.4}], "none": [{"seconds": 0.2}, {"seconds": 0.25}]}
    vm = V.VMResult(True, accel="tcg", boot_seconds=3.0, rss_bytes=200 << 20, cpu_seconds=2.0, memory_mb=128)
    figs = [
        plots.start_latency(runs, vm, show=False),
        plots.memory({"cgroup_bytes": 300_000, "shim_pss": 5 << 20}, vm, show=False),
        plots.density(
            [
                {
                    "n": 1,
                    "seconds": 0.2,
                    "seconds_per_start": 0.2,
                    "cgroup_bytes": 1 << 20,
                    "shim_pss": 5 << 20,
                },
                {
                    "n": 2,
                    "seconds": 0.4,
                    "seconds_per_start": 0.2,
                    "cgroup_bytes": 2 << 20,
                    "shim_pss": 9 << 20,
                },
            ],
            show=False,
        ),
        plots.cpu(0.3, 0.31, vm, show=False),
        plots.sizes([("image", 2_000_000, "container"), ("disk", 17_000_000, "vm")], show=False),
    ]
    assert all(f.axes for f in figs)
    assert "emulated" in " ".join(t.get_text() for t in figs[0].axes[1].get_xticklabels())
    p = save_csv([{"a": 1}, {"a": 2, "b": 3}], tmp_path / "x" / "r.csv")
    assert p.read_text().splitlines() == ["a,b", "1,", "2,3"]


def test_vm_disk_image_is_bigger_than_the_image(engine, busybox):
    d = V.vm_disk_image(engine, busybox)
    if not d["available"]:
        pytest.skip(d["reason"])
    assert d["qcow2_bytes"] > C.image_size(engine, busybox) > 0


def test_tiny_vm_boots_slower_than_a_container_starts(lclient, busybox, ns):
    ok, why = V.qemu_available()
    if not ok:
        pytest.skip(why)
    bb = C.busybox_binary(lclient)
    vm = V.boot_tiny_vm(bb, cpu_mb=8, timeout=240, log=lambda *a: None)
    if not vm.available and "kernel" in vm.reason:
        pytest.skip(vm.reason)
    assert vm.available, vm.reason
    assert vm.accel in ("kvm", "tcg")
    assert vm.boot_seconds > 0 and vm.rss_bytes > 16 << 20 and vm.cpu_seconds > 0
    starts = C.start_latency(lclient, ns.name, runs=3, network="none")
    assert statistics.median(r["seconds"] for r in starts) < vm.boot_seconds
    mem = C.idle_container_memory(lclient, ns.name)
    assert (mem["cgroup_bytes"] or 0) + (mem["shim_pss"] or 0) < vm.rss_bytes


def test_cli_quick(capsys, busybox):
    from dockercourse.cli import main

    assert main(["bench", "--runs", "2", "--density", "3", "--only", "start,density"]) == 0
    out = capsys.readouterr().out
    assert "network=bridge" in out and "network=none" in out and "N=   3" in out
    assert "benchmark containers left on the engine: 0" in out


# --------------------------------------------------------------------------- the explorer widget


def _wait(pred, timeout=120.0):
    import time

    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.05)
    return pred()


def test_explorer_measures_off_the_kernel_thread_and_offers_a_download(lclient, busybox, ns, tmp_path):
    import base64
    import time

    from dockercourse.bench.widgets import Explorer

    e = Explorer(lclient, ns.name, out_dir=tmp_path)
    e.metric.value, e.runs.value = "start latency (with and without network)", 3
    t0 = time.monotonic()
    assert e.start() is True
    assert time.monotonic() - t0 < 1.0 and e.busy  # Run returns at once: the kernel is free
    assert e.go.disabled and not e.stop.disabled
    t1 = time.monotonic()
    assert sum(range(1000)) == 499500 and time.monotonic() - t1 < 2  # "another cell" meanwhile
    assert e.start() is False and "still running" in e.status.value  # a second Run is refused
    assert _wait(lambda: not e.busy)
    assert e.status.value.startswith("measured:"), e.status.value
    assert e.bar.value == e.bar.max == 6 and not e.go.disabled and e.stop.disabled
    assert any("image/png" in o.get("data", {}) for o in e.out.outputs)
    p = e.save_csv()
    assert p == tmp_path / "start.csv" and p.read_text().startswith("run,network,seconds,engine_seconds")
    href = e.link.value.split('href="', 1)[1].split('"', 1)[0]
    assert href.startswith("data:text/csv;base64,") and 'download="start.csv"' in e.link.value
    assert base64.b64decode(href.split(",", 1)[1]).decode() == p.read_text()
    assert C.count_labelled(lclient, "start") == 0


def test_explorer_cancel_stops_and_removes_what_it_started(lclient, busybox, ns, tmp_path):
    from dockercourse.bench.widgets import Explorer

    e = Explorer(lclient, ns.name, out_dir=tmp_path)
    e.metric.value, e.n.value = "density: N idle containers", 20
    assert e.start()
    assert _wait(lambda: e.bar.value >= 2)
    e.cancel()
    assert _wait(lambda: not e.busy, 60)
    assert e.status.value.startswith("cancelled"), e.status.value
    assert e.bar.value < e.bar.max and e.save.disabled and not e.last
    assert C.count_labelled(lclient, "density") == 0
