"""Engine connection against the real engine, and the no-engine path."""

import socket
import subprocess
import sys
import threading

import pytest

from dockercourse.core.engine import connect, engine_info
from dockercourse.errors import NoEngineError
from dockercourse.notebook.course import explain_error, setup


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
    bad = subprocess.run([sys.executable, "-m", "dockercourse.cli", "doctor"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 1
    assert "[ERR] engine" in bad.stdout and "Docker Desktop" in bad.stdout


class _Proxy(threading.Thread):
    """A TCP -> unix socket relay to the real engine that can be cut, like an engine going away."""

    def __init__(self, sock_path):
        super().__init__(daemon=True)
        self.sock_path = sock_path
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            b = socket.socket(socket.AF_UNIX)
            b.connect(self.sock_path)
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(x, y):
        try:
            while data := x.recv(65536):
                y.sendall(data)
        except OSError:
            pass
        finally:
            for s in (x, y):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.stopped = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() and stops listening
        except OSError:
            pass
        self.srv.close()
        self.join(5)
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_engine_gone_mid_run_is_one_readable_line(engine, monkeypatch):
    path = engine_info(engine).base_url.removeprefix("unix://")
    if not path.startswith("/"):
        pytest.skip("engine not on a unix socket")
    proxy = _Proxy(path)
    proxy.start()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{proxy.port}")
    client = connect()
    assert client.ping()
    proxy.cut()
    with pytest.raises(Exception) as e:
        client.containers.list()
    text = explain_error(e.value)
    assert "stopped answering" in text and "\n" not in text.split("Start it")[0]
