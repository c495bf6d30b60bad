"""The configuration the course writes for its own engines (engines.plan), without starting one."""

from __future__ import annotations

import json

import pytest

from dockercourse.engines import plan
from dockercourse.engines.specs import ENGINES

pytestmark = pytest.mark.unit


@pytest.fixture
def planned(tmp_path, monkeypatch):
    """plan() with its folders in tmp_path and no packages fetched; returns the config it wrote."""
    root = tmp_path / "root"
    (root / "usr" / "sbin").mkdir(parents=True)
    monkeypatch.setattr(plan, "ensure_packages", lambda pkgset: root)
    monkeypatch.setattr(plan, "package_versions", lambda pkgset: {"docker.io": "28.5.2+dfsg4"})
    monkeypatch.setattr(plan, "mirror_port", lambda: 5501)
    monkeypatch.setattr(plan, "engine_dir", lambda name: tmp_path / "engines" / name)
    monkeypatch.setattr(plan, "log_path", lambda name: tmp_path / "log" / f"{name}.log")
    monkeypatch.setattr(plan, "exec_root", lambda name: tmp_path / "x" / name)
    monkeypatch.setattr(plan, "run_dir", lambda: tmp_path / "run")
    monkeypatch.setattr(plan, "course_socket", lambda: tmp_path / "run" / "docker.sock")

    def config(name, data_root=None):
        p = plan.plan(ENGINES[name], data_root=data_root)
        conf = p.argv[p.argv.index("--config-file") + 1]
        return json.loads(open(conf).read())

    return config


@pytest.mark.parametrize("name", ["28-containerd", "28-classic", "26"])
def test_the_courses_own_engines_keep_build_records_for_minutes_not_two_days(planned, name):
    """BuildKit's default keeps every build record younger than 48 h: the test suite's thousands made
    each image removal on the containerd store wait 0.42 s for a garbage collection (0.05 s without)."""
    cfg = planned(name)
    assert cfg["builder"] == {"history": {"maxAge": "10m", "maxEntries": 50}}
    assert cfg["data-root"].endswith(f"engines/{name}/data")


def test_the_distributions_engine_gets_no_builder_setting_it_may_not_know(planned, tmp_path):
    cfg = planned("system", data_root=str(tmp_path / "fresh"))  # the matrix's own 20.10 engine
    assert "builder" not in cfg and cfg["data-root"] == str(tmp_path / "fresh")
