"""Intake of what instructors receive (LMS zips, folders) and the late policy: no engine needed.

Real zip files are built in ``tmp_path`` with entries named the way Canvas and Moodle name
them, holding small real notebooks; every problem the intake meets must be reported, one
line each.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dockercourse.errors import CourseError, UsageError
from dockercourse.grading.intake import classify, prepare
from dockercourse.grading.late import Policy, parse_time
from dockercourse.grading.submission import read_submission

NB = "02_core_concepts.ipynb"
T0 = (2025, 3, 1, 10, 0, 0)


def notebook(tag: str) -> bytes:
    nb = new_notebook(cells=[new_code_cell(f"print({tag!r})")])
    nb.metadata["dockercourse"] = {"chapter": "02"}
    return nbformat.writes(nb).encode()


def make_zip(path: Path, entries: list[tuple]) -> Path:
    """``entries``: ``(name, bytes)`` or ``(name, bytes, date_time)`` or a ready ``(ZipInfo, bytes)``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, *when in entries:
            info = (
                name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, when[0] if when else T0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def tag_of(path: Path) -> str:
    nb, why = read_submission(path)
    assert nb is not None, why
    return nb.cells[0].source


def problems_about(intake, text: str) -> list[str]:
    return [p for p in intake.problems if text in p]


def one_line_each(intake) -> None:
    assert all(p and "\n" not in p for p in intake.problems), intake.problems


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, T0)
    info.create_system = 3  # unix: external_attr holds the mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# --------------------------------------------------------------------------- Canvas


@pytest.fixture
def canvas_zip(tmp_path):
    return make_zip(
        tmp_path / "submissions.zip",
        [
            (f"doejane_12345_67890_{NB}", notebook("jane first"), (2025, 3, 1, 12, 0, 0)),
            # given again: Canvas adds -1 to the name; the entry time is even older, the suffix wins
            (f"doejane_12345_67891_{NB[:-6]}-1.ipynb", notebook("jane again"), (2025, 3, 1, 9, 0, 0)),
            (f"smithbob_LATE_23456_67900_{NB}", notebook("bob"), (2025, 3, 3, 8, 30, 0)),
            ("leeann_34567_67910_notes.txt", b"I could not finish, sorry", T0),
            (f"LATE_anon_Xy7Qz_67920_{NB}", notebook("anonymous"), T0),
            (f"__MACOSX/._doejane_12345_67890_{NB}", b"\x00\x05\x16\x07", T0),
            ("../evil.ipynb", notebook("evil"), T0),
            ("/etc/cron.d/evil.ipynb", notebook("absolute"), T0),
            (symlink_entry("link_45678_67930_x.ipynb"), b"/etc/passwd"),
        ],
    )


@pytest.mark.unit
def test_canvas_zip_is_staged_by_user_id(canvas_zip, tmp_path):
    intake = prepare(canvas_zip, tmp_path / "staging")
    staged = sorted(p.name for p in (tmp_path / "staging").iterdir())
    assert staged == ["12345.ipynb", "23456.ipynb", "34567.ipynb", "anon_Xy7Qz.ipynb"]
    assert sorted(p.name for p in intake.files) == staged
    by = {e.student: e for e in intake.entries}
    assert {e.lms for e in intake.entries} == {"canvas"}
    assert tag_of(by["12345"].file) == "print('jane again')"
    assert by["12345"].original == f"doejane_12345_67891_{NB[:-6]}-1.ipynb"
    assert by["12345"].submitted_at == "2025-03-01T09:00:00Z"
    assert by["23456"].late_flag and not by["12345"].late_flag and by["anon_Xy7Qz"].late_flag
    assert by["23456"].submitted_at == "2025-03-03T08:30:00Z"
    assert intake.entry(tmp_path / "staging" / "23456.ipynb") is by["23456"]
    assert (tmp_path / "staging" / "34567.ipynb").read_bytes() == b"I could not finish, sorry"


@pytest.mark.unit
def test_canvas_zip_reports_every_problem(canvas_zip, tmp_path):
    intake = prepare(canvas_zip, tmp_path / "staging")
    one_line_each(intake)
    [dup] = problems_about(intake, "student 12345 has 2 files")
    assert f"kept doejane_12345_67891_{NB[:-6]}-1.ipynb" in dup and f"dropped doejane_12345_67890_{NB}" in dup
    [txt] = problems_about(intake, "leeann_34567_67910_notes.txt")
    assert "not a .ipynb file" in txt and "34567" in txt
    assert "leaves the folder" in problems_about(intake, "../evil.ipynb")[0]
    assert "absolute path" in problems_about(intake, "/etc/cron.d/evil.ipynb")[0]
    assert "symbolic link" in problems_about(intake, "link_45678_67930_x.ipynb")[0]
    assert problems_about(intake, "ignored 1 hidden or macOS metadata")
    assert len(intake.problems) == 6, intake.problems
    assert not (tmp_path / "evil.ipynb").exists() and not (tmp_path / "staging" / "evil.ipynb").exists()


# --------------------------------------------------------------------------- Moodle


@pytest.mark.unit
def test_moodle_zip_flat_and_folders(tmp_path):
    z = make_zip(
        tmp_path / "moodle.zip",
        [
            (f"Jane Doe_101_assignsubmission_file_{NB}", notebook("jane"), (2025, 3, 1, 23, 0, 0)),
            (f"Bob Smith_102_assignsubmission_file_/{NB}", notebook("bob")),
            ("Bob Smith_102_assignsubmission_onlinetext_/onlinetext.html", b"<p>see the file</p>"),
            # blind marking, a sub-folder the student made, and the whole export in a folder
            (f"course-lab2/Participant_103_assignsubmission_file_/work/{NB}", notebook("anon")),
        ],
    )
    intake = prepare(z, tmp_path / "staging")
    by = {e.student: e for e in intake.entries}
    assert sorted(by) == ["101", "102", "103"] and {e.lms for e in intake.entries} == {"moodle"}
    assert [tag_of(by[s].file) for s in ("101", "102", "103")] == [
        "print('jane')",
        "print('bob')",
        "print('anon')",
    ]
    assert by["101"].submitted_at == "2025-03-01T23:00:00Z"
    assert by["103"].original == f"course-lab2/Participant_103_assignsubmission_file_/work/{NB}"
    one_line_each(intake)
    [online] = intake.problems
    assert "onlinetext.html" in online and "not a file submission" in online


@pytest.mark.unit
@pytest.mark.parametrize(
    "name, expected",
    [
        (f"doejane_12345_67890_{NB}", ("canvas", "12345", NB, False, 67890, "")),
        (f"doejane_LATE_12345_67890_{NB}", ("canvas", "12345", NB, True, 67890, "")),
        ("o_neillmary_777_888_lab-2.ipynb", ("canvas", "777", "lab-2.ipynb", False, 888, "")),
        (f"anon_AbC12_67890_{NB}", ("canvas", "anon_AbC12", NB, False, 67890, "")),
        (f"Jane Doe_101_assignsubmission_file_{NB}", ("moodle", "101", NB, False, 0, "")),
        (f"Jane Doe_101_assignsubmission_file_/{NB}", ("moodle", "101", NB, False, 0, "")),
        (f"Team A-Jane Doe_101_assignsubmission_file_/{NB}", ("moodle", "101", NB, False, 0, "")),
        (
            "doejane_LATE_12345_text.html",
            ("canvas", "12345", "doejane_LATE_12345_text.html", True, 0, "Canvas online text entry"),
        ),
        (
            "Jane Doe_101_assignsubmission_onlinetext_/onlinetext.html",
            ("moodle", "101", "onlinetext.html", False, 0, "assignsubmission_onlinetext"),
        ),
        ("s1234567.ipynb", ("plain", "s1234567", "s1234567.ipynb", False, 0, "")),
        ("alice_lab_2.ipynb", ("plain", "alice_lab_2", "alice_lab_2.ipynb", False, 0, "")),
    ],
)
def test_file_name_layouts(name, expected):
    assert classify(name) == expected


# --------------------------------------------------------------------------- plain folders


@pytest.mark.unit
def test_plain_folder_is_copied_never_modified(tmp_path):
    src = tmp_path / "subs"
    src.mkdir()
    (src / "alice.ipynb").write_bytes(notebook("alice"))
    (src / "alice.txt").write_text("notes")
    (src / "bob.ipynb").write_bytes(notebook("bob"))
    (src / ".DS_Store").write_bytes(b"\x00")
    (src / "bob.ipynb~").write_bytes(b"backup")
    os.symlink("/etc/passwd", src / "carol.ipynb")
    mtime = datetime(2025, 3, 2, 7, 15, 0, tzinfo=UTC).timestamp()
    os.utime(src / "bob.ipynb", (mtime, mtime))
    before = sorted(p.name for p in src.iterdir())
    intake = prepare(src, tmp_path / "staging")
    assert sorted(p.name for p in src.iterdir()) == before
    by = {e.student: e for e in intake.entries}
    assert sorted(by) == ["alice", "bob"] and {e.lms for e in intake.entries} == {"plain"}
    assert tag_of(by["alice"].file) == "print('alice')"  # the notebook, not the newer text file
    assert by["bob"].submitted_at == "2025-03-02T07:15:00Z"
    one_line_each(intake)
    assert "kept alice.ipynb, dropped alice.txt" in problems_about(intake, "student alice has 2 files")[0]
    assert problems_about(intake, "carol.ipynb: a symbolic link")
    assert problems_about(intake, "ignored 2 hidden files or editor backups")
    assert len(intake.problems) == 3, intake.problems


@pytest.mark.unit
def test_staging_must_be_empty_and_outside_the_source(tmp_path):
    src = tmp_path / "subs"
    src.mkdir()
    (src / "a.ipynb").write_bytes(notebook("a"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(UsageError, match="must be empty"):
        prepare(src, full)
    with pytest.raises(UsageError, match="inside the submissions folder"):
        prepare(src, src / "staging")
    with pytest.raises(UsageError, match="no such file"):
        prepare(tmp_path / "missing.zip", tmp_path / "s1")


# --------------------------------------------------------------------------- broken and hostile zips


@pytest.mark.unit
def test_broken_zip_is_one_clear_error(tmp_path):
    bad = tmp_path / "export.zip"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CourseError) as e:
        prepare(bad, tmp_path / "staging")
    assert "export.zip is not a readable zip file" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.unit
def test_corrupt_entry_is_reported_and_others_staged(tmp_path):
    z = make_zip(
        tmp_path / "s.zip", [("alice.ipynb", notebook("alice") * 20), ("bob.ipynb", notebook("bob"))]
    )
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("alice.ipynb")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 10 : start + 20] = b"\xff" * 10  # inside alice's compressed bytes
    z.write_bytes(bytes(data))
    intake = prepare(z, tmp_path / "staging")
    assert [e.student for e in intake.entries] == ["bob"]
    one_line_each(intake)
    assert "alice.ipynb: unreadable" in intake.problems[0]
    assert problems_about(intake, "student alice: none of their files could be read")
    assert not (tmp_path / "staging" / "alice.ipynb").exists()


@pytest.mark.unit
def test_too_large_entries_and_zip_bombs(tmp_path):
    z = make_zip(
        tmp_path / "s.zip",
        [("big_1_2_huge.ipynb", b"{" + b" " * 5000 + b"}"), ("small_3_4_nb.ipynb", notebook("small"))],
    )
    intake = prepare(z, tmp_path / "st1", max_bytes=1000)
    assert [e.student for e in intake.entries] == ["3"]
    one_line_each(intake)
    [big] = intake.problems
    assert "big_1_2_huge.ipynb" in big and "more than the 1000 bytes" in big and "student 1" in big
    with pytest.raises(CourseError, match="unpacks to .* more than 2000 bytes"):
        prepare(z, tmp_path / "st2", max_total_bytes=2000)
    with pytest.raises(CourseError, match="holds 2 entries, more than 1"):
        prepare(z, tmp_path / "st3", max_files=1)


@pytest.mark.unit
def test_zip_entry_time_prefers_the_extended_utc_timestamp(tmp_path):
    info = zipfile.ZipInfo("alice.ipynb", (2025, 3, 1, 23, 0, 0))  # local time of whoever zipped it
    stamp = int(datetime(2025, 3, 1, 22, 0, 0, tzinfo=UTC).timestamp())
    info.extra = struct.pack("<HHBi", 0x5455, 5, 1, stamp)
    intake = prepare(make_zip(tmp_path / "s.zip", [(info, notebook("a"))]), tmp_path / "staging")
    assert intake.entries[0].submitted_at == "2025-03-01T22:00:00Z"


# --------------------------------------------------------------------------- the mapping


@pytest.mark.unit
def test_mapping_renames_and_reports_both_ways(canvas_zip, tmp_path):
    csv = tmp_path / "map.csv"
    csv.write_text(
        "lms_id,student,submitted_at\n"
        "12345,u001,2025-03-02T10:00:00+01:00\n"
        "34567,u003,\n"
        "anon_Xy7Qz,u004,\n"
        "99999,u999,\n"
    )
    intake = prepare(canvas_zip, tmp_path / "staging", mapping=csv)
    by = {e.student: e for e in intake.entries}
    assert sorted(by) == ["23456", "u001", "u003", "u004"]
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [
        "23456.ipynb",
        "u001.ipynb",
        "u003.ipynb",
        "u004.ipynb",
    ]
    assert by["u001"].lms_id == "12345" and by["u001"].submitted_at == "2025-03-02T09:00:00Z"  # the CSV wins
    assert by["u003"].submitted_at == "2025-03-01T10:00:00Z"  # no time in the CSV: the zip's
    one_line_each(intake)
    [unmatched] = problems_about(intake, "matches no submission")
    assert unmatched.startswith("mapping line 5: lms_id 99999 (u999)")
    [missed] = problems_about(intake, "not in the mapping")
    assert "smithbob_LATE_23456" in missed and "graded as student 23456" in missed
    assert problems_about(intake, "student u001 has 2 files")


@pytest.mark.unit
def test_mapping_accepts_moodle_participant_and_semicolons(tmp_path):
    z = make_zip(tmp_path / "m.zip", [(f"Jane Doe_101_assignsubmission_file_{NB}", notebook("jane"))])
    csv = tmp_path / "map.csv"
    csv.write_text("\ufeffLMS_ID;Student;email\nParticipant 101;jdoe;jane@example.org\n")
    intake = prepare(z, tmp_path / "staging", mapping=csv)
    assert [(e.student, e.lms_id) for e in intake.entries] == [("jdoe", "101")]
    assert intake.problems == []


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, message",
    [
        ("12345,u001\n", "first line must be the header lms_id,student"),
        ("lms_id,student\n12345,\n", "map.csv:2: a line needs both"),
        ("lms_id,student,submitted_at\n12345,u1,yesterday\n", "map.csv:2: submitted_at 'yesterday'"),
        ("lms_id,student\n1,u1\n1,u2\n", "lms_id 1 is on line 2 already"),
    ],
)
def test_bad_mapping_is_a_usage_error(tmp_path, text, message):
    z = make_zip(tmp_path / "s.zip", [("alice.ipynb", notebook("a"))])
    (tmp_path / "map.csv").write_text(text)
    with pytest.raises(UsageError, match=message):
        prepare(z, tmp_path / "staging", mapping=tmp_path / "map.csv")


# --------------------------------------------------------------------------- the late policy

DEADLINE = "2025-03-01T23:59:00+01:00"  # 22:59 UTC


@pytest.mark.unit
def test_late_policy_none_records_days_only():
    p = Policy.parse("none")
    assert p.apply("2025-03-01T22:59:00Z", DEADLINE) == (0, 0.0)
    assert p.apply("2025-03-03T10:00:00Z", DEADLINE) == (2, 0.0)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["10%/day", "10%", "10 % per day", " 10%/DAY "])
def test_late_policy_per_day_started(text):
    p = Policy.parse(text)
    assert p.apply("2025-03-01T22:59:00Z", DEADLINE) == (0, 0.0)  # on the minute: on time
    assert p.apply("2025-03-01T22:59:01Z", DEADLINE) == (1, 0.1)  # a day started
    assert p.apply("2025-03-02T22:59:00Z", DEADLINE) == (1, 0.1)
    assert p.apply("2025-03-02T22:59:01Z", DEADLINE) == (2, 0.2)
    assert p.apply("2025-03-04T00:00:00Z", DEADLINE) == (3, 0.3)
    assert p.apply("2025-03-20T00:00:00Z", DEADLINE) == (19, 1.0)  # capped


@pytest.mark.unit
def test_late_policy_zero():
    p = Policy.parse("zero")
    assert p.apply("2025-03-01T12:00:00Z", DEADLINE) == (0, 0.0)
    assert p.apply("2025-03-01T23:00:00Z", DEADLINE) == (1, 1.0)


@pytest.mark.unit
def test_late_policy_grace_and_zones():
    p = Policy.parse("25%/day", grace_minutes=15)
    assert p.apply("2025-03-01T23:10:00Z", DEADLINE) == (0, 0.0)  # 11 minutes: within the grace
    assert p.apply("2025-03-01T23:20:00Z", DEADLINE) == (1, 0.25)
    assert p.apply("2025-03-02T23:10:00Z", DEADLINE) == (1, 0.25)  # days count from deadline + grace
    # no zone = UTC, for the deadline and the submission alike
    assert Policy.parse("10%").apply("2025-03-01T23:00", "2025-03-01T22:59") == (1, 0.1)
    assert parse_time("2025-03-01T23:59+01:00") == datetime(2025, 3, 1, 22, 59, tzinfo=UTC)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", "late", "10", "-5%/day", "150%/day", "10%/week", "half"])
def test_late_policy_bad_text(text):
    with pytest.raises(UsageError) as e:
        Policy.parse(text)
    msg = str(e.value)
    assert "none, zero, or a percentage per day started such as 10%/day" in msg and "\n" not in msg


@pytest.mark.unit
def test_deadline_must_be_a_time():
    with pytest.raises(UsageError, match="no time of day"):
        Policy.parse("10%").apply("2025-03-02T10:00:00Z", "2025-03-01")
    with pytest.raises(UsageError, match="deadline 'friday' is not a date and time"):
        Policy.parse("10%").apply("2025-03-02T10:00:00Z", "friday")
    with pytest.raises(UsageError, match="grace period"):
        Policy.parse("10%", grace_minutes=-1)


@pytest.mark.unit
def test_staged_notebooks_are_byte_identical(canvas_zip, tmp_path):
    intake = prepare(canvas_zip, tmp_path / "staging")
    with zipfile.ZipFile(canvas_zip) as zf:
        for e in intake.entries:
            assert e.file.read_bytes() == zf.read(e.original)
    assert json.loads((tmp_path / "staging" / "23456.ipynb").read_text())["metadata"]["dockercourse"]
