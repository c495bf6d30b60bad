"""The classroom (`dockercourse classroom`): JupyterHub on this machine, each student a system user whose
server starts a rootless Docker engine of their own.

The whole test: `classroom up --users 4` makes four students; each logs in through the hub (its login
form and REST API, as a browser does) and starts a server; each server's environment points at that
student's engine; all four run chapter 02 under strict nbval at the same time, as the student; no
student's engine shows another's containers and no student can open another's socket; stopping a
server leaves no process of that student; `classroom down` leaves no user, process or id range.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from dockercourse.classroom import hub, session, state_root, students
from dockercourse.errors import UsageError
from dockercourse.notebook.course import free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dockercourse.cli"]


def _cli(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.unit
def test_student_names_are_checked():
    for bad in ["Ana", "1st", "a b", "root;", "x" * 32, "", "-a"]:
        with pytest.raises(UsageError, match="not a valid student name"):
            students.check_name(bad)
    for good in ["ana", "student1", "b_o-2", "x" * 31]:
        assert students.check_name(good) == good


@pytest.mark.unit
def test_more_students_than_memory_holds_are_refused_with_the_reason():
    fits = hub.HUB_MB + 5 * hub.STUDENT_MB
    hub.check_capacity(5, fits)
    with pytest.raises(UsageError, match=r"6 students need about .* at most 5 here \(see docs/classroom.md"):
        hub.check_capacity(6, fits)


@pytest.mark.unit
def test_the_hub_listens_on_loopback_and_picks_its_internal_ports(tmp_path):
    text = hub.config_text(port=8123, names=["ana", "bo"], python=tmp_path / "bin/python", proxy="/x/chp")
    assert "c.JupyterHub.ip = '127.0.0.1'" in text and "c.JupyterHub.port = 8123" in text
    assert "c.JupyterHub.hub_port = 8081" not in text  # JupyterHub's default is not assumed free
    assert "c.Authenticator.allowed_users = ['ana', 'bo']" in text
    assert f"c.Spawner.cmd = ['{tmp_path}/bin/jupyterhub-singleuser']" in text
    assert "hooks.pre_spawn" in text and "hooks.post_stop" in text
    assert "'--timeout=3600'" in text and "'delete:servers'" in text  # idle servers are culled
    compile(text, "jupyterhub_config.py", "exec")
    never = hub.config_text(port=8123, names=["ana"], python=tmp_path / "bin/python", proxy="/x/chp", idle=0)
    assert "idle-culler" not in never


@pytest.mark.unit
def test_bad_names_are_refused_before_anything_is_made():
    r = _cli("classroom", "up", "--names", "ana,Bo", timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "dockercourse classroom: 'Bo' is not a valid student name: a lower-case letter, then up to 30 "
        "lower-case letters, digits, '-' or '_'"
    ]


@pytest.mark.unit
def test_a_vm_per_student_needs_more_memory_and_an_unknown_engine_is_refused():
    from dockercourse.classroom import vmengines

    fits = hub.HUB_MB + 5 * hub.STUDENT_MB  # five rootless students, but fewer VMs
    with pytest.raises(
        UsageError, match=rf"5 students need .*{vmengines.STUDENT_MB} MB each.* at most 2 here"
    ):
        hub.check_capacity(5, fits, vmengines.STUDENT_MB)
    r = _cli("classroom", "up", "--users", "2", "--engine", "kvm", timeout=60)
    assert r.returncode == 2 and "argument --engine: invalid choice: 'kvm'" in r.stderr
    r = _cli("classroom", "up", "--users", "2", "--engine", "vm", "--vm-memory", "64", timeout=60)
    assert r.returncode == 2 and r.stderr.strip().endswith("--vm-memory 64: give 256 to 16384 MB")


@pytest.mark.unit
def test_a_students_vm_keeper_gets_the_class_disk_and_a_private_state_folder(tmp_path):
    from dockercourse.classroom import vmengines
    from dockercourse.grading.users import Identity

    ident = Identity("ana", 1234, 1234, tmp_path / "home", tmp_path / "students/ana", 1_600_000_000, 0)
    env = vmengines.environment(ident, 512)
    assert env["DOCKERCOURSE_VM_CACHE"] == str(vmengines.cache_dir())  # the one disk of the class
    assert env["DOCKERCOURSE_VM_STATE"] == str(tmp_path / "students/ana/run/vm")  # mode 700, the student's
    assert env["DOCKERCOURSE_VM_MEMORY"] == "512" and env["HOME"] == str(tmp_path / "home")
    assert not any(k.endswith(("TOKEN", "KEY", "PASSWORD")) for k in env)  # nothing of root's


def _kernel_never_started(run: subprocess.CompletedProcess) -> bool:
    return "Kernel didn't respond in" in run.stdout and " passed" not in run.stdout


def _chapter_as(name: str, env: dict, nbval: list[str], delay: float = 0) -> subprocess.CompletedProcess:
    """Run the chapter under nbval as the student. Students start a second apart (as people do), and a run
    whose kernel never answered (jupyter_client's known race between kernels started at the same moment
    by separate processes: a kernel starts in under a second or never; jupyter_client issue 276, mystmd
    PR 2874) is run once more, saying so: the test is about the students' engines, not that race."""
    time.sleep(delay)
    run = session.run_as(name, env, *nbval)
    if _kernel_never_started(run):
        print(f"{name}: the kernel did not start (jupyter_client's race); running the chapter once more")
        run = session.run_as(name, env, *nbval)
    return run


def _need_root_and_rootless():
    import os

    from dockercourse.grading.rootless import rootless_missing

    if os.geteuid() != 0:
        pytest.skip("the classroom runs as root")
    missing = rootless_missing()
    if missing:
        pytest.skip(f"no rootless engines here: {', '.join(missing)}")
    if hub.running_pid():
        pytest.fail(f"a classroom hub already runs (pid {hub.running_pid()}): not ours to stop")


@pytest.mark.classroom
def test_a_port_in_use_is_refused_in_one_line():
    _need_root_and_rootless()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _cli("classroom", "up", "--users", "1", "--port", str(port), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"dockercourse classroom: port {port} is in use on 127.0.0.1: choose another with --port"
    )
    assert not students.names()


@pytest.mark.classroom
def test_a_user_the_classroom_did_not_make_is_never_taken_over():
    _need_root_and_rootless()
    before = pwd.getpwnam("nobody")
    r = _cli("classroom", "up", "--names", "nobody", "--port", str(free_port()), timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "dockercourse classroom: nobody: a user of this machine the classroom did not make has that name; "
        "choose other names (--names)"
    )
    assert pwd.getpwnam("nobody") == before and not students.names() and not hub.running_pid()


@pytest.mark.classroom
@pytest.mark.timeout(600)
def test_an_idle_server_is_culled_and_its_engine_with_it():
    from dockercourse.grading.users import _pids_of

    _need_root_and_rootless()
    port = free_port()
    r = _cli("classroom", "up", "--names", "idlestudent", "--port", str(port), "--chapters", "02",
             "--idle-timeout", "10")  # fmt: skip
    try:
        assert r.returncode == 0, r.stderr + r.stdout
        url = f"http://127.0.0.1:{port}/"
        s = session.login(url, "idlestudent", session.passwords()["idlestudent"])
        session.start_server(url, "idlestudent", s)
        assert _pids_of(students.load("idlestudent"))  # the server and the engine
        st = _cli("classroom", "status", timeout=60)
        assert st.returncode == 0 and f"hub: runs, pid {hub.running_pid()}" in st.stdout
        assert re.search(r"^idlestudent +server running +processes [1-9]", st.stdout, re.M), st.stdout
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and hub.api("/users/idlestudent").json().get("servers"):
            time.sleep(1)
        assert not hub.api("/users/idlestudent").json().get("servers"), "the idle server was not culled"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pids_of(students.load("idlestudent")):
            time.sleep(0.5)
        assert not _pids_of(students.load("idlestudent")), "the culled server's engine still runs"
    finally:
        d = _cli("classroom", "down", timeout=600)
    assert d.returncode == 0 and not students.names()


@pytest.mark.classroom
@pytest.mark.timeout(600)
def test_a_killed_hub_orphans_no_engine_and_the_next_up_starts_clean():
    import signal

    _need_root_and_rootless()
    port = free_port()
    args = ["classroom", "up", "--names", "hubkill", "--port", str(port), "--chapters", "02"]
    r = _cli(*args)
    try:
        assert r.returncode == 0, r.stderr + r.stdout
        url = f"http://127.0.0.1:{port}/"
        s = session.login(url, "hubkill", session.passwords()["hubkill"])
        session.start_server(url, "hubkill", s)
        server = int(session.server_environment("hubkill")["_PID"])
        engine = students.load("hubkill").engine_pid
        assert engine and Path(f"/proc/{engine}").exists()
        os.kill(hub.running_pid(), signal.SIGKILL)  # not a shutdown: no hook runs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{engine}").exists():
            time.sleep(0.2)
        assert not Path(f"/proc/{engine}").exists(), "the engine outlived its hub"
        assert Path(f"/proc/{server}").exists()  # the student's server outlives the hub: their work goes on
        again = _cli(*args)  # the killed hub's proxy still holds the port; the server runs without engine
        assert again.returncode == 0, again.stderr + again.stdout
        for left in ("stopped the proxy", "stopped the idle culler", "stopped what hubkill still ran"):
            assert left in again.stdout, again.stdout
        assert not Path(f"/proc/{server}").exists()
        s = session.login(url, "hubkill", session.passwords()["hubkill"])
        session.start_server(url, "hubkill", s)  # and starts again, with an engine
        env = session.server_environment("hubkill")
        c = docker.DockerClient(base_url=env["DOCKER_HOST"])
        assert c.containers.run("busybox:1.35.0", ["echo", "back"], remove=True) == b"back\n"
        c.close()
    finally:
        d = _cli("classroom", "down", timeout=600)
    assert d.returncode == 0 and not students.names()
    with pytest.raises(KeyError):
        pwd.getpwnam("hubkill")


@pytest.mark.classroom
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_four_students_each_with_an_engine_of_their_own():
    _need_root_and_rootless()
    port = free_port()
    r = _cli("classroom", "up", "--users", "4", "--port", str(port), "--chapters", "02")
    try:
        assert r.returncode == 0, r.stderr + r.stdout
        url = f"http://127.0.0.1:{port}/"
        passwords = session.passwords()
        names = [f"student{i}" for i in range(1, 5)]
        assert sorted(passwords) == names
        for secret in ("passwords", "api-token", "jupyterhub.sqlite", "cookie_secret", "hub.log"):
            assert (state_root() / secret).stat().st_mode & 0o077 == 0, f"{secret} is not root's only"
        with ThreadPoolExecutor(4) as pool:  # all four log in and start their servers at once
            sessions = dict(
                zip(names, pool.map(lambda n: session.login(url, n, passwords[n]), names), strict=True)
            )
            servers = dict(
                zip(names, pool.map(lambda n: session.start_server(url, n, sessions[n]), names), strict=True)
            )
        envs = {n: session.server_environment(n) for n in names}
        for n in names:
            assert envs[n]["DOCKER_HOST"] == f"unix://{students.folder(n)}/run/docker.sock"
            assert Path(f"/proc/{envs[n]['_PID']}").stat().st_uid == pwd.getpwnam(n).pw_uid  # as the student
            assert servers[n]["url"] == f"/user/{n}/"

        # the students got the student copies (no solutions); to run the whole chapter as CI does, each
        # also gets the master and the sanitizer in a folder of their own
        master = ROOT / "notebooks" / "02_core_concepts.ipynb"
        handed_out = students.load("student1").home / "course/notebooks" / master.name
        assert handed_out.is_file() and handed_out.read_text() != master.read_text()
        for n in names:
            ident = students.load(n)
            verify = ident.home / "verify"
            verify.mkdir()
            for src in (master, ROOT / "tests" / "nbval_sanitize.cfg"):
                shutil.copy(src, verify / src.name)
            for p in (verify, *verify.iterdir()):
                os.chown(p, ident.uid, ident.gid)
        nbval = ["python", "-m", "pytest", f"verify/{master.name}", "--nbval", "--nbval-current-env", "-q",
                 "-p", "no:cacheprovider", "--nbval-sanitize-with", "verify/nbval_sanitize.cfg"]  # fmt: skip
        with ThreadPoolExecutor(4) as pool:  # chapter 02, all four students at once
            done = pool.map(
                lambda i: _chapter_as(names[i], envs[names[i]], nbval, delay=i), range(len(names))
            )
            runs = dict(zip(names, done, strict=True))
        for n, run in runs.items():
            assert run.returncode == 0, f"{n}: {run.stdout[-3000:]}{run.stderr[-1000:]}"

        # a page a student's container publishes opens in the student's browser, through the server's
        # proxy at the path course.link prints (/user/NAME/proxy/PORT/)
        assert envs["student1"]["JUPYTERHUB_SERVICE_PREFIX"] == "/user/student1/"
        a = docker.DockerClient(base_url=envs["student1"]["DOCKER_HOST"])
        web = a.containers.run(
            "nginx:1.22", detach=True, name="classroom-web", ports={"80/tcp": ("127.0.0.1", None)}
        )
        try:
            web.reload()
            port = web.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
            page, deadline = None, time.monotonic() + 60
            while time.monotonic() < deadline:
                page = sessions["student1"].get(f"{url}user/student1/proxy/{port}/", timeout=30)
                if page.status_code == 200:
                    break
                time.sleep(0.5)
            assert page.status_code == 200 and "Welcome to nginx" in page.text, page.text[:300]
        finally:
            web.remove(force=True)
            a.close()

        # no student sees another's containers, nor can open another's engine
        b = docker.DockerClient(base_url=envs["student2"]["DOCKER_HOST"])
        probe = b.containers.create("busybox:1.35.0", ["true"], name="classroom-probe")
        a = docker.DockerClient(base_url=envs["student1"]["DOCKER_HOST"])
        assert "classroom-probe" not in [c.name for c in a.containers.list(all=True)]
        probe.remove()
        a.close(), b.close()
        peek = session.run_as(
            "student1", envs["student1"], "python", "-c",
            f"import docker; docker.DockerClient(base_url={envs['student2']['DOCKER_HOST']!r}).ping()",
        )  # fmt: skip
        assert peek.returncode != 0 and "PermissionError" in peek.stderr + peek.stdout

        # a server's stop stops the student's engine and everything the student ran
        from dockercourse.grading.users import _pids_of

        s1 = sessions["student1"]
        assert s1.delete(f"{url}hub/api/users/student1/server", timeout=120).status_code in (202, 204)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            hub.api("/users/student1").json().get("servers") or _pids_of(students.load("student1"))
        ):
            time.sleep(0.5)
        assert not _pids_of(students.load("student1")), "student1 still runs processes"
        assert all(_pids_of(students.load(n)) for n in names[1:])  # the others' engines run on
    finally:
        d = _cli("classroom", "down", timeout=600)
    assert d.returncode == 0, d.stderr + d.stdout
    assert not hub.running_pid() and not students.names()
    for n in [f"student{i}" for i in range(1, 5)]:
        with pytest.raises(KeyError):
            pwd.getpwnam(n)
        assert not Path(f"/home/{n}").exists()
    assert not any(ln.startswith("student") for ln in Path("/etc/subuid").read_text().splitlines())


@pytest.mark.classroom
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_two_students_each_with_a_vm_engine_of_their_own():
    """`--engine vm`: the class's VM disk is built once, as root, readable by all; each student's server
    boots a VM of the student's own from it, its API on mutual TLS with the student's certificate in a
    folder only the student opens; both run chapter 02 under strict nbval (with the VM engine's sanitizer
    rules) at the same time; neither can drive the other's engine; a server's stop leaves no qemu."""
    from dockercourse.classroom import vmengines
    from dockercourse.grading.users import _pids_of

    if os.geteuid() != 0:
        pytest.skip("the classroom runs as root")
    if vmengines.missing():
        pytest.skip(f"no VM engines here: {', '.join(vmengines.missing())}")
    if hub.running_pid():
        pytest.fail(f"a classroom hub already runs (pid {hub.running_pid()}): not ours to stop")
    port = free_port()
    names = ["vmstudent1", "vmstudent2"]
    r = _cli("classroom", "up", "--names", ",".join(names), "--port", str(port), "--chapters", "02",
             "--engine", "vm", timeout=1800)  # fmt: skip
    try:
        assert r.returncode == 0, r.stderr + r.stdout
        assert "each with a VM engine of their own" in r.stdout
        from dockercourse.vm.boot import kvm_usable

        if not kvm_usable():  # no KVM device: emulated, and `up` says so
            assert "no usable /dev/kvm here: each student's VM is emulated (TCG)" in r.stdout, r.stdout
        disk = [p for p in vmengines.cache_dir().rglob("*") if p.is_file() and p.suffix in (".qcow2", ".img")]
        assert disk and all(p.stat().st_mode & 0o004 for p in disk)  # every student reads the one disk
        url = f"http://127.0.0.1:{port}/"
        passwords = session.passwords()
        with ThreadPoolExecutor(2) as pool:
            sessions = dict(
                zip(names, pool.map(lambda n: session.login(url, n, passwords[n]), names), strict=True)
            )
            list(pool.map(lambda n: session.start_server(url, n, sessions[n], timeout=1200), names))
        envs = {n: session.server_environment(n) for n in names}
        for n in names:
            ident = students.load(n)
            e = envs[n]
            assert e["DOCKER_HOST"].startswith("tcp://127.0.0.1:") and e["DOCKER_TLS_VERIFY"] == "1"
            certs = Path(e["DOCKER_CERT_PATH"])
            assert certs.is_relative_to(ident.dir / "run") and certs.stat().st_uid == ident.uid
            assert certs.stat().st_mode & 0o077 == 0
            argv0 = {p: Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in _pids_of(ident)}
            qemu = [p for p, a in argv0.items() if b"qemu-system" in a]
            assert len(qemu) == 1, f"{n}: {qemu}"  # the student's own VM, run as the student
            assert str(vmengines.cache_dir()) in Path(f"/proc/{qemu[0]}/cmdline").read_bytes().decode()

        # neither student can drive the other's engine: no certificate of theirs is accepted, and the
        # other's folder of certificates cannot be opened
        a, b = envs[names[0]], envs[names[1]]
        probe = (
            "import docker, sys\n"
            "open(sys.argv[1] + '/key.pem').read()\n"
            f"env = dict(DOCKER_HOST={b['DOCKER_HOST']!r}, DOCKER_TLS_VERIFY='1',\n"
            "           DOCKER_CERT_PATH=sys.argv[1])\n"
            "docker.DockerClient(**docker.utils.kwargs_from_env(environment=env), version='1.41').ping()\n"
        )
        for certs in (a["DOCKER_CERT_PATH"], b["DOCKER_CERT_PATH"]):
            peek = session.run_as(names[0], a, "python", "-c", probe, certs)
            assert peek.returncode != 0, peek.stdout
            own = certs == a["DOCKER_CERT_PATH"]  # theirs: the TLS handshake fails; the other's: unreadable
            assert ("SSL" in peek.stderr) if own else ("PermissionError" in peek.stderr), peek.stderr[-600:]
        ping = (
            f"import urllib.request as u; u.urlopen('http://{b['DOCKER_HOST'][6:]}/_ping', timeout=10).read()"
        )
        plain = session.run_as(names[0], a, "python", "-c", ping)  # plain HTTP: no answer
        assert plain.returncode != 0

        # chapter 02 for both at once, through their VMs (emulated here: TCG)
        master = ROOT / "notebooks" / "02_core_concepts.ipynb"
        for n in names:
            ident = students.load(n)
            verify = ident.home / "verify"
            verify.mkdir()
            shutil.copy(master, verify / master.name)
            (verify / "sanitize.cfg").write_text(
                (ROOT / "tests/nbval_sanitize.cfg").read_text()
                + "\n"
                + (ROOT / "tests/nbval_sanitize_vm.cfg").read_text()
            )
            for p in (verify, *verify.iterdir()):
                os.chown(p, ident.uid, ident.gid)
        nbval = ["python", "-m", "pytest", f"verify/{master.name}", "--nbval", "--nbval-current-env", "-q",
                 "-p", "no:cacheprovider", "--nbval-sanitize-with", "verify/sanitize.cfg",
                 "--nbval-cell-timeout", "300"]  # fmt: skip
        with ThreadPoolExecutor(2) as pool:
            done = pool.map(
                lambda i: _chapter_as(names[i], envs[names[i]], nbval, delay=i), range(len(names))
            )
            runs = dict(zip(names, done, strict=True))
        for n, run in runs.items():
            assert run.returncode == 0, f"{n}: {run.stdout[-3000:]}{run.stderr[-1000:]}"

        # a server's stop stops the student's VM (qemu, the forwarder) and all else of theirs
        first = students.load(names[0])
        assert sessions[names[0]].delete(
            f"{url}hub/api/users/{names[0]}/server", timeout=120
        ).status_code in (
            202,
            204,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            hub.api(f"/users/{names[0]}").json().get("servers") or _pids_of(first)
        ):
            time.sleep(0.5)
        assert not _pids_of(first), f"{names[0]} still runs processes"
        assert _pids_of(students.load(names[1]))  # the other's VM runs on
    finally:
        d = _cli("classroom", "down", timeout=600)
    assert d.returncode == 0, d.stderr + d.stdout
    assert not hub.running_pid() and not students.names()
