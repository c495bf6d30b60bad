"""Isolated grading by default: `grade` without `--engine` gives each worker a throwaway user and a
rootless Docker engine of its own (dockercourse.grading.sandbox), and runs the kernels as that user.

A hostile submission bind-mounts the host's `/` into a privileged container to read a secret
of the grading host, opens it from Python too, tries the host's engine socket, and removes every
container it can see. Graded beside an honest one under the default engine: it reads nothing,
reaches no other engine, the instructor's own container and the course mirror are untouched, the
honest submission keeps full marks, and no user, folder, process, ACL entry or file is left.
"""

from __future__ import annotations

import copy
import csv
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from dockercourse.cli import main as dockercourse
from dockercourse.grading import sandbox
from dockercourse.grading.batch import choose_engine

FIXTURE = Path(__file__).parent / "fixtures" / "course"

HOSTILE = """
import docker, os, pathlib
c = docker.from_env()
out = []
try:
    out.append(c.containers.run("busybox:1.35.0", ["cat", "/host{secret}"], remove=True,
                                volumes={{"/": {{"bind": "/host", "mode": "ro"}}}}, privileged=True))
except Exception as e:
    out.append(("container refused: " + str(e)[:300]).encode())
try:
    out.append(open("{secret}", "rb").read())
except Exception as e:
    out.append(("open refused: " + str(e)).encode())
for sock in ("{host_socket}", "/var/run/docker.sock"):
    try:
        out.append(repr(docker.DockerClient(base_url="unix://" + sock).containers.list()).encode())
    except Exception as e:
        out.append(("engine refused: " + str(e)[:200]).encode())
out.append(("uid=%d DOCKER_HOST=%s" % (os.getuid(), os.environ.get("DOCKER_HOST"))).encode())
pathlib.Path("{report}").write_bytes(b"\\n".join(out))
for ct in c.containers.list(all=True):
    ct.remove(force=True)
"""

rootless = pytest.mark.skipif(
    bool(sandbox.rootless_missing()),
    reason=f"the rootless tier cannot run here: {', '.join(sandbox.rootless_missing())}",
)


def _leftovers() -> dict:
    """What the grading users could leave: users, their folders, /dev/net/tun ACL entries."""
    users = sorted(p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(sandbox.USER_PREFIX))
    root = sandbox.state_root()
    folders = sorted(p.name for p in root.glob(f"{sandbox.USER_PREFIX}*")) if root.is_dir() else []
    acl = ""
    if Path("/usr/bin/getfacl").exists():
        acl = subprocess.run(["getfacl", "-p", "-c", str(sandbox.TUN)], capture_output=True, text=True).stdout
    return {
        "users": users,
        "folders": folders,
        "acl": [ln for ln in acl.splitlines() if ln.startswith("user:")],
        "subuid": [ln for ln in Path("/etc/subuid").read_text().splitlines() if ln.startswith("dcg-")],
    }


def _uid(p: Path) -> int:
    """The uid of a live process (-1: gone, or a zombie, which only waits for its parent to reap it
    and holds nothing)."""
    try:
        if (p / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return -1
        return p.stat().st_uid
    except (OSError, IndexError):
        return -1


@rootless
@pytest.mark.timeout(900)
def test_hostile_submission_under_the_default_engine(tmp_path, monkeypatch, engine, capsys):
    from dockercourse.engines.specs import course_socket
    from dockercourse.imagekit.naming import MIRROR_NAME

    monkeypatch.setenv("DOCKERCOURSE_ROOT", str(FIXTURE.resolve()))
    before = _leftovers()
    secret_value = secrets.token_hex(16)
    secret = Path("/root") / f"dc-grade-secret-{secrets.token_hex(4)}"
    secret.write_text(secret_value)
    secret.chmod(0o600)
    # where the hostile cell reports what it got: a file of the test's (the user's own files go)
    report = Path("/tmp") / f"dc-grade-report-{secrets.token_hex(4)}"
    report.write_text("")
    report.chmod(0o666)
    subs = tmp_path / "subs"
    subs.mkdir()
    master = nbformat.read(FIXTURE / "notebooks" / "90_fixture.ipynb", as_version=4)
    nbformat.write(master, subs / "alice.ipynb")
    hostile = copy.deepcopy(master)
    hostile.cells.append(
        nbformat.v4.new_code_cell(HOSTILE.format(secret=secret, report=report, host_socket=course_socket()))
    )
    nbformat.write(hostile, subs / "mallory.ipynb")
    mine = engine.containers.run(
        "busybox:1.35.0", ["sleep", "600"], name=f"instructor-own-{secrets.token_hex(3)}", detach=True
    )
    mirrors = [c.id for c in engine.containers.list(filters={"name": MIRROR_NAME})]
    try:
        rc = dockercourse(["grade", str(subs), "--out", str(tmp_path / "out"), "-j", "2", "--no-progress"])
        out = capsys.readouterr().out
        assert rc == 0
        assert "graded on: a rootless Docker engine per submission" in out
        rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv"))}
        assert rows["alice"]["status"] == "ok" and rows["alice"]["total"] == "3", rows
        assert rows["mallory"]["status"] == "ok", rows
        read = report.read_bytes()
        assert read, "the hostile cell did not run"
        assert secret_value.encode() not in read, "the submission read a file of the grading host"
        lines = read.decode(errors="replace").splitlines()
        assert "Permission denied" in lines[0]  # the container's root is the throwaway user
        assert lines[1].startswith("open refused") and "Permission denied" in lines[1]
        assert all(ln.startswith("engine refused") for ln in lines[2:4]), lines
        uid, host = lines[4].split()
        assert uid != "uid=0" and host.startswith(f"DOCKER_HOST=unix://{sandbox.state_root()}/dcg-")
        # the instructor's container and the course mirror are still there, running
        mine.reload()
        assert mine.status == "running"
        assert [c.id for c in engine.containers.list(filters={"name": MIRROR_NAME})] == mirrors
        assert not engine.containers.list(all=True, filters={"label": "io.dockercourse.chapter=90"})
        # nothing of the workers is left: users, folders, ACL entries, subordinate ids, processes
        assert _leftovers() == before
        worker_uid = int(uid.split("=")[1])
        top = sandbox.SUBID_BASE + sandbox.SUBID_SLOTS * sandbox.SUBID_COUNT
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) == worker_uid]
        assert not left, [(p.name, (p / "cmdline").read_bytes()[:200]) for p in left if p.exists()]
        assert not [
            p.name
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and sandbox.SUBID_BASE <= _uid(p) < top
        ]
    finally:
        mine.remove(force=True)
        secret.unlink()
        report.unlink()


@rootless
@pytest.mark.timeout(300)
def test_a_killed_worker_leaves_nothing_after_the_next_run(monkeypatch):
    """A worker killed with its engine running: the next run's reap removes its user and engine."""
    ident = sandbox.create_user(subids=True, owner=os.getpid())
    port = None
    host = sandbox.start_rootless(ident, port)
    assert host.startswith("unix://")
    assert sandbox._pids_of(ident)
    # its owner "dies": a pid that is not running
    dead = subprocess.Popen(["true"])
    dead.wait()
    ident.owner, ident.owner_start = dead.pid, "0"
    ident.save()
    assert ident.name in sandbox.reap_stale()
    assert not sandbox._pids_of(ident)
    with pytest.raises(KeyError):
        pwd.getpwnam(ident.name)
    assert not ident.dir.exists()


@pytest.mark.unit
def test_subordinate_id_ranges():
    text = "alice:100000:65536\nbroken line\ndcg-1:1800000000:65536\n"
    taken = sandbox.parse_subids(text)
    assert taken == [(100000, 65536), (1_800_000_000, 65536)]
    assert sandbox.free_subid(taken) == 1_800_000_000 + 65536
    assert sandbox.free_subid([]) == sandbox.SUBID_BASE
    # a range that overlaps part of a slot makes that slot taken, not the ones after it
    assert sandbox.free_subid([(1_800_000_000 + 100, 10)]) == 1_800_000_000 + 65536


@pytest.mark.unit
def test_choose_engine(monkeypatch):
    from dockercourse.errors import UsageError
    from dockercourse.grading import batch

    monkeypatch.setattr(sandbox, "rootless_missing", lambda: [])
    monkeypatch.setattr(batch, "_vm_missing", lambda: [])
    assert choose_engine() == "rootless" and choose_engine("vm") == "vm" and choose_engine("host") == "host"
    monkeypatch.setattr(sandbox, "rootless_missing", lambda: ["rootlesskit (rootlesskit)"])
    assert choose_engine() == "vm"
    with pytest.raises(UsageError, match="--engine rootless needs rootlesskit"):
        choose_engine("rootless")
    monkeypatch.setattr(batch, "_vm_missing", lambda: ["qemu-system-x86_64"])
    with pytest.raises(UsageError, match="--engine host --trust-submissions"):
        choose_engine()
    with pytest.raises(UsageError, match="engine must be one of"):
        choose_engine("docker")


@pytest.mark.unit
def test_host_engine_needs_trust(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    assert dockercourse(["grade", str(tmp_path / "subs"), "--engine", "host", "--chapter", "02"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-submissions" in err[0], err


@pytest.mark.unit
@pytest.mark.skipif(os.geteuid() != 0, reason="the kernels run as another user only when grading as root")
def test_a_course_other_users_cannot_read_is_one_clear_error(tmp_path):
    from dockercourse.errors import CourseError

    private = tmp_path / "private"
    (private / "course").mkdir(parents=True)
    private.chmod(0o700)
    with pytest.raises(CourseError, match="cannot read the course at .*mode 755.*--trust-submissions"):
        sandbox.kernel_python(private / "course")


@pytest.mark.unit
def test_a_sandboxed_kernel_gets_none_of_the_graders_secrets(tmp_path):
    ident = sandbox.Identity("dcg-test", 4242, 4242, tmp_path / "home", tmp_path, 0, 1)
    grader = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "DOCKER_HOST": "unix:///x/docker.sock",
        "DOCKERCOURSE_NS": "g1a2b3c1",
        "LC_ALL": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "GITHUB_TOKEN": "ghp_x",
        "SSH_AUTH_SOCK": "/tmp/ssh-agent",
    }
    env = ident.env(grader)
    assert env["HOME"] == str(tmp_path / "home") and env["USER"] == "dcg-test"
    assert env["DOCKER_HOST"] == "unix:///x/docker.sock" and env["DOCKERCOURSE_NS"] == "g1a2b3c1"
    assert env["LC_ALL"] == "C.UTF-8" and env["PATH"] == "/usr/bin:/bin"
    assert not {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "SSH_AUTH_SOCK"} & set(env)


@pytest.mark.unit
def test_a_chapter_that_needs_limits_is_not_graded_where_they_are_not_enforced(monkeypatch, tmp_path):
    from dockercourse.core import chapters
    from dockercourse.grading import batch

    root = Path(__file__).resolve().parent.parent
    assert chapters.get(root, "04").needs == ("limits",) and chapters.get(root, "02").needs == ()
    monkeypatch.setattr(sandbox, "rootless_limits", lambda: False)
    monkeypatch.setattr(batch, "_vm_missing", lambda: [])
    assert batch.engine_for_chapter("rootless", root, "02", auto=True) == ("rootless", "")
    tier, why = batch.engine_for_chapter("rootless", root, "04", auto=True)
    assert tier == "vm" and "need memory limits enforced" in why
    tier, why = batch.engine_for_chapter("rootless", root, "04", auto=False)  # asked for: kept, and said
    assert tier == "rootless" and why.endswith("correct answers to those exercises will be marked wrong")
    assert batch.engine_for_chapter("host", root, "04", auto=False) == ("host", "")
    monkeypatch.setattr(sandbox, "rootless_limits", lambda: True)
    assert batch.engine_for_chapter("rootless", root, "04", auto=True) == ("rootless", "")
    bad = tmp_path / "chapters.toml"
    bad.write_text(
        '[[chapter]]\nnumber = "1"\nslug = "x"\ntitle = "X"\nteaching = 1\nexercises = 1\nneeds = ["gpu"]\n'
    )
    with pytest.raises(Exception, match="needs"):
        chapters.load(tmp_path)


@pytest.mark.unit
@pytest.mark.skipif(os.geteuid() != 0, reason="asks as root what another user could read")
def test_a_submissions_folder_other_users_can_read_is_pointed_out(tmp_path, capsys):
    import tempfile

    from dockercourse.cli.grade import _warn_readable
    from dockercourse.grading.kernelpy import readable_by_others

    shared = Path(tempfile.mkdtemp(prefix="dc-readable-"))
    try:
        shared.chmod(0o755)
        private = shared / "private"
        private.mkdir(mode=0o700)
        assert readable_by_others(shared) and not readable_by_others(private)
        _warn_readable([shared, private])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(shared) in err[0] and "chmod 700" in err[0]
        assert str(private) not in err[0]
    finally:
        shutil.rmtree(shared)


@pytest.mark.unit
def test_kernel_venvs_of_other_toolkit_versions_go_unless_a_batch_holds_them(tmp_path, monkeypatch):
    from dockercourse.grading import kernelpy

    monkeypatch.setattr(kernelpy, "_in_use", None)
    held, unused, current = (tmp_path / n for n in ("held", "unused", "current"))
    for d in (held, unused, current):
        (d / "bin").mkdir(parents=True)
    kernelpy._hold(held)  # a batch of another checkout is using it
    try:
        kernelpy._prune(tmp_path, current)
        assert held.exists() and current.exists() and not unused.exists()
    finally:
        kernelpy._in_use.close()
    kernelpy._prune(tmp_path, current)  # that batch ended
    assert not held.exists() and current.exists()
