"""What a batch writes for people: ``grades.csv``, ``feedback/<student>.html``, ``results/<student>.json``.

The feedback page is rendered from ``templates/feedback.html.j2`` (its style sheet is
``templates/feedback.css``). Every value from a submission is HTML-escaped on output
(``html.escape`` with quotes), so nothing a notebook prints can add markup to the page.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
from functools import lru_cache
from pathlib import Path

from dockercourse.grading.results import OK, STATUS_TEXT, SubmissionGrade

#: Cell errors listed on a feedback page (the rest are counted).
MAX_CELL_ERRORS_SHOWN = 20


# --------------------------------------------------------------------------- file names


def safe_name(student: str) -> str:
    """A file name for a student id (feedback page, result file)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    if s != student:
        s += "-" + hashlib.sha1(student.encode()).hexdigest()[:6]
    return s[:120]


def result_path(out: Path, student: str) -> Path:
    return Path(out) / "results" / (safe_name(student) + ".json")


def feedback_path(out: Path, student: str) -> Path:
    return Path(out) / "feedback" / (safe_name(student) + ".html")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a killed run leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- one submission


def write_result(out: Path, g: SubmissionGrade) -> None:
    """``results/<student>.json`` (what a resumed run reuses) and ``feedback/<student>.html``."""
    write_atomic(result_path(out, g.student), json.dumps(g.to_dict(), indent=1, ensure_ascii=False))
    write_atomic(feedback_path(out, g.student), feedback_html(g))


def read_result(out: Path, student: str) -> SubmissionGrade | None:
    """The result an earlier run wrote for ``student``, if there is one.

    Raises ``OSError``, ``ValueError`` (bad JSON), ``TypeError``/``KeyError`` (another shape).
    """
    path = result_path(out, student)
    if not path.exists():
        return None
    return SubmissionGrade.from_dict(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _template():
    import jinja2
    from markupsafe import Markup

    def escaped(value):
        # html.escape (quotes as &quot; and &#x27;), not markupsafe's &#34; and &#39;
        return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dockercourse.grading", "templates"),
        autoescape=True,
        finalize=escaped,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("feedback.html.j2")


def feedback_html(g: SubmissionGrade) -> str:
    """A self-contained HTML page with one submission's results (everything escaped)."""
    shown = g.cell_errors[:MAX_CELL_ERRORS_SHOWN]
    return _template().render(
        g=g,
        num=num,
        ok=g.status == OK,
        status_text=STATUS_TEXT.get(g.status, ""),
        cell_errors=shown,
        more_errors=len(g.cell_errors) - len(shown),
    )


# --------------------------------------------------------------------------- the batch


def _csv_safe(text: str) -> str:
    """Keep spreadsheets from reading a student id as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def num(x: float) -> str:
    """A number of points as people write it: ``1``, ``0.5``, ``2.25``."""
    return f"{x:.4f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def write_csv(path: Path, grades: list[SubmissionGrade], exercises: list[str]) -> None:
    """``grades.csv``, sorted by student: student, the points of each exercise, ``total`` (after
    any late penalty), ``possible``, ``percent``, ``late_days``, ``status``."""
    rows = [["student", *exercises, "total", "possible", "percent", "late_days", "status"]]
    for g in sorted(grades, key=lambda g: g.student):
        rows.append(
            [
                _csv_safe(g.student),
                *[num(g.score(e)) for e in exercises],
                num(g.total),
                num(g.possible),
                num(g.percent),
                str(g.late_days),
                g.status,
            ]
        )
    write_rows(path, rows)


def write_rows(path: Path, rows: list[list[str]], lineterminator: str = "\r\n") -> None:
    """A CSV file of ``rows``, written whole or not at all (:func:`write_atomic`)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator).writerows(rows)
    write_atomic(Path(path), buf.getvalue())


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """grades.csv as ``{student: {column: value}}`` (for tests and scripts)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


# --------------------------------------------------------------------------- released feedback


def release_feedback(grades: list[SubmissionGrade], out: Path, dest: Path, chapter: str) -> int:
    """Copy each student's feedback page to ``dest/<student>/chapter-NN-feedback.html`` (one folder per
    student, as an LMS's bulk feedback upload or a shared drive wants them) and write
    ``dest/chapter-NN-feedback.csv`` (student, page, total, possible, percent, status). Pages of other
    chapters already in ``dest`` stay. Returns how many pages were written."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from dockercourse.errors import UsageError

        raise UsageError(f"cannot write the feedback folder {dest}: {e.strerror or e}") from None
    rows = [["student", "page", "total", "possible", "percent", "status"]]
    for g in sorted(grades, key=lambda g: g.student):
        page = Path(safe_name(g.student)) / f"chapter-{chapter}-feedback.html"
        write_atomic(dest / page, feedback_path(out, g.student).read_text(encoding="utf-8"))
        rows.append(
            [_csv_safe(g.student), page.as_posix(), num(g.total), num(g.possible), num(g.percent), g.status]
        )
    write_rows(dest / f"chapter-{chapter}-feedback.csv", rows)
    return len(rows) - 1
