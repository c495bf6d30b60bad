"""A class graded end to end, the way an instructor receives and returns it: chapter 90 as the zip
Moodle exports (good, empty, late, a duplicate resubmission) with a mapping to student ids, a deadline
and a late policy; chapter 91 as a folder (good, partial credit, hostile, unreadable); both recorded
into one gradebook, feedback released per student, the exports written; grading again changes nothing.
Graded as an instructor would, with no --engine: each worker behind its own isolated engine (rootless
where this machine can run it, else a VM), with the fixture course (tests/fixtures/course)."""

from __future__ import annotations

import copy
import csv
import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from dockercourse.cli import main as dockercourse
from dockercourse.core.notebooks import cell_part
from dockercourse.grading import gradebook
from dockercourse.grading.release import student_copy

FIXTURE = Path(__file__).parent / "fixtures" / "course"
DEADLINE = "2026-03-01T23:59:00Z"


@pytest.fixture(autouse=True)
def fixture_root(monkeypatch):
    monkeypatch.setenv("DOCKERCOURSE_ROOT", str(FIXTURE.resolve()))


def _master(name: str):
    return nbformat.read(FIXTURE / "notebooks" / name, as_version=4)


def _partial_91():
    """91.web's container created but never started (half its 2 points), 91.net done."""
    nb = copy.deepcopy(_master("91_fixture2.ipynb"))
    for c in nb.cells:
        if cell_part(c) == ("91.web", "solution"):
            c.source = 'client.containers.create(BUSYBOX, "sleep 300", name=name("web")).name'
    return nb


#: appended to the master: removes every container, volume and image it can see, tries the host's
#: engine; under the default engine it reaches only its own worker's engine
HOSTILE = """
import docker
c = docker.from_env()
for ct in c.containers.list(all=True):
    ct.remove(force=True)
for img in c.images.list():
    try:
        c.images.remove(img.id, force=True)
    except Exception:
        pass
try:
    docker.DockerClient(base_url="unix:///var/run/docker.sock").containers.list()
except Exception:
    pass
"""


def _hostile_91():
    nb = copy.deepcopy(_master("91_fixture2.ipynb"))
    nb.cells.append(nbformat.v4.new_code_cell(HOSTILE))
    return nb


def _moodle_zip(path: Path) -> Path:
    good, empty = _master("90_fixture.ipynb"), student_copy(_master("90_fixture.ipynb"))
    entries = [
        ("Alice A_101_assignsubmission_file_/90_fixture.ipynb", good, (2026, 3, 1, 10, 0, 0)),
        ("Bob B_102_assignsubmission_file_/90_fixture.ipynb", empty, (2026, 3, 1, 11, 0, 0)),
        ("Carol C_103_assignsubmission_file_/90_fixture.ipynb", good, (2026, 3, 3, 10, 0, 0)),  # 2 days late
        ("Dave D_104_assignsubmission_file_/90_fixture.ipynb", empty, (2026, 3, 1, 9, 0, 0)),
        ("Dave D_104_assignsubmission_file_/90_fixture-1.ipynb", good, (2026, 3, 1, 12, 0, 0)),  # resubmitted
    ]
    with zipfile.ZipFile(path, "w") as z:
        for name, nb, when in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=when), nbformat.writes(nb))
    return path


@pytest.mark.timeout(900)
def test_a_class_across_two_chapters_into_the_gradebook(tmp_path, capsys):
    db, released = tmp_path / "gradebook.sqlite", tmp_path / "to-students"
    mapping = tmp_path / "moodle-ids.csv"
    mapping.write_text("lms_id,student\n101,alice\n102,bob\n103,carol\n104,dave\n", encoding="utf-8")
    common = ["--gradebook", str(db), "--release-feedback", str(released), "--no-progress", "-j", "2"]
    ch90 = [
        "grade",
        str(_moodle_zip(tmp_path / "lab90.zip")),
        "--out",
        str(tmp_path / "g90"),
        "--map",
        str(mapping),
        "--deadline",
        DEADLINE,
        "--late-policy",
        "10%/day",
        *common,
    ]
    assert dockercourse(ch90) == 0
    out, err = capsys.readouterr()
    assert "student dave has 2 files: kept" in err and "90_fixture-1.ipynb" in err
    assert "gradebook" in out and "4 submissions recorded, 0 unchanged" in out

    subs91 = tmp_path / "lab91"
    subs91.mkdir()
    nbformat.write(_master("91_fixture2.ipynb"), subs91 / "alice.ipynb")
    nbformat.write(_partial_91(), subs91 / "bob.ipynb")
    nbformat.write(_hostile_91(), subs91 / "mallory.ipynb")
    (subs91 / "erin.ipynb").write_text("{ this is not a notebook", encoding="utf-8")
    ch91 = ["grade", str(subs91), "--out", str(tmp_path / "g91"), "--chapter", "91", *common]
    assert dockercourse(ch91) == 0
    assert "4 submissions recorded, 0 unchanged" in capsys.readouterr().out

    table = gradebook.class_table(db)
    got = {
        r.student: {ch: (s.total, s.possible, s.late_days, s.status) for ch, s in r.chapters.items()}
        for r in table.rows
    }
    assert got == {
        "alice": {"90": (3, 3, 0, "ok"), "91": (3, 3, 0, "ok")},
        "bob": {"90": (0, 3, 0, "ok"), "91": (2, 3, 0, "ok")},  # 91.web: 1 of its 2 points
        "carol": {"90": (2.4, 3, 2, "ok")},  # 3 points less 20 % for 2 days started
        "dave": {"90": (3, 3, 0, "ok")},  # the resubmission was graded
        "erin": {"91": (0, 3, 0, "not a notebook")},
        "mallory": {"91": (3, 3, 0, "ok")},  # its own engine emptied after its checks passed
    }
    web = {(r.exercise, r.status, r.points) for r in gradebook.student_rows(db, "bob") if r.chapter == "91"}
    assert ("91.web", "partial", 1) in web

    rows = list(csv.DictReader(open(tmp_path / "g90" / "grades.csv", encoding="utf-8")))
    assert {r["student"]: (r["total"], r["late_days"]) for r in rows}["carol"] == ("2.4", "2")
    carol = (released / "carol" / "chapter-90-feedback.html").read_text(encoding="utf-8")
    assert "2.4 / 3 points" in carol and "2 days late" in carol
    assert (released / "bob" / "chapter-91-feedback.html").exists()
    assert "◐ part done" in (released / "bob" / "chapter-91-feedback.html").read_text(encoding="utf-8")

    # the exports an LMS imports
    assert (
        dockercourse(["gradebook", "--db", str(db), "export", "csv", "--out", str(tmp_path / "all.csv")]) == 0
    )
    plain = {r["student"]: r for r in csv.DictReader(open(tmp_path / "all.csv", encoding="utf-8"))}
    assert set(plain) == {"alice", "bob", "carol", "dave", "erin", "mallory"}
    gs = tmp_path / "gs"
    assert (
        dockercourse(
            ["gradebook", "--db", str(db), "export", "gradescope", "--out", str(gs), "--chapter", "91"]
        )
        == 0
    )
    bob = json.loads((gs / "bob" / "results.json").read_text())  # one folder per student
    assert bob["score"] == 2 and sum(t["score"] for t in bob["tests"]) == 2
    capsys.readouterr()

    # grading the same submissions again changes nothing in the gradebook, also with --force
    assert dockercourse(ch90) == 0
    assert "0 submissions recorded, 4 unchanged" in capsys.readouterr().out
    before = gradebook.submissions(db)
    assert dockercourse([*ch91, "--force"]) == 0  # graded again, in a new namespace: messages name it
    assert "4 submissions" in capsys.readouterr().out
    scores = lambda subs: sorted((s.student, s.chapter, s.total, s.possible, s.status) for s in subs)  # noqa: E731
    assert scores(gradebook.submissions(db)) == scores(before)
