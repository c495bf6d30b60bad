"""``dockercourse grade`` around the grading itself, without an engine: an LMS's zip and names to
student ids, deadlines and late penalties on the grades, feedback released per student, and the
command's bad input (one line, exit 2, before anything is graded)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat
import pytest

from dockercourse.cli import main as dockercourse
from dockercourse.cli.grade import _intake, _late_fields
from dockercourse.grading import report
from dockercourse.grading.batch import _annotate
from dockercourse.grading.late import Policy
from dockercourse.grading.results import ExerciseGrade, SubmissionGrade

pytestmark = pytest.mark.unit

DEADLINE = "2026-03-01T23:59:00Z"


def _nb() -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["dockercourse"] = {"chapter": "02"}
    return nbformat.writes(nb)


def _zip(path: Path, entries: dict[str, tuple[str, tuple]]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, (text, when) in entries.items():
            z.writestr(zipfile.ZipInfo(name, date_time=when), text)
    return path


def test_a_moodle_zip_is_staged_and_late_days_cost_points(tmp_path, capsys):
    src = _zip(
        tmp_path / "moodle.zip",
        {
            "Jane Doe_101_assignsubmission_file_/02_core_concepts.ipynb": (_nb(), (2026, 3, 1, 20, 0, 0)),
            "Li Wei_102_assignsubmission_file_/02_core_concepts.ipynb": (_nb(), (2026, 3, 3, 9, 0, 0)),
            "Li Wei_102_assignsubmission_file_/notes.txt": ("my notes", (2026, 3, 3, 9, 0, 0)),
        },
    )
    mapping = tmp_path / "map.csv"
    mapping.write_text("lms_id,student\n101,s1001\n102,s1002\n999,s9999\n", encoding="utf-8")
    out = tmp_path / "grades"
    folder, extra = _intake(src, out, mapping, DEADLINE, Policy.parse("10%/day"))
    err = capsys.readouterr().err
    assert "intake: mapping line 4: lms_id 999 (s9999) matches no submission" in err
    assert "student s1002 has 2 files: kept" in err
    assert sorted(p.name for p in folder.iterdir()) == ["s1001.ipynb", "s1002.ipynb"]
    assert sorted(extra["students"].values()) == ["s1001", "s1002"]
    ann = {extra["students"][p]: f for p, f in extra["annotate"].items()}
    assert ann["s1001"]["late_days"] == 0 and ann["s1001"]["penalty"] == 0.0
    assert ann["s1002"]["late_days"] == 2 and ann["s1002"]["penalty"] == 0.2  # 1 day 9 h: 2 days started
    assert ann["s1002"]["file"].endswith("02_core_concepts.ipynb")
    # a second run replaces the staging folder it made, and refuses one it did not make
    _intake(src, out, mapping, DEADLINE, Policy.parse("none"))
    (tmp_path / "other" / "submissions").mkdir(parents=True)
    with pytest.raises(Exception, match="was not made by dockercourse grade"):
        _intake(src, tmp_path / "other", mapping, DEADLINE, Policy.parse("none"))


def test_canvas_late_flag_without_a_time_counts_one_day():
    from dockercourse.grading.intake import Entry

    base = dict(student="12345", file=Path("x.ipynb"), original="doejane_LATE_12345_9_lab.ipynb")
    late = Entry(
        submitted_at="2026-03-20T00:00:00Z", lms="canvas", late_flag=True, time_from="archive", **base
    )
    fields = _late_fields(late, DEADLINE, Policy.parse("25%/day"))
    assert (fields["late_days"], fields["penalty"]) == (1, 0.25) and "Canvas marked" in fields["notes"][0]
    on_time = Entry(submitted_at="2026-03-20T00:00:00Z", lms="canvas", time_from="archive", **base)
    assert _late_fields(on_time, DEADLINE, Policy.parse("25%/day"))["late_days"] == 0  # zip time is not it
    mapped = Entry(submitted_at="2026-03-04T12:00:00Z", lms="canvas", time_from="mapping", **base)
    assert _late_fields(mapped, DEADLINE, Policy.parse("zero"))["penalty"] == 1.0
    assert _late_fields(mapped, None, Policy.parse("none")) == {
        "file": base["original"],
        "submitted_at": "2026-03-04T12:00:00Z",
    }


def _grade(student: str) -> SubmissionGrade:
    ex = [
        ExerciseGrade("02.hello", "hello", True, "", "", "at its check cell"),
        ExerciseGrade("02.volume", "volume", False, "no volume", "make it", "at its check cell", points=2),
    ]
    return SubmissionGrade(student, f"{student}.ipynb", "ab" * 32, "02", "ok", ex)


def test_annotations_penalty_and_released_feedback(tmp_path):
    g = _grade("s1002")
    assert _annotate(g, {"late_days": 2, "penalty": 0.2, "notes": ["late"]}) is True
    assert _annotate(g, {"late_days": 2, "penalty": 0.2, "notes": ["late"]}) is False  # idempotent
    assert (g.points, g.total, g.possible, g.notes) == (1.0, 0.8, 3.0, ["late"])
    page = report.feedback_html(g)
    assert "<b>0.8 / 3 points</b>" in page and "2 days late" in page
    out, dest = tmp_path / "grades", tmp_path / "to-lms"
    grades = [g, _grade("=s1001")]
    for x in grades:
        report.write_result(out, x)
    assert report.release_feedback(grades, out, dest, "02") == 2
    assert (dest / "s1002" / "chapter-02-feedback.html").read_text(encoding="utf-8") == page
    index = (dest / "chapter-02-feedback.csv").read_text(encoding="utf-8").splitlines()
    assert index[0] == "student,page,total,possible,percent,status"
    assert index[2] == "s1002,s1002/chapter-02-feedback.html,0.8,3,26.7,ok"
    assert index[1].startswith("'=s1001,")  # a formula-looking id is quoted for spreadsheets


def test_bad_input_is_one_line_before_any_grading(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    cases = [
        (["grade", str(tmp_path / "nothing")], "is neither a folder nor a .zip file"),
        (["grade", str(tmp_path / "subs"), "--late-policy", "5 points"], "unknown late policy"),
        (["grade", str(tmp_path / "subs"), "--late-policy", "10%/day"], "--late-policy needs --deadline"),
        (["grade", str(tmp_path / "subs"), "--deadline", "2026-03-01"], "has no time of day"),
        (["grade", str(tmp_path / "subs"), "--chapter", "99"], "chapter 99 has no checks in this course"),
    ]
    for argv, msg in cases:
        assert dockercourse(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "ro").mkdir(mode=0o500)
    if not __import__("os").access(tmp_path / "ro", __import__("os").W_OK):  # root may write anywhere
        assert dockercourse(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "ro" / "g")]) == 2
        assert "cannot write the folder" in capsys.readouterr().err
