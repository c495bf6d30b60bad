"""The course gradebook: every chapter's grades in one SQLite file, and its exports for an LMS.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):

* ``submissions`` — one row per (student, chapter): the submission's status (``ok``,
  ``timeout``, ...), points before and after the late penalty, points possible, ``late_days``,
  ``penalty`` (share taken away), ``submitted_at``, file name, ``sha256``, ``grader_version``,
  ``seconds``, ``notes`` (JSON list) and ``graded_at`` (UTC ISO 8601: when these values were
  first recorded);
* ``exercises`` — one row per (student, chapter, exercise): points awarded (before the
  penalty), points possible, ``status`` (``passed``, ``partial``, ``not yet``, ``error``), the
  check's message and hint, when it was checked;
* the view ``exercise_grades`` joins them: one flat row per exercise with its submission's
  status, ``graded_at``, ``grader_version``, ``sha256``, ``late_days`` and ``penalty``.

:func:`record` is idempotent: grades recorded again with the same values (file hash, grader
version, points, statuses, messages, late days...) change nothing, not even ``graded_at``;
anything different replaces that student's rows for that chapter. It writes in one
``BEGIN IMMEDIATE`` transaction and waits up to :data:`BUSY_SECONDS` for another writer.

Exports (files written whole or not at all): :func:`export_canvas` (Canvas's gradebook CSV
import), :func:`export_gradescope` (Gradescope autograder ``results.json``), :func:`export_csv`
(a plain table for any other LMS). Readers: :func:`class_table`, :func:`student_rows`,
:func:`submissions`. Standard library only.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from dockercourse.errors import CourseError, UsageError
from dockercourse.grading.report import _csv_safe, num, safe_name, write_atomic, write_rows
from dockercourse.grading.results import STATUS_TEXT, ExerciseGrade, SubmissionGrade

SCHEMA_VERSION = 1
BUSY_SECONDS = 30.0

_SCHEMA = (
    """CREATE TABLE submissions (
        student TEXT NOT NULL, chapter TEXT NOT NULL, status TEXT NOT NULL,
        points REAL NOT NULL, possible REAL NOT NULL, total REAL NOT NULL,
        late_days INTEGER NOT NULL, penalty REAL NOT NULL, submitted_at TEXT NOT NULL,
        file TEXT NOT NULL, sha256 TEXT NOT NULL, grader_version INTEGER NOT NULL,
        notes TEXT NOT NULL, seconds REAL NOT NULL, graded_at TEXT NOT NULL,
        PRIMARY KEY (student, chapter)) WITHOUT ROWID""",
    """CREATE TABLE exercises (
        student TEXT NOT NULL, chapter TEXT NOT NULL, exercise TEXT NOT NULL,
        position INTEGER NOT NULL, title TEXT NOT NULL, points REAL NOT NULL, possible REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('passed', 'partial', 'not yet', 'error')),
        message TEXT NOT NULL, hint TEXT NOT NULL, checked TEXT NOT NULL,
        PRIMARY KEY (student, chapter, exercise),
        FOREIGN KEY (student, chapter) REFERENCES submissions (student, chapter) ON DELETE CASCADE
        ) WITHOUT ROWID""",
    """CREATE VIEW exercise_grades AS
        SELECT e.student, e.chapter, e.exercise, e.position, e.title, e.points, e.possible, e.status,
               s.status AS submission_status, s.graded_at, s.grader_version, s.sha256,
               s.late_days, s.penalty, e.message, e.hint, e.checked
        FROM exercises e JOIN submissions s USING (student, chapter)""",
)
#: Columns compared by :func:`record` (``seconds`` and ``graded_at`` are not grade values).
_SUB = ("student", "chapter", "status", "points", "possible", "total", "late_days", "penalty")
_SUB += ("submitted_at", "file", "sha256", "grader_version", "notes")
_EX = ("student", "chapter", "exercise", "position", "title", "points", "possible", "status")
_EX += ("message", "hint", "checked")


@dataclass
class Submission:
    """One row of ``submissions`` (``total``: after the late penalty)."""

    student: str
    chapter: str
    status: str
    points: float
    possible: float
    total: float
    late_days: int
    penalty: float
    submitted_at: str
    file: str
    sha256: str
    grader_version: int
    notes: str
    seconds: float
    graded_at: str


@dataclass
class ExerciseRow:
    """One row of the ``exercise_grades`` view (``points``: before the late penalty)."""

    student: str
    chapter: str
    exercise: str
    position: int
    title: str
    points: float
    possible: float
    status: str
    submission_status: str
    graded_at: str
    grader_version: int
    sha256: str
    late_days: int
    penalty: float
    message: str
    hint: str
    checked: str


@dataclass
class ClassRow:
    """A student's line of the class table: ``chapters`` holds the chapters they submitted."""

    student: str
    chapters: dict[str, Submission]
    total: float
    possible: float
    percent: float


@dataclass
class ClassTable:
    """Students x chapters. A chapter is worth ``possible[chapter]`` (the most any of its
    submissions could get); a chapter a student did not submit counts 0 of that."""

    chapters: list[str]
    possible: dict[str, float]
    rows: list[ClassRow] = field(default_factory=list)


def chapter_key(text: str) -> str:
    """``"2"``, ``"02"`` or ``"02_core_concepts"`` -> ``"02"`` (a bad one is a UsageError)."""
    m = re.match(r"^\s*(\d{1,2})(?!\d)", str(text))
    if not m:
        raise UsageError(f"not a chapter: {text!r} (expected e.g. '02' or '02_core_concepts')")
    return f"{int(m.group(1)):02d}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the database


def _connect(db_path: Path, *, write: bool) -> sqlite3.Connection:
    """A connection (autocommit; transactions explicit). Reading never creates the file."""
    path = Path(db_path)
    if not write and not path.is_file():
        raise CourseError(f"no gradebook at {path} (dockercourse gradebook record GRADES_DIR makes it)")
    try:
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
        else:
            uri = path.resolve().as_uri() + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=BUSY_SECONDS, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys = ON")
        version = con.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise CourseError(f"{path} is not a gradebook ({e})") from None
    if version > SCHEMA_VERSION:
        con.close()
        raise CourseError(f"{path} was made by a newer dockercourse (gradebook schema {version})")
    if not write and version != SCHEMA_VERSION:
        con.close()
        raise CourseError(f"{path} is not a dockercourse gradebook")
    return con


def _ensure_schema(con: sqlite3.Connection, path: Path) -> None:
    """Inside the write transaction: make the tables of a new (empty) file."""
    if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise CourseError(f"{path} is an SQLite file but not a dockercourse gradebook")
    for stmt in _SCHEMA:
        con.execute(stmt)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _status(e: ExerciseGrade) -> str:
    return "error" if e.error else "passed" if e.passed else "partial" if e.partial else "not yet"


def _rows(g: SubmissionGrade, chapter: str) -> tuple[tuple, list[tuple]]:
    """The ``submissions`` values (the :data:`_SUB` columns) and ``exercises`` rows of a grade.
    An exercise graded twice keeps its best grade (as :meth:`SubmissionGrade.score` does)."""
    best: dict[str, ExerciseGrade] = {}
    for e in g.exercises:
        if e.id not in best or e.score > best[e.id].score:
            best[e.id] = e
    exs = [
        (g.student, chapter, e.id, i, e.title, e.score, e.points, _status(e), e.message, e.hint, e.where)
        for i, e in enumerate(best.values())
    ]
    points = round(sum(e.score for e in best.values()), 4)
    possible = round(sum(e.points for e in best.values()), 4)
    total = round(points * (1.0 - g.penalty), 4)
    sub = (g.student, chapter, g.status, points, possible, total, int(g.late_days), float(g.penalty))
    sub += (g.submitted_at, g.file, g.sha256, int(g.version), json.dumps(g.notes, ensure_ascii=False))
    return sub, exs


def _stored(con: sqlite3.Connection, student: str, chapter: str) -> tuple[tuple, list[tuple]] | None:
    row = con.execute(
        f"SELECT {', '.join(_SUB)} FROM submissions WHERE student = ? AND chapter = ?", (student, chapter)
    ).fetchone()
    if row is None:
        return None
    exs = con.execute(
        f"SELECT {', '.join(_EX)} FROM exercises WHERE student = ? AND chapter = ? ORDER BY position",
        (student, chapter),
    ).fetchall()
    return tuple(row), [tuple(r) for r in exs]


def record(
    db_path: Path, grades: list[SubmissionGrade], chapter: str, now: str | None = None
) -> tuple[int, int]:
    """Record one chapter's grades; returns (submissions whose rows were written, submissions
    already recorded with the same values). Students not in ``grades`` are left as they are.

    ``now`` (UTC ISO 8601, default: the current time) becomes ``graded_at`` of the rows written.
    """
    chapter = chapter_key(chapter)
    seen: set[str] = set()
    for g in grades:
        if g.student in seen:
            raise UsageError(f"two grades for student {g.student!r} in chapter {chapter}")
        seen.add(g.student)
        if g.chapter is not None and chapter_key(g.chapter) != chapter:
            raise UsageError(f"{g.student}'s grade is for chapter {g.chapter}, not {chapter}")
    stamp, changed, unchanged = now or _now(), 0, 0
    with closing(_connect(db_path, write=True)) as con:
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise CourseError(f"{db_path} stayed busy for {BUSY_SECONDS:.0f} s ({e}); try again") from None
        try:
            _ensure_schema(con, db_path)
            for g in grades:
                sub, exs = _rows(g, chapter)
                if _stored(con, g.student, chapter) == (sub, exs):
                    unchanged += 1
                    continue
                con.execute("DELETE FROM submissions WHERE student = ? AND chapter = ?", (g.student, chapter))
                con.execute(
                    f"INSERT INTO submissions ({', '.join(_SUB)}, seconds, graded_at) "
                    f"VALUES ({', '.join('?' * (len(_SUB) + 2))})",
                    (*sub, round(float(g.seconds), 2), stamp),
                )
                con.executemany(f"INSERT INTO exercises VALUES ({', '.join('?' * len(_EX))})", exs)
                changed += 1
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return changed, unchanged


# --------------------------------------------------------------------------- readers


def _select(db_path: Path, cls, sql: str, args: tuple = ()) -> list:
    names = [f.name for f in fields(cls)]
    with closing(_connect(db_path, write=False)) as con:
        return [cls(**{k: r[k] for k in names}) for r in con.execute(sql, args).fetchall()]


def submissions(db_path: Path, student: str | None = None, chapter: str | None = None) -> list[Submission]:
    """The submission rows (of one student, of one chapter), by student then chapter."""
    where = " AND ".join(f"{k} = ?" for k, v in (("student", student), ("chapter", chapter)) if v is not None)
    args = tuple(v for v in (student, chapter and chapter_key(chapter)) if v is not None)
    sql = "SELECT * FROM submissions" + (f" WHERE {where}" if where else "") + " ORDER BY student, chapter"
    return _select(db_path, Submission, sql, args)


def student_rows(db_path: Path, student: str) -> list[ExerciseRow]:
    """A student's exercise rows (``exercise_grades``), by chapter and exercise order; [] if unknown."""
    return _select(
        db_path,
        ExerciseRow,
        "SELECT * FROM exercise_grades WHERE student = ? ORDER BY chapter, position",
        (student,),
    )


def class_table(db_path: Path) -> ClassTable:
    """Students x chapters: each chapter's total (after the late penalty) and the course total."""
    subs = submissions(db_path)
    chapters = sorted({s.chapter for s in subs})
    possible = {c: max(s.possible for s in subs if s.chapter == c) for c in chapters}
    course_possible = round(sum(possible.values()), 4)
    table = ClassTable(chapters, possible)
    for s in subs:
        if not table.rows or table.rows[-1].student != s.student:
            table.rows.append(ClassRow(s.student, {}, 0.0, course_possible, 0.0))
        row = table.rows[-1]
        row.chapters[s.chapter] = s
        row.total = round(row.total + s.total, 4)
        row.percent = round(100.0 * row.total / course_possible, 1) if course_possible else 0.0
    return table


# --------------------------------------------------------------------------- exports


def export_csv(db_path: Path, out: Path) -> int:
    """A plain table for any LMS: ``student``, one column per chapter (points after the late
    penalty; empty: not submitted), ``total``, ``possible``, ``percent``. Returns the students."""
    t = class_table(db_path)
    rows = [["student", *t.chapters, "total", "possible", "percent"]]
    for r in t.rows:
        cells = [num(r.chapters[c].total) if c in r.chapters else "" for c in t.chapters]
        rows.append([_csv_safe(r.student), *cells, num(r.total), num(r.possible), num(r.percent)])
    write_rows(out, rows, lineterminator="\n")
    return len(t.rows)


#: The student columns of Canvas's gradebook export (with SIS ids), in its order.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_TITLE = "Docker course {chapter}"


@dataclass
class RosterEntry:
    """A student of ``--roster``: how Canvas knows them."""

    student: str
    name: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


def read_roster(path: Path) -> dict[str, RosterEntry]:
    """A roster CSV with the columns ``student, name, canvas id, sis user id, sis login id,
    section`` (header names in any case, ``_`` or spaces; only ``student`` is required)."""
    keys = {f.name for f in fields(RosterEntry)}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the roster {path}: {e}") from None
    if not lines:
        raise UsageError(f"the roster {path} is empty")
    header = [re.sub(r"[\s_-]+", "_", h.strip().lower()) for h in lines[0]]
    if "student" not in header:
        raise UsageError(f"the roster {path} has no 'student' column (columns: {', '.join(lines[0])})")
    roster: dict[str, RosterEntry] = {}
    for line in lines[1:]:
        values = {h: v.strip() for h, v in zip(header, line, strict=False) if h in keys}
        if not values.get("student"):
            continue
        if values["student"] in roster:
            raise UsageError(f"student {values['student']!r} is twice in the roster {path}")
        roster[values["student"]] = RosterEntry(**values)
    return roster


def canvas_rows(
    db_path: Path,
    roster: dict[str, RosterEntry] | None = None,
    assignment_ids: dict[str, str] | None = None,
    id_column: str = "SIS Login ID",
    title: str = CANVAS_TITLE,
) -> list[list[str]]:
    """The rows of :func:`export_canvas`'s file (header, Points Possible, one per student)."""
    t = class_table(db_path)
    ids = {chapter_key(k): str(v) for k, v in (assignment_ids or {}).items()}
    heads = [title.format(chapter=c) + (f" ({ids[c]})" if c in ids else "") for c in t.chapters]
    rows = [[*CANVAS_COLUMNS, *heads]]
    rows.append(["    Points Possible", "", "", "", "", *[f"{t.possible[c]:.2f}" for c in t.chapters]])
    for r in t.rows:
        e = (roster or {}).get(r.student) or RosterEntry(r.student)
        person = {"ID": e.canvas_id, "SIS User ID": e.sis_user_id, "SIS Login ID": e.sis_login_id}
        if not any(person.values()):
            person[id_column] = r.student
        who = [e.name or r.student, person["ID"], person["SIS User ID"], person["SIS Login ID"], e.section]
        scores = [f"{r.chapters[c].total:.2f}" if c in r.chapters else "" for c in t.chapters]
        rows.append([*map(_csv_safe, who), *scores])
    return rows


def export_canvas(
    db_path: Path,
    out: Path,
    roster: Path | None = None,
    assignment_ids: dict[str, str] | None = None,
    id_column: str = "SIS Login ID",
) -> int:
    """Canvas's gradebook CSV (Grades > Import): the columns ``Student, ID, SIS User ID, SIS Login
    ID, Section`` then one ``Docker course NN`` column per chapter (``Docker course NN (ID)`` when
    ``assignment_ids`` maps the chapter to its Canvas assignment id); the second row is
    ``Points Possible``, as Canvas exports it; scores are points after the late penalty, with two
    decimals; a chapter a student did not submit is empty. Returns the students written.

    How Canvas finds the student of a row (``GradebookImporter#process_student``): by ``ID``
    (its own user id), else by ``SIS User ID``, else by ``SIS Login ID``, else by the name in
    ``Student``; a row it cannot match is listed as an unknown student on the import page. With
    ``roster`` (:func:`read_roster`) its real values are written; a student without any id in
    the roster (or without a roster) gets the student id in ``id_column`` (``SIS Login ID`` or
    ``SIS User ID``) and as the name, the other ids empty. A column title with an assignment id
    updates that assignment; without one, Canvas matches the title or creates a new assignment.
    """
    if id_column not in ("SIS Login ID", "SIS User ID"):
        raise UsageError(f"id_column is 'SIS Login ID' or 'SIS User ID', not {id_column!r}")
    rows = canvas_rows(db_path, read_roster(roster) if roster else None, assignment_ids, id_column)
    write_rows(out, rows, lineterminator="\n")
    return len(rows) - 2


def gradescope_results(db_path: Path, student: str, chapter: str) -> dict:
    """One submission as Gradescope's autograder ``results.json``: a test per exercise (``score``
    before the penalty, ``max_score``, ``status`` passed/failed, the check's message and hint as
    ``output``); the top-level ``score`` is the total after the late penalty (it overrides the
    tests' sum, which it equals when there is no penalty)."""
    found = submissions(db_path, student, chapter)
    if not found:
        raise UsageError(f"no grade for student {student!r} in chapter {chapter_key(chapter)}")
    s = found[0]
    rows = [r for r in student_rows(db_path, student) if r.chapter == s.chapter]
    lines = [f"Chapter {s.chapter}: {num(s.total)} of {num(s.possible)} points."]
    lines.append(f"Submission status: {s.status} ({STATUS_TEXT.get(s.status, s.status)}).")
    if s.penalty:
        lines.append(
            f"Late by {s.late_days} day(s): {num(round(100 * s.penalty, 2))}% of the points taken off "
            f"({num(s.points)} before the penalty)."
        )
    lines += json.loads(s.notes)
    tests = []
    for i, r in enumerate(rows, 1):
        hint = f"\nHint: {r.hint}" if r.hint and r.status != "passed" else ""
        tests.append(
            {
                "name": f"{r.title} ({r.exercise})" if r.title else r.exercise,
                "number": f"{int(s.chapter)}.{i}",
                "score": r.points,
                "max_score": r.possible,
                "status": "passed" if r.status == "passed" else "failed",
                "output": (r.message + hint).strip(),
                "visibility": "visible",
            }
        )
    return {
        "score": s.total,
        "execution_time": round(s.seconds),
        "output": "\n".join(lines),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"sha256": s.sha256, "grader_version": s.grader_version, "graded_at": s.graded_at},
        "tests": tests,
    }


def export_gradescope(db_path: Path, out: Path, chapter: str, student: str | None = None) -> list[Path]:
    """Gradescope ``results.json`` files of a chapter: ``OUT/<student>/results.json`` for every
    student of the chapter, or, with ``student``, that one submission's file at ``OUT`` itself."""
    chapter = chapter_key(chapter)
    who = [student] if student is not None else [s.student for s in submissions(db_path, chapter=chapter)]
    if not who:
        raise UsageError(f"no grades for chapter {chapter} in {db_path}")
    paths = [Path(out)] if student is not None else [Path(out) / safe_name(w) / "results.json" for w in who]
    for w, path in zip(who, paths, strict=True):
        results = gradescope_results(db_path, w, chapter)
        write_atomic(path, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return paths
