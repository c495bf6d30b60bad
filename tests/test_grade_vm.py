"""Isolated grading: `grade --engine vm` gives each worker its own engine in a qemu VM.

A hostile submission bind-mounts the engine host's `/` and tries to read a secret file
of the grading machine, then removes every container it can see. With the VM engine
it only ever reaches its own VM: the secret is not read, and the other submission,
graded at the same time in another worker's VM, keeps full marks.
"""

import copy
import csv
import secrets
import shutil
from pathlib import Path

import nbformat
import pytest

from dockercourse.grading.batch import grade_folder
from dockercourse.vm.boot import qemu_binary

FIXTURE = Path(__file__).parent / "fixtures" / "course"

HOSTILE = """
import docker, pathlib
c = docker.from_env()
try:
    out = c.containers.run("busybox:1.35.0", ["cat", "/host{secret}"], remove=True,
                           volumes={{"/": {{"bind": "/host", "mode": "ro"}}}}, privileged=True)
except Exception as e:
    out = ("refused: " + str(e)).encode()
pathlib.Path("{report}").write_bytes(out)
for ct in c.containers.list(all=True):
    ct.remove(force=True)
for v in c.volumes.list():
    try:
        v.remove(force=True)
    except Exception:
        pass
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(qemu_binary() is None, reason="qemu not installed (apt-get install -y qemu-system-x86)")
def test_hostile_submission_reaches_only_its_own_vm(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_ROOT", str(FIXTURE))
    secret_value = secrets.token_hex(16)
    secret = Path("/tmp") / f"dc-grade-secret-{secrets.token_hex(4)}"
    secret.write_text(secret_value)
    # where the hostile cell reports: a file any user may write (as root, the grader runs the
    # kernels as a throwaway user, whose own files are removed with it)
    report = Path("/tmp") / f"dc-grade-report-{secrets.token_hex(4)}"
    report.write_text("")
    report.chmod(0o666)
    subs = tmp_path / "subs"
    subs.mkdir()
    master = nbformat.read(FIXTURE / "notebooks" / "90_fixture.ipynb", as_version=4)
    nbformat.write(master, subs / "alice.ipynb")
    hostile = copy.deepcopy(master)
    hostile.cells.append(nbformat.v4.new_code_cell(HOSTILE.format(secret=secret, report=report)))
    nbformat.write(hostile, subs / "mallory.ipynb")
    try:
        grade_folder(
            subs,
            tmp_path / "out",
            jobs=2,
            engine="vm",
            progress=False,
            cell_timeout=180,
            submission_timeout=480,
        )
    finally:
        secret.unlink()
        read = report.read_bytes()
        report.unlink()
    rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv"))}
    assert rows["alice"]["status"] == "ok" and rows["alice"]["total"] == "3", rows
    assert rows["mallory"]["status"] == "ok", rows
    assert read, "the hostile cell did not run"
    assert secret_value.encode() not in read, "the submission read a file of the grading host"
    assert read.startswith(b"refused") or b"No such file" in read or read == b""
    # the host's own engine was never used for this batch
    import docker

    host = docker.from_env()
    assert not host.containers.list(all=True, filters={"label": "io.dockercourse.chapter=90"})
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
