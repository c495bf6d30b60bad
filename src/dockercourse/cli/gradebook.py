"""``dockercourse gradebook``: the course's grades across chapters, in one SQLite file.

    dockercourse gradebook [--db PATH] record GRADES_DIR [--chapter N]
    dockercourse gradebook [--db PATH] show
    dockercourse gradebook [--db PATH] student ID
    dockercourse gradebook [--db PATH] export canvas --out FILE [--roster CSV]
                                      [--canvas-assignment 02=12345 ...] [--id-column login|sis]
    dockercourse gradebook [--db PATH] export gradescope --out PATH --chapter N [--student ID]
    dockercourse gradebook [--db PATH] export csv --out FILE

``--db`` (default ``./gradebook.sqlite``) may also follow the action. The work is
:mod:`dockercourse.grading.gradebook`; see docs/grading.md. Nothing here talks to an engine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dockercourse.errors import UsageError

DEFAULT_DB = "gradebook.sqlite"


def _chapter(text: str) -> str:
    from dockercourse.grading.gradebook import chapter_key

    try:
        return chapter_key(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _assignment(text: str) -> tuple[str, str]:
    chapter, _, aid = text.partition("=")
    if not aid.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"expected CHAPTER=CANVAS_ASSIGNMENT_ID (e.g. 02=12345), not {text!r}"
        )
    return _chapter(chapter), aid.strip()


def _db(p, top: bool) -> None:
    # on the leaves, only when given: a value before the action is not overwritten
    default = Path(DEFAULT_DB) if top else argparse.SUPPRESS
    p.add_argument("--db", type=Path, default=default, help=f"the gradebook file (default ./{DEFAULT_DB})")


def register(sub) -> None:
    p = sub.add_parser(
        "gradebook",
        help="the course's grades across chapters (SQLite): record, show, export to an LMS",
        description="The course gradebook: every chapter's grades in one SQLite file. `record` adds "
        "the results of a `dockercourse grade` run (idempotent); `show` and `student` print "
        "them; `export` writes Canvas's gradebook CSV, Gradescope results.json files or a "
        "plain CSV. See docs/grading.md.",
    )
    _db(p, top=True)
    acts = p.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    rec = acts.add_parser(
        "record",
        help="record the results of a grade run (idempotent)",
        description="Record GRADES_DIR/results/*.json (the --out folder of `dockercourse grade`): "
        "a student's rows for the chapter are replaced when anything changed (new file, "
        "grader version or grade) and left alone, timestamp included, when nothing did.",
    )
    rec.add_argument("grades", type=Path, metavar="GRADES_DIR", help="the --out folder of dockercourse grade")
    rec.add_argument("--chapter", type=_chapter, default=None, help="chapter (default: from the results)")
    _db(rec, top=False)
    rec.set_defaults(run=run_record)
    show = acts.add_parser("show", help="the class table", description="Students x chapters, and totals.")
    _db(show, top=False)
    show.set_defaults(run=run_show)
    st = acts.add_parser(
        "student", help="one student's exercises", description="One student's grades, exercise by exercise."
    )
    st.add_argument("student", metavar="ID", help="the student id (a submission's file name stem)")
    _db(st, top=False)
    st.set_defaults(run=run_student)
    _register_export(acts)


def _register_export(acts) -> None:
    ex = acts.add_parser(
        "export",
        help="write the grades for an LMS: canvas, gradescope or csv",
        description="Write the grades for a learning platform (files are written whole or not at all).",
    )
    fmts = ex.add_subparsers(title="formats", dest="format", metavar="FORMAT", required=True)
    canvas = fmts.add_parser(
        "canvas",
        help="Canvas gradebook import CSV",
        description="Canvas's gradebook CSV (Grades > Import): Student, ID, SIS User ID, SIS Login ID, "
        "Section, one column per chapter, and the Points Possible row.",
    )
    canvas.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    canvas.add_argument(
        "--roster",
        type=Path,
        help="CSV with columns student, name, canvas id, sis user id, sis login id, section",
    )
    canvas.add_argument(
        "--canvas-assignment",
        type=_assignment,
        action="append",
        default=[],
        metavar="NN=ID",
        help="the Canvas assignment id of a chapter's column (repeatable), e.g. 02=12345",
    )
    canvas.add_argument(
        "--id-column",
        choices=("login", "sis"),
        default="login",
        help="where a student id without a roster entry goes: SIS Login ID (default) or SIS User ID",
    )
    gs = fmts.add_parser(
        "gradescope",
        help="Gradescope autograder results.json files",
        description="Gradescope's autograder results.json: OUT/<student>/results.json for each student "
        "of the chapter, or with --student, that one file at OUT.",
    )
    gs.add_argument("--out", type=Path, required=True, help="folder (or, with --student, the file) to write")
    gs.add_argument("--chapter", type=_chapter, required=True, help="the chapter")
    gs.add_argument("--student", default=None, metavar="ID", help="only this student")
    plain = fmts.add_parser(
        "csv",
        help="plain CSV for any other LMS",
        description="student, one column per chapter (points), total, possible, percent.",
    )
    plain.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    for leaf, run in ((canvas, run_canvas), (gs, run_gradescope), (plain, run_csv)):
        _db(leaf, top=False)
        leaf.set_defaults(run=run)


# --------------------------------------------------------------------------- run


def load_results(folder: Path) -> list:
    """The grades ``dockercourse grade`` wrote: ``FOLDER/results/*.json`` (or ``FOLDER/*.json``)."""
    import json

    from dockercourse.errors import CourseError
    from dockercourse.grading.results import SubmissionGrade

    results = folder / "results" if (folder / "results").is_dir() else folder
    files = sorted(results.glob("*.json")) if results.is_dir() else []
    if not files:
        raise UsageError(f"no results/*.json in {folder} (the --out folder of dockercourse grade)")
    grades = []
    for p in files:
        try:
            grades.append(SubmissionGrade.from_dict(json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise CourseError(f"{p} is not a grade result: {e}") from None
    return grades


def run_record(args) -> int:
    from dockercourse.grading.gradebook import chapter_key, record

    grades = load_results(args.grades)
    chapter = args.chapter
    if chapter is None:
        found = {chapter_key(g.chapter) for g in grades if g.chapter}
        if len(found) != 1:
            what = ", ".join(sorted(found)) or "none"
            raise UsageError(f"the results do not name one chapter ({what}): give --chapter")
        chapter = found.pop()
    changed, unchanged = record(args.db, grades, chapter)
    print(
        f"chapter {chapter}: {len(grades)} submissions, {changed} written, {unchanged} unchanged ({args.db})"
    )
    return 0


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def run_show(args) -> int:
    from dockercourse.grading.gradebook import class_table
    from dockercourse.grading.report import num

    t = class_table(args.db)
    if not t.rows:
        print(f"{args.db}: no grades yet")
        return 0
    rows = [["student", *t.chapters, "total", "possible", "percent"]]
    marks = set()
    for r in t.rows:
        cells = []
        for c in t.chapters:
            s = r.chapters.get(c)
            mark = "" if s is None else ("*" if s.penalty else "") + ("!" if s.status != "ok" else "")
            marks.update(mark)
            cells.append("-" if s is None else f"{num(s.total)}/{num(t.possible[c])}{mark}")
        rows.append([r.student, *cells, num(r.total), num(r.possible), f"{r.percent:.1f}"])
    print(_table(rows, right=set(range(1, len(rows[0])))))
    legend = {"*": "* late (penalty applied)", "!": "! not run to its end (see `student ID`)"}
    notes = [legend[m] for m in sorted(marks)] + ["- not submitted"]
    print(f"\n{len(t.rows)} students, {len(t.chapters)} chapters; " + "; ".join(notes))
    return 0


def run_student(args) -> int:
    from dockercourse.grading.gradebook import student_rows, submissions
    from dockercourse.grading.report import num

    subs = submissions(args.db, student=args.student)
    if not subs:
        raise UsageError(f"no student {args.student!r} in {args.db}")
    rows = student_rows(args.db, args.student)
    for s in subs:
        late = f", {s.late_days} day(s) late: -{num(round(100 * s.penalty, 2))}%" if s.late_days else ""
        print(
            f"chapter {s.chapter}: {num(s.total)}/{num(s.possible)} points ({s.status}{late}); "
            f"graded {s.graded_at}, grader {s.grader_version}, sha256 {s.sha256[:12]}"
        )
        table = [
            [f"  {r.exercise}", r.status, f"{num(r.points)}/{num(r.possible)}", r.message]
            for r in rows
            if r.chapter == s.chapter
        ]
        if table:
            print(_table(table, right={2}))
    return 0


def run_canvas(args) -> int:
    from dockercourse.grading.gradebook import export_canvas

    column = {"login": "SIS Login ID", "sis": "SIS User ID"}[args.id_column]
    n = export_canvas(args.db, args.out, args.roster, dict(args.canvas_assignment), column)
    print(f"wrote {args.out}: {n} students (Canvas: Grades > Import)")
    return 0


def run_gradescope(args) -> int:
    from dockercourse.grading.gradebook import export_gradescope

    paths = export_gradescope(args.db, args.out, args.chapter, args.student)
    where = args.out if args.student else f"{args.out}/<student>/results.json"
    print(f"wrote {len(paths)} results.json for chapter {args.chapter}: {where}")
    return 0


def run_csv(args) -> int:
    from dockercourse.grading.gradebook import export_csv

    n = export_csv(args.db, args.out)
    print(f"wrote {args.out}: {n} students")
    return 0
