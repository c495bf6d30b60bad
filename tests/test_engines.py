"""The course's own engines (scripts/engine-up, src/dockercourse/engines): choosing, starting,
supervising, stopping and removing engines, and each kind of bad input.

The lifecycle tests start a second engine of the course's own packages beside the one the suite
runs on, in folders of their own and in a network namespace of its own
(``DOCKERCOURSE_ENGINE_NETNS=1``: its docker0 and iptables rules are not the host's), so they never
disturb it.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from dockercourse.core.buildcontext import (
    LABELLED_DOCKERFILE,
    add_labels,
    labelled_build_kwargs,
)
from dockercourse.engines import local, matrix, matrix_report, plan
from dockercourse.engines.packages import upstream
from dockercourse.engines.specs import ENGINES, UsageError, resolve
from dockercourse.lessonkit.mounts import volume_name

REPO = Path(__file__).resolve().parents[1]
ENGINE_UP = str(REPO / "scripts" / "engine-up")
PKGS = Path("/var/lib/dockercourse/pkgs/28.5/root/usr/sbin/dockerd")


def _run(args, env=None, user_prefix=(), timeout=120):
    e = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    e.update(env or {})
    return subprocess.run(
        [*user_prefix, ENGINE_UP, *args], capture_output=True, text=True, env=e, timeout=timeout
    )


# --------------------------------------------------------------------------- no engine needed


@pytest.mark.unit
def test_engine_names_and_aliases():
    assert resolve("28").name == resolve("primary").name == "28-containerd"
    assert resolve("20.10").name == "system"
    assert resolve("26.1").name == "26"
    assert set(ENGINES) >= {"28-containerd", "28-classic", "26", "system", "vm", "podman"}
    with pytest.raises(UsageError, match="unknown engine '27'.*28-containerd"):
        resolve("27")


@pytest.mark.unit
@pytest.mark.parametrize(
    "debver,want",
    [
        ("5:20.10.24+dfsg1-1+deb12u1", (20, 10, 24)),
        ("28.5.2+dfsg4-5", (28, 5, 2)),
        ("1.7.24~ds1-6+deb13u1", (1, 7, 24)),
        ("0.29.1+ds1-4", (0, 29, 1)),
    ],
)
def test_upstream_versions(debver, want):
    assert upstream(debver) == want


@pytest.mark.unit
def test_unknown_engine_is_one_line_exit_2():
    r = _run(["--engine", "27"])
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown engine '27'" in r.stderr


@pytest.mark.unit
def test_list_names_every_engine():
    r = _run(["--list"])
    assert r.returncode == 0
    for name in ENGINES:
        assert name in r.stdout


@pytest.mark.unit
def test_labels_follow_every_from():
    text = "ARG BASE=busybox\nFROM ${BASE} AS a\nRUN x\nFROM a \\\n  AS b\nCMD y\n"
    out = add_labels(text, {"k": "v"}).splitlines()
    assert out == [
        "ARG BASE=busybox",
        "FROM ${BASE} AS a",
        'LABEL k="v"',
        "RUN x",
        "FROM a \\",
        "  AS b",
        'LABEL k="v"',
        "CMD y",
    ]
    assert add_labels(text, {}) == text


@pytest.mark.unit
def test_labelled_build_kwargs_every_kind_of_context(tmp_path):
    labels = {"io.dockercourse.chapter": "97"}
    # a Dockerfile as a file object
    _, kw, done = labelled_build_kwargs((), {"fileobj": io.BytesIO(b"FROM busybox\nCMD x\n")}, labels)
    assert done and b'LABEL io.dockercourse.chapter="97"' in kw["fileobj"].read()
    # a folder: a tar with the labelled copy beside the original
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    (tmp_path / "ignored.txt").write_text("x")
    _, kw, done = labelled_build_kwargs((str(tmp_path),), {}, labels)
    assert done and kw["custom_context"] and kw["dockerfile"] == LABELLED_DOCKERFILE and kw["path"] is None
    with tarfile.open(fileobj=kw["fileobj"]) as t:
        names = t.getnames()
        assert "keep.txt" in names and "ignored.txt" not in names and "Dockerfile" in names
        assert b"LABEL" in t.extractfile(LABELLED_DOCKERFILE).read()
    # a ready tar context
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    _, kw, done = labelled_build_kwargs((), {"fileobj": buf, "custom_context": True}, labels)
    with tarfile.open(fileobj=kw["fileobj"]) as t:
        assert done and b"LABEL" in t.extractfile(LABELLED_DOCKERFILE).read()
    # a remote context stays as it is (its final image gets labels= instead)
    _, kw, done = labelled_build_kwargs(("https://example.invalid/repo.git",), {}, labels)
    assert not done and kw["path"] == "https://example.invalid/repo.git"


@pytest.mark.unit
def test_volume_name_also_where_the_engine_leaves_it_out():
    assert volume_name({"Type": "volume", "Name": "dc06-data"}) == "dc06-data"
    anon = "a" * 64
    assert volume_name({"Type": "volume", "Source": f"/var/lib/docker/volumes/{anon}/_data"}) == anon
    assert volume_name({"Type": "bind", "Source": "/home/me/site"}) == ""


@pytest.mark.unit
def test_mirror_port_moves_when_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_STATE", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        (tmp_path / "mirror-port").write_text(f"{taken}\n")
        port = plan.mirror_port()
        assert port != taken and int((tmp_path / "mirror-port").read_text()) == port


@pytest.mark.unit
def test_matrix_table_from_junit(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        """<testsuites><testsuite>
      <testcase classname="notebooks.02_core_concepts.ipynb" name="Cell 0" time="1.5"/>
      <testcase classname="notebooks.02_core_concepts.ipynb" name="Cell 1" time="0.5">"""
        """<failure message="x"/></testcase>
      <testcase classname="notebooks.03_images.ipynb" name="Cell 0" time="2"/>
      <testcase classname="notebooks.zh.02_core_concepts.ipynb" name="Cell 0" time="4"/>
      <testcase classname="tests.test_nonvacuity" time="9"
        name="test_checks_fail_on_student_copy_and_pass_on_master[course-02_core_concepts]"/>
      <testcase classname="tests.test_nonvacuity" time="2"
        name="test_checks_fail_on_student_copy_and_pass_on_master[fixture-90_fixture]"/>
      <testcase classname="tests.test_nonvacuity" time="9"
        name="test_checks_fail_on_student_copy_and_pass_on_master[course-zh-03_images]"><failure/></testcase>
      <testcase classname="tests.test_engine" name="test_connect_default_engine" time="1"/>
      <testcase classname="tests.test_engine" name="test_other" time="1"><skipped/></testcase>
    </testsuite></testsuites>"""
    )
    res = matrix.EngineResult("28-containerd", "Docker 28.5")
    matrix.parse_junit(junit, res)
    assert res.chapters["02"] == {"cells": 2, "failed": 1, "s": 2.0, "grade": "pass", "nbval": "fail"}
    assert res.chapters["03"]["nbval"] == "pass" and res.chapters["03"]["grade"] == "fail"  # zh-03 failed
    assert res.chapters["02 zh"] == {"cells": 1, "failed": 0, "s": 4.0, "nbval": "pass"}  # not in 02's
    assert res.toolkit == {"passed": 2, "failed": 0, "skipped": 1}  # the fixture course counts as toolkit
    text = matrix_report.table([res])
    assert "✗ 1 2 s" in text and "✓ 2 s" in text


@pytest.mark.unit
def test_matrix_report_from_runs_in_parts(tmp_path, monkeypatch, capsys):
    import dataclasses
    import json

    def stored(run, name, finished, **kw):
        r = matrix.EngineResult(name, name.upper(), finished=finished, **kw)
        (tmp_path / run / name).mkdir(parents=True)
        (tmp_path / run / name / "result.json").write_text(json.dumps(dataclasses.asdict(r)))

    ok = {"02": {"cells": 3, "failed": 0, "s": 4.0, "grade": "pass", "nbval": "pass"}}
    stored("r1", "vm", "2026-12-04 10:00", chapters=ok, start_to_api_s=30.0)
    stored("r1", "26", "2026-12-04 11:00", error="the engine did not start")
    stored("r2", "26", "2026-12-05 09:00", chapters=ok)  # the newer run of 26 wins
    (tmp_path / "r2" / "broken").mkdir()
    (tmp_path / "r2" / "broken" / "result.json").write_text("{not json")
    got = matrix.stored_results([tmp_path / "r1", tmp_path / "r2"])
    assert [(r.name, r.finished, r.error) for r in got] == [
        ("26", "2026-12-05 09:00", ""),
        ("vm", "2026-12-04 10:00", ""),
    ]
    docs = tmp_path / "engines.md"
    docs.write_text(f"# Engines\n\n{matrix_report.BEGIN}\nold\n{matrix_report.END}\ntail\n")
    monkeypatch.setattr(matrix, "ROOT", tmp_path.parent)
    monkeypatch.setattr(
        matrix,
        "write_docs",
        lambda res, path, started, secs: matrix_report.write_docs(res, docs, started, secs),
    )
    assert matrix.main(["--report", str(tmp_path / "r1"), str(tmp_path / "r2")]) == 0
    text = docs.read_text()
    assert (
        "\nold\n" not in text and text.endswith("tail\n") and "2026-12-04 10:00 to 2026-12-05 09:00" in text
    )
    assert "each engine's run ended: 26 2026-12-05 09:00, vm 2026-12-04 10:00" in text
    assert matrix.main(["--report", str(tmp_path / "empty"), "--no-docs"]) == 1
    assert "no stored engine results" in capsys.readouterr().err


@pytest.mark.unit
def test_a_run_of_one_engine_keeps_the_other_rows_in_the_docs(tmp_path):
    ok = {"02": {"cells": 3, "failed": 0, "s": 4.0, "grade": "pass", "nbval": "pass"}}
    bad = {"02": {"cells": 3, "failed": 2, "s": 5.0, "grade": "", "nbval": "fail"}}
    docs = tmp_path / "engines.md"
    docs.write_text("# Engines\n\nintro\n")
    first = [
        matrix.EngineResult("26", matrix.ENGINES["26"].title, finished="2026-12-03 10:00", chapters=ok),
        matrix.EngineResult(
            "podman", matrix.ENGINES["podman"].title, finished="2026-12-04 11:00", chapters=bad, notes=["old"]
        ),
    ]
    matrix_report.write_docs(first, docs, "2026-12-03 09:00 to 2026-12-04 11:00", None)
    text = docs.read_text()
    text = text.replace(matrix_report.END, f"- a note of no one engine\n{matrix_report.END}")
    docs.write_text(text + "tail\n")
    again = matrix.EngineResult(
        "podman", matrix.ENGINES["podman"].title, finished="2026-12-05 12:00", chapters=ok, notes=["new"]
    )
    matrix_report.write_docs([again], docs, "2026-12-05 11:40", 1200)
    text = docs.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "✓" in line]
    assert len(rows) == 2 and rows[0].startswith(f"| {matrix.ENGINES['26'].title}")  # the matrix's order
    assert "✗ 2" not in text and text.count(f"| {matrix.ENGINES['26'].title} |") == 2  # and its figures
    assert ": new" in text and ": old" not in text and "- a note of no one engine" in text
    assert "each engine's run ended: 26 2026-12-03 10:00, podman 2026-12-05 12:00" in text
    assert "**Last run** (of podman): 2026-12-05 11:40 UTC" in text and "26 ended 2026-12-03 10:00" in text
    assert text.startswith("# Engines\n\nintro\n") and text.endswith("tail\n")


# --------------------------------------------------------------------------- with the suite's engine


def _suite_engine_host():
    from dockercourse.core.engine import connect, engine_url

    return engine_url(connect())


def test_engine_up_uses_an_engine_that_answers():
    host = _suite_engine_host()
    r = _run([], env={"DOCKER_HOST": host})
    assert r.returncode == 0, r.stderr
    assert "already answers" in r.stderr and "using it as it is" in r.stderr


def test_docker_host_that_does_not_answer(tmp_path):
    r = _run([], env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "does not answer" in r.stderr


def test_a_second_engine_is_refused():
    """With the suite's engine answering, asking for another one: one line, nothing started."""
    before = local.dockerd_processes()
    other = "26" if (local.read_record() or {}).get("name") != "26" else "28-classic"
    r = _run(["--engine", other])
    if "already answers" in r.stderr and "using it" in r.stderr:
        pytest.skip("the suite's engine is the one asked for")
    assert r.returncode == 1, r.stderr
    assert "one engine at a time" in r.stderr and r.stderr.strip().count("\n") == 0
    assert local.dockerd_processes() == before


def test_unprivileged_user_is_told_to_use_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    user = "dcvmtest"
    try:
        pwd.getpwnam(user)
    except KeyError:
        if subprocess.run(["useradd", "-m", user], capture_output=True).returncode != 0:
            pytest.skip("cannot create the unprivileged test user")
    # the clone may be unreadable for that user: run a readable copy of the script and package
    tmp = Path(tempfile.mkdtemp(prefix="dce-user-"))
    try:
        shutil.copytree(REPO / "scripts", tmp / "scripts")
        shutil.copytree(
            REPO / "src" / "dockercourse",
            tmp / "src" / "dockercourse",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() or p.suffix == "" else 0o644)
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "PYTHONPATH")}
        r = subprocess.run(
            ["runuser", "-u", user, "--", str(tmp / "scripts" / "engine-up")],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert r.returncode == 1
    assert "needs root" in r.stderr and "sudo" in r.stderr


def test_a_package_that_cannot_be_fetched(tmp_path):
    r = _run(
        ["--fetch", "--engine", "26"],
        env={
            "DOCKERCOURSE_PKGS": str(tmp_path / "pkgs"),
            "DOCKERCOURSE_STATE": str(tmp_path / "state"),
            "DOCKERCOURSE_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
        },
    )
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if "ERROR" in line]
    assert len(err) == 1 and "cannot read Debian's package lists from http://127.0.0.1:9/debian" in err[0]
    assert not (tmp_path / "pkgs" / "pkgs" / "26.1" / "root").exists()


# --------------------------------------------------------------------------- a second engine, no network


@pytest.fixture
def side_engine():
    """Folders and environment for an engine beside the suite's: own state, socket and network namespace."""
    if os.geteuid() != 0:
        pytest.skip("starting an engine needs root")
    if not PKGS.exists():
        pytest.skip("the course's Docker 28.5 packages are not fetched (scripts/engine-up --fetch)")
    if os.path.exists(local.DEFAULT_SOCKET) and local.ping("unix://" + local.DEFAULT_SOCKET):
        pytest.skip("an engine on the default socket would be taken for the one to start")
    tmp = Path(tempfile.mkdtemp(prefix="dce-", dir="/tmp"))  # short: socket paths are limited to 107 bytes
    env = {
        "DOCKERCOURSE_STATE": str(tmp / "s"),
        "DOCKERCOURSE_RUN_DIR": str(tmp / "r"),
        "DOCKERCOURSE_PKGS": "/var/lib/dockercourse",
        "DOCKERCOURSE_ENGINE_NETNS": "1",
        "DOCKERCOURSE_ENGINE_WAIT": "60",
    }
    yield tmp, env
    _run(["--stop"], env=env)
    for pid in local.dockerd_processes():  # a dockerd of this test's state folder, if --stop failed
        if any(a.startswith(str(tmp)) for a in local.cmdline(pid)):
            os.kill(pid, signal.SIGKILL)
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mp = line.split()[1]
        if mp.startswith(str(tmp)):
            subprocess.run(["umount", "-l", mp], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _record(env):
    return json.loads((Path(env["DOCKERCOURSE_RUN_DIR"]) / "engine.json").read_text())


def _until(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(300)
def test_engine_lifecycle_supervised_restarted_stopped_removed(side_engine):
    tmp, env = side_engine
    sock = f"unix://{tmp}/r/docker.sock"
    r = _run(["--engine", "28"], env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert local.ping(sock)
    rec = _record(env)
    assert rec["name"] == "28-containerd" and rec["packages"]["docker.io"].startswith("28.5.2")
    v = local.version(sock)
    assert v["Version"].startswith("28.5.2")

    # status and env name it and how it was started
    st = json.loads(_run(["--status"], env=env).stdout)
    assert st["answers"] and st["started_by_course"] and st["course_engine"]["name"] == "28-containerd"
    assert _run(["--env"], env=env).stdout.strip() == f"export DOCKER_HOST={sock}"

    # a container runs, on this engine's own bridge
    import docker

    c = docker.DockerClient(base_url=sock, version="auto", timeout=60)
    _load_busybox(c)
    assert c.containers.run("dce-busybox:1", ["echo", "hi"], remove=True) == b"hi\n"
    assert os.path.exists("/sys/class/net/docker0")  # the host's bridge is untouched

    # dockerd crashes: the supervisor starts it again
    os.kill(rec["dockerd_pid"], signal.SIGKILL)
    assert _until(lambda: local.ping(sock) and _record(env)["dockerd_pid"] != rec["dockerd_pid"], 60)
    assert "restarting it" in Path(rec["log"]).read_text()

    # everything killed at once (as when the machine's processes end): stale pid files, recovered
    rec = _record(env)
    for pid in (rec["supervisor_pid"], rec["dockerd_pid"]):
        os.kill(pid, signal.SIGKILL)
    cpid_file = Path(rec["exec_root"]) / "containerd" / "containerd.pid"
    if cpid_file.exists():
        try:
            os.kill(int(cpid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    assert _until(lambda: not local.ping(sock, 1), 20)
    r = _run(["--engine", "28"], env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "stale" in r.stderr and local.ping(sock)

    # asked again: nothing to do
    r = _run(["--engine", "28"], env=env)
    assert r.returncode == 0 and "already answers" in r.stderr

    # stop: only this engine's processes end, its socket goes
    rec = _record(env)
    r = _run(["--stop"], env=env)
    assert r.returncode == 0, r.stderr
    assert _until(lambda: not local.alive(rec["dockerd_pid"]) and not local.alive(rec["supervisor_pid"]), 30)
    assert not (tmp / "r" / "docker.sock").exists()
    assert _suite_engine_host()  # the suite's engine still answers, its bridge still there
    assert os.path.exists("/sys/class/net/docker0")

    # remove: its data and log go; the fetched packages stay (they are shared)
    r = _run(["--remove", "--engine", "28"], env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp / "s" / "engines" / "28-containerd").exists()
    assert PKGS.exists()


def _load_busybox(client):
    """A one-file image made here (the side engine has no registry mirror)."""
    bb = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(bb, arcname="bin/busybox")
        for applet in ("sh", "echo", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(info)
    client.api.import_image_from_data(buf.getvalue(), repository="dce-busybox", tag="1")


def test_socket_taken_by_another_program(side_engine):
    tmp, env = side_engine
    run = tmp / "r"
    run.mkdir(parents=True)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(run / "docker.sock"))
    srv.listen(1)
    try:
        r = _run(["--engine", "28"], env=env)
    finally:
        srv.close()
    assert r.returncode == 1
    assert "another program listens on" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (run / "engine.json").exists()
