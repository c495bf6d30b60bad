"""The course gradebook (SQLite) and its exports, with hand-made grades: no engine, no kernel.

Two chapters, several students: full marks, partial credit, late with a penalty, a file that
is not a notebook, a timeout. Recording, idempotence, replacement, the class table, the
Canvas / Gradescope / plain CSV exports checked against the published formats, the command.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from dockercourse.cli import main as dockercourse
from dockercourse.errors import CourseError, UsageError
from dockercourse.grading import gradebook as gb
from dockercourse.grading.results import GRADER_VERSION, ExerciseGrade, SubmissionGrade

pytestmark = pytest.mark.unit

NOW = "2025-03-04T09:00:00Z"
LATER = "2025-03-05T09:00:00Z"

# Canvas's gradebook CSV, as Canvas exports it with SIS ids and imports it back:
# https://github.com/instructure/canvas-lms/blob/master/lib/gradebook_exporter.rb (header, then the
# "    Points Possible" row) and .../lib/gradebook_importer.rb (the header check: "Student", "ID",
# "SIS User ID", "SIS Login ID", "Section"; a row whose first cell includes "Points Possible";
# assignment columns "Title (id)" parsed by /\A(.*)\s\((\d+)\)\z/).
CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")

# Gradescope's autograder results.json, https://gradescope-autograders.readthedocs.io/en/latest/specs/
# ("Output format"): every top-level and test-case field with its JSON type.
GRADESCOPE_TOP = {
    "score": (int, float),
    "execution_time": (int, float),
    "output": str,
    "output_format": str,
    "test_output_format": str,
    "test_name_format": str,
    "visibility": str,
    "stdout_visibility": str,
    "extra_data": dict,
    "tests": list,
    "leaderboard": list,
}
GRADESCOPE_TEST = {
    "score": (int, float),
    "max_score": (int, float),
    "status": str,
    "name": str,
    "name_format": str,
    "number": str,
    "output": str,
    "output_format": str,
    "tags": list,
    "visibility": str,
    "extra_data": dict,
}
GRADESCOPE_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
GRADESCOPE_FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def ex(chapter, name, passed, *, points=1.0, credit=0.0, error=False, hint="look again"):
    message = "done" if passed else f"{name} is not done yet"
    return ExerciseGrade(
        f"{chapter}.{name}", name.title(), passed, message, hint, "at its check cell", error, points, credit
    )


def sub(student, chapter, status, exercises, **kw):
    kw.setdefault("sha256", student[:1] * 64)
    return SubmissionGrade(
        student, f"{student}.ipynb", chapter=chapter, status=status, exercises=exercises, **kw
    )


def chapter02():
    return [
        sub("alice", "02", "ok", [ex("02", "run", True), ex("02", "ps", True, points=2)], seconds=12.3),
        sub(
            "bob",
            "02",
            "ok",
            [ex("02", "run", True), ex("02", "ps", False, points=2, credit=0.5)],  # partial credit
            late_days=2,
            penalty=0.1,
            submitted_at="2025-03-03T10:00:00Z",
        ),
        sub("=carol", None, "not a notebook", [], notes=["Not a notebook: bad JSON."]),
        sub("dave", "02", "timeout", [ex("02", "run", True), ex("02", "ps", False, points=2)]),
    ]


def chapter03():
    return [
        sub("alice", "03", "ok", [ex("03", "build", True, points=3), ex("03", "tag", False, error=True)]),
        sub("bob", "03", "ok", [ex("03", "build", True, points=3), ex("03", "tag", True)]),
    ]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "gradebook.sqlite"
    assert gb.record(path, chapter02(), "2", now=NOW) == (4, 0)
    assert gb.record(path, chapter03(), "03", now=NOW) == (2, 0)
    return path


def stamps(path):
    return {(s.student, s.chapter): s.graded_at for s in gb.submissions(path)}


# --------------------------------------------------------------------------- recording


def test_class_table(db):
    t = gb.class_table(db)
    assert t.chapters == ["02", "03"]
    assert t.possible == {"02": 3.0, "03": 4.0}
    rows = {r.student: r for r in t.rows}
    assert [r.student for r in t.rows] == ["=carol", "alice", "bob", "dave"]
    assert {c: s.total for c, s in rows["alice"].chapters.items()} == {"02": 3.0, "03": 3.0}
    assert (rows["alice"].total, rows["alice"].possible, rows["alice"].percent) == (6.0, 7.0, 85.7)
    bob02 = rows["bob"].chapters["02"]
    assert (bob02.points, bob02.total, bob02.late_days, bob02.penalty) == (2.0, 1.8, 2, 0.1)
    assert rows["bob"].total == 5.8
    assert rows["=carol"].chapters["02"].status == "not a notebook"
    assert (rows["=carol"].total, rows["=carol"].percent) == (0.0, 0.0)
    assert set(rows["dave"].chapters) == {"02"} and rows["dave"].chapters["02"].status == "timeout"


def test_student_rows(db):
    rows = gb.student_rows(db, "alice")
    assert [(r.chapter, r.exercise, r.status, r.points, r.possible) for r in rows] == [
        ("02", "02.run", "passed", 1.0, 1.0),
        ("02", "02.ps", "passed", 2.0, 2.0),
        ("03", "03.build", "passed", 3.0, 3.0),
        ("03", "03.tag", "error", 0.0, 1.0),
    ]
    r = rows[0]
    assert (r.submission_status, r.graded_at, r.grader_version, r.sha256) == (
        "ok",
        NOW,
        GRADER_VERSION,
        "a" * 64,
    )
    bob = gb.student_rows(db, "bob")
    assert [r.status for r in bob if r.chapter == "02"] == ["passed", "partial"]
    assert {(r.late_days, r.penalty) for r in bob if r.chapter == "02"} == {(2, 0.1)}
    assert [r.status for r in gb.student_rows(db, "dave")] == ["passed", "not yet"]
    assert gb.student_rows(db, "nobody") == []


def test_recording_again_changes_nothing(db):
    before = stamps(db)
    assert gb.record(db, chapter02(), "02", now=LATER) == (0, 4)
    assert gb.record(db, chapter03(), "03") == (0, 2)
    assert stamps(db) == before


def test_new_grader_version_or_file_replaces_rows(db):
    grades = chapter02()
    grades[0].version = GRADER_VERSION + 1  # alice: same file, newer grader
    grades[1].sha256 = "f" * 64  # bob: a new file...
    grades[1].exercises[1] = ex("02", "ps", True, points=2)  # ...that passes
    assert gb.record(db, grades, "02", now=LATER) == (2, 2)
    after = stamps(db)
    assert after[("alice", "02")] == after[("bob", "02")] == LATER
    assert after[("dave", "02")] == after[("alice", "03")] == NOW
    alice = gb.submissions(db, "alice", "02")[0]
    assert alice.grader_version == GRADER_VERSION + 1
    bob = [r for r in gb.student_rows(db, "bob") if r.chapter == "02"]
    assert [r.status for r in bob] == ["passed", "passed"] and {r.sha256 for r in bob} == {"f" * 64}
    assert gb.submissions(db, "bob", "02")[0].total == 2.7  # 3 points, 10% late penalty
    grades[3].exercises.pop()  # dave: different values, same file and grader
    assert gb.record(db, grades, "02", now=LATER) == (1, 3)
    assert [r.exercise for r in gb.student_rows(db, "dave")] == ["02.run"]


def test_record_refuses_inconsistent_grades(tmp_path):
    path = tmp_path / "g.sqlite"
    with pytest.raises(UsageError, match="chapter 03, not 02"):
        gb.record(path, chapter03(), "02")
    with pytest.raises(UsageError, match="two grades"):
        gb.record(path, chapter02() + chapter02()[:1], "02")
    with pytest.raises(UsageError, match="not a chapter"):
        gb.record(path, chapter02(), "two")


def test_schema_and_foreign_files(db, tmp_path):
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == gb.SCHEMA_VERSION
    n = con.execute("SELECT count(*) FROM exercise_grades").fetchone()[0]
    con.close()
    assert n == 10  # 2 + 2 + 0 + 2 in chapter 02, 2 + 2 in 03
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    with pytest.raises(CourseError, match="not a dockercourse gradebook"):
        gb.class_table(other)
    with pytest.raises(CourseError, match="not a dockercourse gradebook"):
        gb.record(other, chapter02(), "02")
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words " * 20)
    with pytest.raises(CourseError, match="not a gradebook"):
        gb.class_table(text)
    with pytest.raises(CourseError, match="no gradebook at"):
        gb.class_table(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_two_writers_at_once(tmp_path):
    """Two threads (two connections) record different chapters at the same moment: both land."""
    path, errors = tmp_path / "g.sqlite", []

    def write(grades, chapter):
        try:
            for _ in range(5):
                gb.record(path, grades, chapter)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write, args=a) for a in ((chapter02(), "02"), (chapter03(), "03"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(gb.submissions(path)) == 6


# --------------------------------------------------------------------------- exports


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_csv(db, tmp_path):
    out = tmp_path / "canvas.csv"
    assert gb.export_canvas(db, out, assignment_ids={"2": "12345"}) == 4
    rows = read_rows(out)
    header, pp, students = rows[0], rows[1], rows[2:]
    assert header[:5] == CANVAS_STUDENT_COLUMNS
    assert header[5:] == ["Docker course 02 (12345)", "Docker course 03"]
    assert CANVAS_TITLE_AND_ID.match(header[5]).groups() == ("Docker course 02", "12345")
    assert not CANVAS_TITLE_AND_ID.match(header[6])  # no id: Canvas matches the title
    assert "Points Possible" in pp[0] and pp[1:5] == ["", "", "", ""] and pp[5:] == ["3.00", "4.00"]
    assert all(len(r) == len(header) for r in rows)
    by_login = {r[3]: r for r in students}
    assert by_login["alice"] == ["alice", "", "", "alice", "", "3.00", "3.00"]
    assert by_login["bob"][5:] == ["1.80", "4.00"]  # after the late penalty
    assert by_login["dave"][5:] == ["1.00", ""]  # chapter 03 not submitted
    assert "'=carol" in by_login and by_login["'=carol"][0] == "'=carol"  # no formula


def test_canvas_csv_with_roster(db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "\ufeffStudent,Name,Canvas ID,SIS User ID,SIS Login ID,Section\n"
        'alice,"Liddell, Alice",1001,S-1,alice@uni.example,Monday\n'
        "bob,Bob Builder,,,,Tuesday\n",
        encoding="utf-8",
    )
    out = tmp_path / "canvas.csv"
    gb.export_canvas(db, out, roster=roster, id_column="SIS User ID")
    students = {r[0]: r for r in read_rows(out)[2:]}
    assert students["Liddell, Alice"][:5] == ["Liddell, Alice", "1001", "S-1", "alice@uni.example", "Monday"]
    assert students["Bob Builder"][:5] == ["Bob Builder", "", "bob", "", "Tuesday"]  # no id: ours
    assert students["dave"][:5] == ["dave", "", "dave", "", ""]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,section\nAlice,1\n")
    with pytest.raises(UsageError, match="no 'student' column"):
        gb.export_canvas(db, out, roster=bad)


def test_gradescope_results(db):
    for student, chapter in (
        ("alice", "02"),
        ("bob", "02"),
        ("=carol", "02"),
        ("dave", "02"),
        ("alice", "03"),
    ):
        res = gb.gradescope_results(db, student, chapter)
        assert set(res) <= set(GRADESCOPE_TOP), set(res) - set(GRADESCOPE_TOP)
        for k, v in res.items():
            assert isinstance(v, GRADESCOPE_TOP[k]), (k, v)
        assert (
            res["visibility"] in GRADESCOPE_VISIBILITY and res["stdout_visibility"] in GRADESCOPE_VISIBILITY
        )
        assert res["output_format"] in GRADESCOPE_FORMATS
        for t in res["tests"]:
            assert set(t) <= set(GRADESCOPE_TEST), set(t) - set(GRADESCOPE_TEST)
            for k, v in t.items():
                assert isinstance(v, GRADESCOPE_TEST[k]), (k, v)
            assert 0 <= t["score"] <= t["max_score"]
            assert t["status"] in ("passed", "failed") and t["visibility"] in GRADESCOPE_VISIBILITY
        s = gb.submissions(db, student, chapter)[0]
        assert res["score"] == pytest.approx(sum(t["score"] for t in res["tests"]) * (1 - s.penalty))
        json.dumps(res, allow_nan=False)
    alice = gb.gradescope_results(db, "alice", "02")
    assert alice["score"] == 3.0 == sum(t["score"] for t in alice["tests"])  # no penalty: the sum
    assert [t["number"] for t in alice["tests"]] == ["2.1", "2.2"]
    bob = gb.gradescope_results(db, "bob", "2")
    ps = bob["tests"][1]
    assert (ps["score"], ps["max_score"], ps["status"]) == (1.0, 2.0, "failed")
    assert ps["output"] == "ps is not done yet\nHint: look again"
    assert bob["score"] == 1.8 and "Late by 2 day(s): 10%" in bob["output"]
    carol = gb.gradescope_results(db, "=carol", "02")
    assert carol["tests"] == [] and carol["score"] == 0 and "Not a notebook: bad JSON." in carol["output"]
    with pytest.raises(UsageError, match="no grade for student 'dave' in chapter 03"):
        gb.gradescope_results(db, "dave", "03")


def test_gradescope_files(db, tmp_path):
    paths = gb.export_gradescope(db, tmp_path / "gs", "02")
    assert len(paths) == 4 and all(p.name == "results.json" for p in paths)
    assert json.loads((tmp_path / "gs" / "alice" / "results.json").read_text())["score"] == 3.0
    one = tmp_path / "alice.json"
    assert gb.export_gradescope(db, one, "3", student="alice") == [one]
    assert json.loads(one.read_text())["score"] == 3.0


def test_plain_csv(db, tmp_path):
    out = tmp_path / "grades.csv"
    assert gb.export_csv(db, out) == 4
    rows = read_rows(out)
    assert rows[0] == ["student", "02", "03", "total", "possible", "percent"]
    assert rows[1:] == [
        ["'=carol", "0", "", "0", "7", "0"],
        ["alice", "3", "3", "6", "7", "85.7"],
        ["bob", "1.8", "4", "5.8", "7", "82.9"],
        ["dave", "1", "", "1", "7", "14.3"],
    ]
    assert not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------------- the command


def write_results(folder: Path, grades) -> Path:
    (folder / "results").mkdir(parents=True)
    for g in grades:
        (folder / "results" / f"{g.student}.json").write_text(json.dumps(g.to_dict()))
    return folder


def test_cli_record_show_student(tmp_path, capsys):
    db = tmp_path / "gb.sqlite"
    out02 = write_results(tmp_path / "subs02-grades", chapter02())
    assert dockercourse(["gradebook", "--db", str(db), "record", str(out02)]) == 0
    assert "chapter 02: 4 submissions, 4 written, 0 unchanged" in capsys.readouterr().out
    assert dockercourse(["gradebook", "record", str(out02), "--db", str(db)]) == 0
    assert "0 written, 4 unchanged" in capsys.readouterr().out
    out03 = write_results(tmp_path / "subs03-grades", chapter03())
    assert dockercourse(["gradebook", "--db", str(db), "record", str(out03), "--chapter", "3"]) == 0
    capsys.readouterr()
    assert dockercourse(["gradebook", "--db", str(db), "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["student", "02", "03", "total", "possible", "percent"]
    assert lines[2].split() == ["alice", "3/3", "3/4", "6", "7", "85.7"]
    assert lines[3].split() == ["bob", "1.8/3*", "4/4", "5.8", "7", "82.9"]
    assert lines[4].split() == ["dave", "1/3!", "-", "1", "7", "14.3"]
    assert len({len(line) for line in lines[:5]}) == 1  # aligned: the last column is right-aligned
    assert dockercourse(["gradebook", "--db", str(db), "student", "bob"]) == 0
    out = capsys.readouterr().out
    assert "chapter 02: 1.8/3 points (ok, 2 day(s) late: -10%)" in out and "02.ps   partial  1/2" in out


def test_cli_exports(db, tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,canvas id,sis user id,sis login id,section\nalice,Alice,1001,,,\n")
    canvas = tmp_path / "c.csv"
    args = ["gradebook", "--db", str(db), "export", "canvas", "--out", str(canvas), "--roster", str(roster)]
    assert dockercourse([*args, "--canvas-assignment", "03=777", "--id-column", "sis"]) == 0
    rows = read_rows(canvas)
    assert rows[0][5:] == ["Docker course 02", "Docker course 03 (777)"]
    assert ["Alice", "1001", "", "", ""] in [r[:5] for r in rows] and ["bob", "", "bob", "", ""] in [
        r[:5] for r in rows
    ]
    assert (
        dockercourse(["gradebook", "export", "csv", "--db", str(db), "--out", str(tmp_path / "p.csv")]) == 0
    )
    gs = [
        "gradebook",
        "--db",
        str(db),
        "export",
        "gradescope",
        "--chapter",
        "02",
        "--out",
        str(tmp_path / "gs"),
    ]
    assert dockercourse(gs) == 0
    assert "wrote 4 results.json for chapter 02" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, status, says",
    [
        (["show"], 1, "no gradebook at"),
        (["student", "nobody"], 2, "no student 'nobody' in"),
        (
            ["export", "gradescope", "--chapter", "03", "--student", "dave", "--out", "x.json"],
            2,
            "no grade for",
        ),
        (["export", "canvas", "--out", "c.csv", "--roster", "missing.csv"], 2, "cannot read the roster"),
        (["record", "."], 2, "no results/*.json in"),
    ],
    ids=["no-db", "unknown-student", "no-grade", "no-roster", "no-results"],
)
def test_cli_bad_input_is_one_line(db, tmp_path, monkeypatch, capsys, args, status, says):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    db_args = [] if args == ["show"] else ["--db", str(db)]
    assert dockercourse(["gradebook", *db_args, *args]) == status
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("dockercourse gradebook: ")
    assert says in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["export", "canvas", "--out", "c.csv", "--canvas-assignment", "02=abc"],
        ["export", "gradescope", "--out", "gs", "--chapter", "two"],
        ["export", "csv"],
        [],
    ],
    ids=["bad-assignment", "bad-chapter", "no-out", "no-action"],
)
def test_cli_bad_arguments(db, capsys, args):
    assert dockercourse(["gradebook", "--db", str(db), *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("usage: dockercourse gradebook") and ": error: " in err[1]
