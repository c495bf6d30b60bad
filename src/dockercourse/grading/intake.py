"""Intake: what an instructor received (a folder, or the zip an LMS exports) as one notebook per student.

:func:`prepare` copies every submission into an empty *staging* folder as
``<student id>.ipynb`` (the id made a safe file name by :func:`report.safe_name`), which
``dockercourse grade`` then grades like any folder. The source is never modified. It
recognises, by file name (the path inside the zip or the folder may have more folders):

* **Canvas** ("Download Submissions"): ``<name>_[LATE_]<user id>_<file id>_<file name>``, e.g.
  ``doejane_12345_67890_02_core_concepts.ipynb``; anonymous grading gives ``anon_<id>`` instead
  of ``<name>_<user id>``. The id is the Canvas user id; ``LATE`` sets :attr:`Entry.late_flag`.
* **Moodle** ("Download all submissions"): ``<Full Name>_<participant id>_assignsubmission_file_<file
  name>``, or the folder ``<Full Name>_<participant id>_assignsubmission_file_/`` holding the file.
  The id is the participant id (a number Moodle gives per assignment).
* **anything else** ("plain"): the file's stem, as for a folder of ``<student id>.ipynb``.

A mapping CSV (header required; columns ``lms_id``, ``student``, optional ``submitted_at``)
turns LMS ids into the course's own. Every problem is one line of :attr:`Intake.problems`:
unsafe, unreadable or too large entries (skipped), several files of one student (one kept),
files not named ``.ipynb`` (staged all the same: the grader marks them "not a notebook"),
mapping lines that match no file and files the mapping misses.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dockercourse.errors import CourseError, UsageError
from dockercourse.grading.late import iso_utc, parse_time
from dockercourse.grading.report import safe_name
from dockercourse.grading.submission import MAX_BYTES

#: Most bytes a source may unpack to in all, and most entries it may hold (zip bombs).
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_FILES = 10_000

CANVAS = re.compile(
    r"^(?:(?P<name>\w*?)_)??(?P<late>LATE_)?(?P<id>\d+|anon_[A-Za-z0-9]+)_(?P<file_id>\d+)_(?P<orig>.+)$"
)
#: Canvas's own pages for online text and website URL submissions: ``<name>_[LATE_]<user id>_text.html``.
CANVAS_ONLINE = re.compile(
    r"^(?:(?P<name>\w*?)_)??(?P<late>LATE_)?(?P<id>\d+|anon_[A-Za-z0-9]+)_(?P<kind>text|link)\.html$"
)
MOODLE = re.compile(r"^(?P<name>[^_/]*)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)_(?P<orig>.*)$")
_SUFFIX = re.compile(r"^(?P<base>.+?)-(?P<n>\d+)(?P<ext>\.[^.]*)?$")
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
_CHUNK = 1 << 20
_ID_WORDS = {"canvas": "Canvas user id", "moodle": "Moodle participant id", "plain": "file-name id"}


@dataclass
class Entry:
    """One staged submission."""

    student: str  # the student id (the mapping's, else the LMS id, else the file stem)
    file: Path  # the staged copy, ``<staging>/<safe_name(student)>.ipynb``
    original: str  # its path inside the zip or the source folder
    submitted_at: str  # ISO 8601 UTC: the mapping's submitted_at, else the zip entry time or file mtime
    lms: str  # "canvas", "moodle" or "plain"
    late_flag: bool = False  # Canvas named it LATE
    lms_id: str = ""  # the id the file name gave (Canvas user id, Moodle participant id, stem)
    time_from: str = ""  # where submitted_at came from: "mapping", "archive" (the zip entry) or "file"


@dataclass
class Intake:
    """What :func:`prepare` staged, and every problem it met (one line each)."""

    folder: Path
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    kind: str = ""  # what the source was: "archive" (a zip) or "file" (a folder)

    @property
    def files(self) -> list[Path]:
        return sorted(e.file for e in self.entries)

    def entry(self, staged: Path) -> Entry | None:
        """The entry of a staged file."""
        return next((e for e in self.entries if e.file == Path(staged)), None)


@dataclass
class _Item:
    """A file found in the source, before it is staged."""

    rel: str  # path inside the source, '/'-separated
    size: int
    time: datetime | None
    open: Callable[[], BinaryIO]
    lms: str = "plain"
    lms_id: str = ""
    name: str = ""  # the file name the student gave
    late: bool = False
    file_id: int = 0
    student: str = ""
    when: str = ""  # the mapping's submitted_at

    @property
    def notebook(self) -> bool:
        return self.name.lower().endswith(".ipynb")


@dataclass
class _Row:
    line: int
    student: str
    submitted_at: str = ""


class _Limits:
    def __init__(self, max_bytes: int, max_total: int, max_files: int):
        self.max_bytes, self.max_total, self.max_files = max_bytes, max_total, max_files
        self.written = 0


def prepare(
    source: Path,
    staging: Path,
    *,
    mapping: Path | None = None,
    max_bytes: int = MAX_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
) -> Intake:
    """Stage the submissions of ``source`` (a folder or a ``.zip``) into the empty folder ``staging``.

    ``mapping`` is a CSV of ``lms_id,student[,submitted_at]`` (see the module docstring).
    Raises UsageError for a bad source, staging folder or mapping, CourseError for an
    unreadable zip or one over the limits (``max_total_bytes`` unpacked, ``max_files``
    entries); every other problem is reported in :attr:`Intake.problems` instead.
    """
    source, staging = Path(source), Path(staging)
    _check_staging(source, staging)
    rows = read_mapping(Path(mapping)) if mapping is not None else None
    limits = _Limits(max_bytes, max_total_bytes, max_files)
    intake = Intake(staging)
    if source.is_dir():
        intake.kind = "file"
        _stage(_folder_items(source, limits, intake.problems), rows, limits, intake)
    elif source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)):
        try:
            zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CourseError(f"{source.name} is not a readable zip file ({_one_line(e)})") from None
        with zf:
            intake.kind = "archive"
            _stage(_zip_items(zf, limits, intake.problems), rows, limits, intake)
    else:
        raise UsageError(f"{source}: give a folder of submissions or the .zip file an LMS exported")
    if not intake.entries:
        intake.problems.append(f"no submission found in {source.name}")
    return intake


# --------------------------------------------------------------------------- the source


def _check_staging(source: Path, staging: Path) -> None:
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    if staging.exists() and (not staging.is_dir() or any(staging.iterdir())):
        raise UsageError(f"{staging}: the staging folder must be empty (or not exist yet)")
    if source.is_dir() and staging.resolve().is_relative_to(source.resolve()):
        raise UsageError(f"{staging}: the staging folder must not be inside the submissions folder")
    staging.mkdir(parents=True, exist_ok=True)


def _ignored(parts: list[str]) -> bool:
    """macOS metadata, hidden files and folders, editor backups: not submissions."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].endswith("~")


def _zip_items(zf: zipfile.ZipFile, limits: _Limits, problems: list[str]) -> list[_Item]:
    """The entries of ``zf`` that may be submissions; the unsafe ones reported."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise CourseError(
            f"the zip holds {len(infos)} entries, more than {limits.max_files}: is it the right file?"
        )
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total:
        raise CourseError(
            f"the zip unpacks to {_mb(declared)}, more than {_mb(limits.max_total)}: is it the right file?"
        )
    items, ignored = [], 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if info.is_dir() or not parts:
            continue
        why = _unsafe(name, parts, info)
        if why:
            problems.append(f"{_show(name)}: {why}; skipped")
        elif _ignored(parts):
            ignored += 1
        else:
            items.append(_Item("/".join(parts), info.file_size, _zip_time(info), _opener(zf, info)))
    if ignored:
        problems.append(f"ignored {ignored} hidden or macOS metadata entries (.*, __MACOSX/, *~)")
    return items


def _unsafe(name: str, parts: list[str], info: zipfile.ZipInfo) -> str:
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path (unsafe)"
    if ".." in parts:
        return "a path that leaves the folder (unsafe)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link (unsafe)"
    if info.flag_bits & 0x1:
        return "unreadable: the entry is encrypted"
    return ""


def _opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    return lambda: zf.open(info)


def _zip_time(info: zipfile.ZipInfo) -> datetime | None:
    """The entry's time: its extended timestamp (UTC) when it has one, else its DOS time taken as UTC."""
    extra, i = info.extra, 0
    while i + 4 <= len(extra):
        kind, size = struct.unpack("<HH", extra[i : i + 4])
        if kind == 0x5455 and size >= 5 and extra[i + 4] & 1:
            try:
                return datetime.fromtimestamp(struct.unpack("<i", extra[i + 5 : i + 9])[0], UTC)
            except (OverflowError, OSError, ValueError, struct.error):
                break
        i += 4 + size
    try:
        return datetime(*info.date_time, tzinfo=UTC)
    except ValueError:
        return None


def _folder_items(folder: Path, limits: _Limits, problems: list[str]) -> list[_Item]:
    """The files under ``folder`` (hidden ones and symbolic links left out, and reported)."""
    items, ignored, total = [], 0, 0
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _ignored([d]) and not (here / d).is_symlink())
        for f in sorted(files):
            p = here / f
            rel = p.relative_to(folder).as_posix()
            if _ignored([f]):
                ignored += 1
            elif p.is_symlink() or not p.is_file():
                problems.append(f"{_show(rel)}: a symbolic link or special file (unsafe); skipped")
            else:
                st = p.stat()
                total += st.st_size
                items.append(
                    _Item(rel, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), _file_opener(p))
                )
            if len(items) > limits.max_files:
                raise CourseError(
                    f"{folder} holds more than {limits.max_files} files: is it the right folder?"
                )
    if total > limits.max_total:
        raise CourseError(
            f"{folder} holds {_mb(total)}, more than {_mb(limits.max_total)}: is it the right folder?"
        )
    if ignored:
        problems.append(f"ignored {ignored} hidden files or editor backups (.*, *~)")
    return items


def _file_opener(p: Path) -> Callable[[], BinaryIO]:
    return lambda: open(p, "rb")


# --------------------------------------------------------------------------- names and ids


def classify(rel: str) -> tuple[str, str, str, bool, int, str]:
    """``(lms, lms id, file name the student gave, LATE, LMS file id, what it is)`` of a path.

    What it is: ``""`` for a submitted file, else the kind of a submission that is no file
    (Moodle's ``assignsubmission_onlinetext``, Canvas's online text entry, ...).
    """
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):  # Moodle, in folders: <name>_<id>_assignsubmission_file_/...
        m = MOODLE.match(part)
        if m and not m["orig"]:
            return "moodle", m["id"], "/".join(parts[i + 1 :]), False, 0, _moodle_kind(m["plugin"])
    base = parts[-1]
    m = MOODLE.match(base)
    if m and m["orig"]:
        return "moodle", m["id"], m["orig"], False, 0, _moodle_kind(m["plugin"])
    m = CANVAS_ONLINE.match(base)
    if m:
        kind = "Canvas online text entry" if m["kind"] == "text" else "Canvas website URL"
        return "canvas", m["id"], base, bool(m["late"]), 0, kind
    m = CANVAS.match(base)
    if m:
        return "canvas", m["id"], m["orig"], bool(m["late"]), int(m["file_id"]), ""
    return "plain", PurePosixPath(base).stem, base, False, 0, ""


def _moodle_kind(plugin: str) -> str:
    return "" if plugin == "file" else f"assignsubmission_{plugin}"


def _suffixed(name: str) -> tuple[str, int]:
    """``("nb.ipynb", 2)`` for ``nb-2.ipynb``: Canvas's ``-N`` on a file name given again (0 without)."""
    base = name.rsplit("/", 1)[-1]
    m = _SUFFIX.match(base)
    return (m["base"] + (m["ext"] or ""), int(m["n"])) if m else (base, 0)


def _identify(items: list[_Item], rows: dict[str, _Row] | None, limits: _Limits, problems: list[str]):
    """Give each item its student; leave out (and report) what is no file, and files too large."""
    used, kept = set(), []
    for it in items:
        it.lms, it.lms_id, it.name, it.late, it.file_id, kind = classify(it.rel)
        row = rows.get(it.lms_id) if rows is not None else None
        it.student = row.student if row else it.lms_id
        it.when = row.submitted_at if row else ""
        if row:
            used.add(it.lms_id)
        if kind:
            problems.append(f"{_show(it.rel)}: not a file submission ({kind}); skipped")
        elif it.size > limits.max_bytes:
            problems.append(
                f"{_show(it.rel)}: {_mb(it.size)}, more than the {_mb(limits.max_bytes)} a notebook may be;"
                f" skipped (student {it.student})"
            )
        else:
            kept.append(it)
            if rows is not None and not row:
                problems.append(
                    f"{_show(it.rel)}: {_ID_WORDS[it.lms]} {it.lms_id} is not in the mapping;"
                    f" graded as student {it.lms_id}"
                )
    for lms_id, row in sorted((rows or {}).items(), key=lambda kv: kv[1].line):
        if lms_id not in used:
            problems.append(f"mapping line {row.line}: lms_id {lms_id} ({row.student}) matches no submission")
    layouts = Counter(it.lms for it in kept)
    if len(layouts) > 1:
        mix = ", ".join(f"{k} {n}" for k, n in sorted(layouts.items()))
        problems.append(f"the file names mix layouts ({mix}): check that each file went to the right student")
    return kept


def _ordered(group: list[_Item]) -> list[_Item]:
    """One student's files, the one to grade first: a ``.ipynb`` file over any other, then the newest
    (highest ``-N`` of a file name given again, highest Canvas file id, latest time)."""
    bases = Counter(_suffixed(it.name)[0] for it in group)
    oldest = datetime.min.replace(tzinfo=UTC)

    def key(it: _Item):
        base, n = _suffixed(it.name)
        return (it.notebook, n if bases[base] > 1 else 0, it.file_id, it.time or oldest, it.rel)

    return sorted(group, key=key, reverse=True)


def _stage(items: list[_Item], rows: dict[str, _Row] | None, limits: _Limits, intake: Intake) -> None:
    """Copy each student's best file into the staging folder; report the others."""
    groups: dict[str, list[_Item]] = {}
    for it in _identify(items, rows, limits, intake.problems):
        groups.setdefault(it.student, []).append(it)
    for student in sorted(groups):
        group = _ordered(groups[student])
        dest = intake.folder / f"{safe_name(student)}.ipynb"
        tried = 0
        while tried < len(group) and not _copy(group[tried], dest, limits, intake.problems):
            tried += 1
        if tried == len(group):
            intake.problems.append(f"student {student}: none of their files could be read; nothing staged")
            continue
        it, dropped = group[tried], group[tried + 1 :]
        if dropped:
            intake.problems.append(
                f"student {student} has {len(group)} files: kept {_show(it.rel)}, dropped "
                + ", ".join(_show(d.rel) for d in dropped)
                + " (a .ipynb file first, then the newest)"
            )
        if not it.notebook:
            intake.problems.append(
                f"{_show(it.rel)}: not a .ipynb file; staged for student {student} all the same"
                " (it will be graded 'not a notebook')"
            )
        when = it.when or (iso_utc(it.time) if it.time else "")
        source = "mapping" if it.when else (intake.kind if it.time else "")
        intake.entries.append(Entry(student, dest, it.rel, when, it.lms, it.late, it.lms_id, source))


def _copy(it: _Item, dest: Path, limits: _Limits, problems: list[str]) -> bool:
    """Copy ``it`` to ``dest`` within the limits; False (reported) when it cannot be read or is too large."""
    size = 0
    try:
        with it.open() as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                limits.written += len(chunk)
                if size > limits.max_bytes:
                    break
                if limits.written > limits.max_total:
                    raise CourseError(f"the submissions unpack to more than {_mb(limits.max_total)}; stopped")
                out.write(chunk)
    except _READ_ERRORS as e:
        dest.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == 28:  # ENOSPC: no entry could be staged
            raise CourseError(f"{dest.parent}: no space left on the disk") from None
        problems.append(f"{_show(it.rel)}: unreadable ({_one_line(e)}); skipped")
        return False
    except CourseError:
        dest.unlink(missing_ok=True)
        raise
    if size > limits.max_bytes:
        dest.unlink(missing_ok=True)
        problems.append(
            f"{_show(it.rel)}: unpacks to more than {_mb(limits.max_bytes)}"
            f" (its zip entry said {_mb(it.size)}); skipped"
        )
        return False
    return True


# --------------------------------------------------------------------------- the mapping


def _lms_key(value: str | None) -> str:
    """An LMS id as file names give it (Moodle's worksheet says ``Participant 123``: 123)."""
    s = (value or "").strip()
    m = re.fullmatch(r"participant\s*(\d+)", s, re.IGNORECASE)
    return m[1] if m else s


def read_mapping(path: Path) -> dict[str, _Row]:
    """``{lms id: row}`` of a mapping CSV (header ``lms_id,student[,submitted_at]``), else UsageError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the mapping ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the mapping is not UTF-8 text") from None
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = {(h or "").strip().lower(): h for h in reader.fieldnames or []}
    if "lms_id" not in header or "student" not in header:
        raise UsageError(
            f"{path}: its first line must be the header lms_id,student (optionally ,submitted_at);"
            f" found {first[:80]!r}"
        )
    rows: dict[str, _Row] = {}
    for rec in reader:
        line = reader.line_num
        lms_id, student = _lms_key(rec.get(header["lms_id"])), (rec.get(header["student"]) or "").strip()
        when = (rec.get(header.get("submitted_at", "")) or "").strip() if "submitted_at" in header else ""
        if not lms_id and not student:
            continue
        if not lms_id or not student:
            raise UsageError(f"{path}:{line}: a line needs both an lms_id and a student")
        when = iso_utc(parse_time(when, f"{path.name}:{line}: submitted_at")) if when else ""
        old = rows.get(lms_id)
        if old is not None and (old.student, old.submitted_at) != (student, when):
            raise UsageError(
                f"{path}:{line}: lms_id {lms_id} is on line {old.line} already, with another student"
            )
        rows.setdefault(lms_id, _Row(line, student, when))
    return rows


# --------------------------------------------------------------------------- words


def _mb(n: int) -> str:
    return f"{n} bytes" if n < 1024**2 else f"{n / 1024**2:.0f} MB"


def _show(name: str) -> str:
    """A name from the source, on one line and not too long."""
    s = re.sub(r"[\x00-\x1f\x7f]", "?", name)
    return s if len(s) <= 200 else s[:197] + "..."


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else e.__class__.__name__
