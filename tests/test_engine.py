"""Engine connection against the real engine, and the no-engine path."""

import subprocess
import sys

import pytest
from relay import Relay

from dockercourse.core.engine import connect, engine_info
from dockercourse.errors import NoEngineError
from dockercourse.notebook.course import setup
from dockercourse.notebook.display import explain_error


def test_connect_default_engine(engine):
    info = engine_info(engine)
    assert info.api_version >= "1.41"
    assert info.base_url.startswith(("unix://", "tcp://", "npipe://"))
    assert info.storage_driver


def test_no_engine_error_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(NoEngineError) as e:
        connect()
    text = str(e.value)
    for needle in ("Linux", "docker group", "gpasswd", "rootless", "Docker Desktop", "Binder"):
        assert needle in text


def test_setup_without_engine_reads_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    course = setup("02")
    assert not course.connected
    assert "No Docker engine answers" in capsys.readouterr().err
    with pytest.raises(NoEngineError, match="see the setup cell"):
        course.client.containers.list()


def test_doctor_exit_status(monkeypatch, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "dockercourse.cli", "doctor"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "[ok ] engine" in ok.stdout
    env = {"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PATH": "/usr/bin:/bin"}
    bad = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "doctor"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1
    assert "[ERR] engine" in bad.stdout and "Docker Desktop" in bad.stdout
    zh = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "doctor", "--lang", "zh"], capture_output=True, text=True
    )
    assert zh.returncode == 0, zh.stdout + zh.stderr
    for needle in ("[ok ] 引擎", "[ok ] 镜像存储", "[ok ] 可用磁盘", "[ok ] 镜像 busybox", "课程可以运行。"):
        assert needle in zh.stdout, zh.stdout


def test_engine_gone_mid_run_is_one_readable_line(engine, monkeypatch):
    path = engine_info(engine).base_url.removeprefix("unix://")
    if not path.startswith("/"):
        pytest.skip("engine not on a unix socket")
    proxy = Relay(path)
    proxy.start()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{proxy.port}")
    client = connect()
    assert client.ping()
    proxy.cut()
    with pytest.raises(Exception) as e:
        client.containers.list()
    text = explain_error(e.value)
    assert "stopped answering" in text and "\n" not in text.split("Start it")[0]
