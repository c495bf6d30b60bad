"""Grade a folder of submitted notebooks against the engine, in the grader's own process.

    dockercourse grade SUBMISSIONS [--out DIR] [--chapter N] [-j N] [--force]
                       [--cell-timeout S] [--timeout S] [--root DIR] [--no-progress]

Every regular file in SUBMISSIONS (one per student, any name; the student id is
the file's stem) is graded in a fresh namespace of its own:

1. The notebook is read with nbformat (a file that is not a notebook gets the
   status ``not a notebook`` and zero).
2. A fresh kernel starts with ``DOCKERCOURSE_NS=g<batch><k>`` and
   ``DOCKERCOURSE_RUN=<id>`` in its environment, so the notebook's ``setup()``
   names everything ``dc02g<batch><k>-...``; its working folder is a fresh
   temporary folder.
3. The cells run one by one with nbclient (errors do not stop the run), each
   under a per-cell timeout and all under a per-submission timeout.
4. After the cell at each exercise's *check point* the grader runs that exercise's
   check and hidden checks itself (:func:`dockercourse.checks.run_exercise`), never
   in the learner's kernel, so nothing in a submission can fake a result. The check
   point is the exercise's check cell (found by ``metadata.dockercourse``, never by
   position), or its answer cell when the check cell sits above it; when the check
   cell is missing, the exercise is checked after its answer cell and again at the
   end; with no cell of it at all, at the end. An exercise passes if it passes at
   any of its check points.
5. When the run stops early (timeout, kernel died) the kernel is killed and every
   exercise not yet checked is checked once, against the engine as it is then.
6. The namespace is cleaned (labelled resources, and anything named with the
   submission's unique prefix), whatever happened.

Outputs in ``--out``: ``grades.csv`` (student, one 0/1 column per exercise, total,
status), ``feedback/<student>.html`` and ``results/<student>.json`` (which makes a
rerun skip submissions already graded, unless ``--force``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import html
import json
import logging
import math
import multiprocessing
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker.errors

from dockercourse.checks import course_root, load_exercises, run_exercise
from dockercourse.core import labels as L
from dockercourse.core.namespace import NS_ENV, RUN_ENV, Namespace, chapter_number
from dockercourse.core.cleanup import clean, leftovers
from dockercourse.grading.release import cell_part, chapter_of

#: Statuses of a graded submission.
OK = "ok"
TIMEOUT = "timeout"
DIED = "kernel died"
NOT_NOTEBOOK = "not a notebook"
ERROR = "grader error"

STATUS_TEXT = {
    OK: "the notebook ran to its end",
    TIMEOUT: "the notebook ran out of time and was stopped; exercises not reached were checked when it stopped",
    DIED: "the notebook's kernel died; exercises not reached were checked when it died",
    NOT_NOTEBOOK: "the file could not be read as a Jupyter notebook, so nothing was run",
    ERROR: "the grader itself failed on this submission; ask your instructor",
}

#: Bump when a change makes earlier results/*.json unusable for a resumed run.
GRADER_VERSION = 1
#: Largest file read as a submission.
MAX_BYTES = 50 * 1024 * 1024
#: Output text kept per cell (what a submission prints beyond it is dropped).
MAX_OUTPUT_CHARS = 200_000
#: Marker of the "after the last cell" check point.
END = -1

log = logging.getLogger("dockercourse.grading.grade")


# --------------------------------------------------------------------------- results


@dataclass
class ExerciseGrade:
    """The grade of one exercise of one submission."""

    id: str
    title: str
    passed: bool
    message: str
    hint: str
    where: str  # when it was checked, in words
    error: bool = False  # the check itself could not run


@dataclass
class SubmissionGrade:
    """The grade of one submission."""

    student: str
    file: str
    sha256: str
    chapter: str | None
    status: str
    exercises: list[ExerciseGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    namespace: str = ""
    hidden: bool = True
    version: int = GRADER_VERSION

    @property
    def total(self) -> int:
        return sum(e.passed for e in self.exercises)

    def score(self, exercise: str) -> int:
        return int(any(e.passed for e in self.exercises if e.id == exercise))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SubmissionGrade":
        d = dict(d)
        d["exercises"] = [ExerciseGrade(**e) for e in d.get("exercises", [])]
        return cls(**d)


# --------------------------------------------------------------------------- reading


def read_submission(path: Path):
    """``(notebook, None)`` or ``(None, why it is not a notebook)``."""
    import nbformat

    try:
        size = path.stat().st_size
    except OSError as e:
        return None, f"cannot read the file ({e.strerror})"
    if size > MAX_BYTES:
        return None, f"the file is {size // (1024 * 1024)} MB, more than a notebook can be"
    try:
        with warnings_suppressed():
            nb = nbformat.read(path, as_version=4)
    except Exception as e:  # JSON errors, unknown nbformat, binary junk, ...
        return None, f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return _sane(nb)


def _sane(nb):
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("cell_type"), str)
                                              for c in cells):
        return None, "it has no list of cells"
    for c in cells:
        if c.get("cell_type") == "code" and not isinstance(c.get("source"), str):
            return None, "a code cell has no source text"
    return nb, None


class warnings_suppressed:
    """nbformat warns about every small schema deviation; a grader does not care."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")
        self._lvl = logging.getLogger("traitlets").level
        logging.getLogger("traitlets").setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc):
        logging.getLogger("traitlets").setLevel(self._lvl)
        return self._cm.__exit__(*exc)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- plan


def plan_checks(cells, exercise_ids) -> dict[str, list[tuple[int, str]]]:
    """Check points of each exercise: ``[(cell index or END, why), ...]`` in order.

    Cells are matched by ``metadata.dockercourse`` only. Cell numbers in the
    explanations are 1-based, as a learner counts them.
    """
    found = {e: {"check": [], "work": []} for e in exercise_ids}
    for i, cell in enumerate(cells):
        ex, part = cell_part(cell)
        if ex not in found:
            continue
        if part == "check":
            found[ex]["check"].append(i)
        elif part in ("answer", "solution"):
            found[ex]["work"].append(i)
    plan = {}
    for ex, f in found.items():
        work = max(f["work"]) if f["work"] else None
        points: dict[int, str] = {}
        for c in f["check"]:
            if work is not None and c < work:
                points.setdefault(work, f"after cell {work + 1}, its answer (its check cell {c + 1} comes before it)")
            else:
                points.setdefault(c, f"at its check cell (cell {c + 1})")
        if not f["check"]:
            if work is not None:
                points[work] = f"after cell {work + 1}, its answer (its check cell is missing)"
            points[END] = "at the end of the notebook (its check cell is missing)"
        plan[ex] = sorted(points.items(), key=lambda kv: (kv[0] == END, kv[0]))
    return plan


# --------------------------------------------------------------------------- one submission

_worker_client = None
_exercise_cache: dict = {}


def _engine():
    global _worker_client
    if _worker_client is None:
        from dockercourse.core.engine import connect

        _worker_client = connect()
    return _worker_client


def _exercises(chapter: str, root: Path):
    key = (chapter, str(root))
    if key not in _exercise_cache:
        _exercise_cache[key] = load_exercises(chapter, root)
    return _exercise_cache[key]


def _notebook_client_class():
    from nbclient import NotebookClient

    class GradingClient(NotebookClient):
        """nbclient with a cap on the output kept per cell (a printing loop must not eat memory)."""

        budget = MAX_OUTPUT_CHARS

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content") or {}
            if msg.get("msg_type") == "stream":
                self.budget -= len(content.get("text") or "")
            else:
                self.budget -= 1000
            if self.budget < 0 and msg.get("msg_type") != "error":
                return None
            return super().output(outs, msg, display_id, cell_index)

    return GradingClient


def remove_prefixed(client, prefix: str) -> list[str]:
    """Remove containers, networks, volumes and image tags whose name starts with ``prefix``.

    Only for prefixes unique to one grading run (``dc02g<batch><k>-``): the labels
    catch what the course client made; this catches what a submission made
    without them (e.g. through its own ``docker.from_env()``). Uses the low-level
    API's lists, which do not inspect every object (others may remove theirs meanwhile).
    """
    api = client.api
    removed = []

    def attempt(what: str, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
            removed.append(what)
        except docker.errors.DockerException:
            pass

    try:
        for c in api.containers(all=True, filters={"name": prefix}):
            names = [n.lstrip("/") for n in c.get("Names") or []]
            if any(n.startswith(prefix) for n in names):
                attempt(f"container {names[0]}", api.remove_container, c["Id"], v=True, force=True)
        for n in api.networks(names=[prefix]):
            if n.get("Name", "").startswith(prefix):
                try:
                    for cid in list((api.inspect_network(n["Id"]).get("Containers") or {})):
                        attempt("", api.disconnect_container_from_network, cid, n["Id"], force=True)
                except docker.errors.DockerException:
                    pass
                attempt(f"network {n['Name']}", api.remove_network, n["Id"])
        for v in (api.volumes(filters={"name": prefix}) or {}).get("Volumes") or []:
            if v.get("Name", "").startswith(prefix):
                attempt(f"volume {v['Name']}", api.remove_volume, v["Name"], force=True)
        for img in api.images():
            for ref in img.get("RepoTags") or []:
                if ref.rsplit(":", 1)[0].rsplit("/", 1)[-1].startswith(prefix):
                    attempt(f"image {ref}", api.remove_image, ref)
    except docker.errors.DockerException as e:
        removed.append(f"(could not list: {e})")
    return [r for r in removed if r]


def clean_namespace(client, ns: Namespace) -> list[str]:
    """Remove everything of one grading namespace; what could not be removed, in words."""
    problems = list(clean(client, namespace=ns).errors)
    remove_prefixed(client, ns.prefix)
    rest = [f"{k[:-1]} {n}" for k, names in leftovers(client, namespace=ns).items() for n in names]
    if rest:
        problems.append("left on the engine: " + ", ".join(rest))
    return problems


def _cell_error(cell) -> str | None:
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            ev = str(o.get("evalue", ""))
            ev = ev if len(ev) <= 300 else ev[:300] + "…"
            return f"{o.get('ename', 'Error')}: {ev}"
    return None


def grade_notebook(source, chapter: str | None = None, *, root: Path | str | None = None, tag: str,
                   run: str | None = None, student: str | None = None, cell_timeout: float = 60,
                   submission_timeout: float = 600, hidden: bool = True, kernel_name: str = "python3",
                   cwd: Path | str | None = None, workroot: Path | str | None = None) -> SubmissionGrade:
    """Grade one submission (a path, or an in-memory notebook); never raises for the submission's sake.

    Args:
        source: the submitted file, or a ``NotebookNode``.
        chapter: the chapter to grade against (default: the notebook's metadata).
        root: the course folder holding ``checks/`` (default: :func:`course_root`).
        tag: namespace tag of this submission, unique among everything on the engine now
            (``g<batch><k>``; 1-12 lowercase letters/digits).
        run: run id (random when not given).
        student: the student id shown in the results (default: the file's stem).
        cell_timeout, submission_timeout: seconds.
        hidden: also run hidden checks (the grader does; the non-vacuity test of
            student copies runs the visible check alone).
        kernel_name: the Jupyter kernel to run the cells in (never the notebook's own choice).
        cwd: the kernel's working folder (default: a fresh temporary folder, removed afterwards).
        workroot: where that temporary folder is made (default: the system's temporary folder).
    """
    t0 = time.monotonic()
    root = Path(root or course_root()).resolve()
    run = run or uuid.uuid4().hex[:12]
    path = None if isinstance(source, dict) else Path(source)
    g = SubmissionGrade(student=student or (path.stem if path else "notebook"),
                        file=path.name if path else "", sha256=sha256_of(path) if path else "",
                        chapter=None, status=OK, hidden=hidden)
    if path is not None:
        nb, why = read_submission(path)
    else:
        nb, why = _sane(source)
    own = chapter_of(nb, None) if nb is not None else None
    try:
        g.chapter = chapter_number(chapter) if chapter else own
    except ValueError:
        g.chapter = own
    if g.chapter is None:
        g.status = NOT_NOTEBOOK if nb is None else ERROR
        g.notes.append(why or "the notebook does not say its chapter; grade it with --chapter")
        g.seconds = round(time.monotonic() - t0, 2)
        return g
    exercises = _exercises(g.chapter, root)
    ns = Namespace(chapter=g.chapter, tag=tag, run=run)
    g.namespace = ns.prefix

    def record(ex_id: str, where: str):
        res = run_exercise(exercises[ex_id], client, ns, hidden=hidden)
        grades[ex_id] = ExerciseGrade(ex_id, res.title, res.passed, res.message, res.hint, where, res.error)

    grades: dict[str, ExerciseGrade] = {}
    if nb is None:
        g.status = NOT_NOTEBOOK
        g.notes.append(f"Not a notebook: {why}.")
        g.exercises = [ExerciseGrade(e.id, e.title, False, "the file is not a notebook", e.hint, "not checked")
                       for e in exercises.values()]
        g.seconds = round(time.monotonic() - t0, 2)
        return g
    if own and own != g.chapter:
        g.notes.append(f"The notebook says it is chapter {own}; it was graded as chapter {g.chapter}.")

    client = _engine()
    cells = nb.cells
    plan = plan_checks(cells, list(exercises))
    unknown = sorted({ex for ex, _ in map(cell_part, cells) if ex and ex not in exercises})
    if unknown:
        g.notes.append("Cells name exercises this chapter does not have: " + ", ".join(unknown) + ".")
    at: dict[int, list[tuple[str, str]]] = {}
    for ex_id, points in plan.items():
        for idx, why_ in points:
            if idx != END:
                at.setdefault(idx, []).append((ex_id, why_))
    last_done = -1  # index of the last cell whose execution finished

    workdir = Path(cwd) if cwd else Path(tempfile.mkdtemp(prefix=f"dcgrade-{tag}-", dir=workroot))
    env = dict(os.environ)
    env.update({NS_ENV: tag, RUN_ENV: run, "DOCKERCOURSE_ROOT": str(root)})
    env.pop("JPY_PARENT_PID", None)
    deadline = t0 + submission_timeout
    try:
        clean_namespace(client, ns)  # leftovers of an earlier, interrupted run with this tag
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        quiet = logging.getLogger("dockercourse.grading.grade.nbclient")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        nbc = _notebook_client_class()(
            nb, timeout=int(cell_timeout), kernel_name=kernel_name, allow_errors=True,
            interrupt_on_timeout=False, shutdown_kernel="immediate", startup_timeout=60,
            resources={"metadata": {"path": str(workdir)}}, log=quiet)
        try:
            with nbc.setup_kernel(env=env, cwd=str(workdir), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL):
                for i, cell in enumerate(cells):
                    if cell.get("cell_type") == "code" and cell.get("source", "").strip():
                        left = deadline - time.monotonic()
                        if left < 1:
                            g.status = TIMEOUT
                            g.notes.append(f"The submission ran longer than {submission_timeout:g} s in all; "
                                           f"it was stopped before cell {i + 1}.")
                            break
                        per_cell = left < cell_timeout
                        nbc.timeout = max(1, int(math.ceil(min(cell_timeout, left))))
                        nbc.budget = MAX_OUTPUT_CHARS
                        try:
                            nbc.execute_cell(cell, i)
                        except CellTimeoutError:
                            g.status = TIMEOUT
                            g.notes.append(
                                f"Cell {i + 1} was stopped: the submission ran longer than "
                                f"{submission_timeout:g} s in all." if per_cell else
                                f"Cell {i + 1} ran longer than {cell_timeout:g} s and was stopped.")
                            break
                        except DeadKernelError:
                            g.status = DIED
                            g.notes.append(f"The kernel died while running cell {i + 1}.")
                            break
                        err = _cell_error(cell)
                        if err:
                            g.cell_errors.append(f"cell {i + 1}: {err}")
                    last_done = i
                    for ex_id, why_ in at.get(i, []):
                        if not (ex_id in grades and grades[ex_id].passed):
                            record(ex_id, why_)
        except DeadKernelError:
            g.status = DIED
            g.notes.append("The kernel died.")
        # The kernel is gone now: check what is still pending against the engine as it is.
        finished = g.status == OK
        for ex_id, points in plan.items():
            if ex_id in grades and grades[ex_id].passed:
                continue
            pending = [(idx, w) for idx, w in points if idx == END or idx > last_done]
            if not pending:
                continue
            if finished:
                record(ex_id, pending[-1][1] if pending[-1][0] == END else "at the end of the notebook")
            else:
                record(ex_id, f"when the run stopped ({g.status}), before its check point")
    except Exception as e:  # a grader problem (engine gone, kernel would not start): say so, keep going
        g.status = ERROR
        g.notes.append(f"The grader failed: {e.__class__.__name__}: {str(e)[:300]}")
        log.exception("grading %s failed", g.student)
    finally:
        try:
            problems = clean_namespace(client, ns)
            if problems:
                g.notes.append("Cleanup: " + "; ".join(problems))
        except Exception as e:
            g.notes.append(f"Cleanup failed: {e.__class__.__name__}: {e}")
        if not cwd:
            shutil.rmtree(workdir, ignore_errors=True)
    g.exercises = [grades.get(e.id) or ExerciseGrade(e.id, e.title, False, "not checked", e.hint, "not checked")
                   for e in exercises.values()]
    g.seconds = round(time.monotonic() - t0, 2)
    return g


def _task(kw: dict, started: str | None = None) -> dict:
    """Worker entry point: grade one submission, always return a result.

    ``started``: a file touched first, so the batch knows which submissions were
    running when a worker process died (the others were only queued).
    """
    if started:
        Path(started).touch()
    try:
        return grade_notebook(**kw).to_dict()
    except BaseException as e:  # noqa: BLE001 - one submission must never stop the batch
        path = Path(kw["source"])
        return SubmissionGrade(student=kw.get("student") or path.stem, file=path.name, sha256="",
                               chapter=kw.get("chapter"), status=ERROR,
                               notes=[f"The grader failed: {e.__class__.__name__}: {e}"]).to_dict()


# --------------------------------------------------------------------------- a folder


def submissions(folder: Path) -> list[Path]:
    """The submitted files: every regular, non-hidden file directly in ``folder``."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith("~"))


def student_ids(files: list[Path]) -> dict[Path, str]:
    """Student id of each file: its stem, or its whole name when two files share a stem."""
    stems: dict[str, int] = {}
    for p in files:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: (p.stem if stems[p.stem] == 1 else p.name) for p in files}


def safe_name(student: str) -> str:
    """A file name for a student id (feedback page, result file)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    if s != student:
        s += "-" + hashlib.sha1(student.encode()).hexdigest()[:6]
    return s[:120]


def detect_chapter(files: list[Path]) -> str:
    """The chapter the submissions say they are (one only), else CourseError."""
    from dockercourse.errors import CourseError

    seen: dict[str, int] = {}
    for p in files:
        nb, _ = read_submission(p)
        ch = chapter_of(nb, None) if nb is not None else None
        if ch:
            seen[ch] = seen.get(ch, 0) + 1
    if len(seen) == 1:
        return next(iter(seen))
    if not seen:
        raise CourseError("no submission says its chapter (metadata.dockercourse.chapter); give --chapter")
    raise CourseError("the submissions are of several chapters (" +
                      ", ".join(f"{c}: {n}" for c, n in sorted(seen.items())) + "); give --chapter")


@dataclass
class BatchReport:
    chapter: str
    exercises: list[str]
    grades: list[SubmissionGrade]
    graded: int  # graded in this run
    reused: int  # results of an earlier run reused
    seconds: float
    batch: str  # the namespace tags of this run start with g<batch>
    out: Path


def _result_path(out: Path, student: str) -> Path:
    return out / "results" / (safe_name(student) + ".json")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def grade_folder(folder: Path | str, out: Path | str, *, chapter: str | None = None,
                 root: Path | str | None = None, jobs: int = 1, force: bool = False,
                 cell_timeout: float = 60, submission_timeout: float = 600, kernel_name: str = "python3",
                 progress: bool = True, files: list[Path] | None = None, engine: str = "host",
                 vm_memory_mb: int | None = None) -> BatchReport:
    """Grade every submission in ``folder``; write grades.csv, feedback/ and results/ into ``out``.

    With ``engine="vm"`` every worker process boots its own throwaway Docker engine in a
    qemu VM (``dockercourse.vm.engine.worker_init``) and grades its submissions there:
    a submission that bind-mounts ``/``, runs privileged containers or removes everything
    reaches only that VM, never the host's engine or files.
    """
    from tqdm import tqdm

    t0 = time.monotonic()
    folder, out = Path(folder), Path(out)
    root = Path(root or course_root()).resolve()
    files = sorted(files) if files is not None else submissions(folder)
    chapter = chapter_number(chapter) if chapter else detect_chapter(files)
    exercises = load_exercises(chapter, root)
    ids = student_ids(files)
    out.mkdir(parents=True, exist_ok=True)

    results: dict[Path, SubmissionGrade] = {}
    todo: list[Path] = []
    for p in files:
        rp = _result_path(out, ids[p])
        if not force and rp.exists():
            try:
                old = SubmissionGrade.from_dict(json.loads(rp.read_text(encoding="utf-8")))
                if (old.version == GRADER_VERSION and old.sha256 == sha256_of(p) and old.chapter == chapter
                        and old.status != ERROR and [e.id for e in old.exercises] == list(exercises)):
                    results[p] = old
                    continue
            except Exception:
                pass
        todo.append(p)
    reused = len(results)

    batch = secrets.token_hex(3)
    tags = {p: f"g{batch}{k}" for k, p in enumerate(todo, 1)}
    marks = Path(tempfile.mkdtemp(prefix=f"dcgrade-{batch}-"))  # start marks and the kernels' folders
    common = dict(chapter=chapter, root=str(root), cell_timeout=cell_timeout,
                  submission_timeout=submission_timeout, kernel_name=kernel_name, workroot=str(marks))

    def finish(p: Path, d: dict):
        g = SubmissionGrade.from_dict(d)
        g.student = ids[p]
        results[p] = g
        _write_atomic(_result_path(out, g.student), json.dumps(g.to_dict(), indent=1, ensure_ascii=False))
        _write_atomic(out / "feedback" / (safe_name(g.student) + ".html"), feedback_html(g))

    def kw(p: Path, tag: str) -> dict:
        return dict(source=str(p), student=ids[p], tag=tag, **common)

    bar = tqdm(total=len(todo), desc=f"grading chapter {chapter}", unit="nb", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    ctx = multiprocessing.get_context("spawn")
    retry = iter(range(1, 10**6))
    pool_args: dict = {}
    if engine == "vm":
        from dockercourse.vm import engine as vm

        images = images_for_chapter(root, chapter)
        vm.build(images, log=lambda *_: None)  # once, before the workers share the disk read-only
        pool_args = dict(initializer=vm.worker_init,
                         initargs=(images, vm_memory_mb or vm.DEFAULT_MEMORY_MB))
    elif engine != "host":
        raise ValueError(f"engine must be 'host' or 'vm', not {engine!r}")

    def new_tag(p: Path) -> str:
        _sweep_tag(chapter, tags[p])  # what the interrupted attempt left
        tags[p] = f"g{batch}r{next(retry)}"
        return tags[p]

    def run_pool(items: list[Path], workers: int) -> list[Path]:
        """Grade ``items`` in a pool; the ones a dying worker took down with it."""
        lost = []
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **pool_args) as pool:
            futs = {pool.submit(_task, kw(p, tags[p]), str(marks / f"{tags[p]}.started")): p for p in items}
            for fut in cf.as_completed(futs):
                p = futs[fut]
                try:
                    finish(p, fut.result())
                    bar.update(1)
                except BrokenProcessPool:
                    lost.append(p)
        return lost

    try:
        queue = list(todo)
        while queue:
            lost = run_pool(queue, max(1, jobs))
            # A worker process died (e.g. a submission killed its parent process). Every pending
            # future fails with it: the ones never started go back to the queue; the ones that
            # had started are suspects, each graded again alone, so the innocent get their grade.
            suspects = [p for p in lost if (marks / f"{tags[p]}.started").exists()] or lost
            queue = [p for p in lost if p not in suspects]
            for p in queue:
                new_tag(p)
            for p in suspects:
                tag = new_tag(p)
                if run_pool([p], 1):
                    _sweep_tag(chapter, tag)
                    finish(p, SubmissionGrade(
                        student=ids[p], file=p.name, sha256=sha256_of(p), chapter=chapter, status=DIED,
                        exercises=[ExerciseGrade(e.id, e.title, False, "not checked", e.hint, "not checked")
                                   for e in exercises.values()],
                        notes=["The submission killed the grader's worker process, so nothing could be "
                               "checked."], namespace=f"dc{chapter}{tag}-").to_dict())
                    bar.update(1)
    finally:
        bar.close()
        shutil.rmtree(marks, ignore_errors=True)
        _sweep_batch(chapter, batch)
    grades = [results[p] for p in files if p in results]
    write_csv(out / "grades.csv", grades, list(exercises))
    return BatchReport(chapter, list(exercises), grades, len(todo), reused, round(time.monotonic() - t0, 2),
                       batch, out)


def images_for_chapter(root: Path, chapter: str) -> list[str]:
    """The pinned course images a chapter's master notebook imports (for a VM engine)."""
    from dockercourse.core import images as pinned

    names = {"BUSYBOX"}
    for nb_path in sorted((Path(root) / "notebooks").glob(f"{chapter}_*.ipynb")):
        text = nb_path.read_text(encoding="utf-8")
        for m in re.finditer(r"from dockercourse\.images import ([A-Z_, ]+)", text):
            names.update(n.strip() for n in m.group(1).split(","))
    refs = [getattr(pinned, n) for n in sorted(names) if isinstance(getattr(pinned, n, None), str)]
    return refs


def _sweep_tag(chapter: str, tag: str) -> None:
    try:
        clean_namespace(_engine(), Namespace(chapter=chapter, tag=tag, run="sweep"))
    except Exception:
        pass


def _sweep_batch(chapter: str, batch: str) -> None:
    """Safety net after a batch: remove whatever any namespace of this batch left."""
    try:
        client = _engine()
        api = client.api
        prefix = f"dc{chapter}g{batch}"
        flt = {"label": [f"{L.CHAPTER}={chapter}"]}
        mine = lambda labels: ((labels or {}).get(L.NAMESPACE) or "").startswith(prefix)  # noqa: E731
        for c in api.containers(all=True, filters=flt):
            if mine(c.get("Labels")):
                try:
                    api.remove_container(c["Id"], v=True, force=True)
                except docker.errors.DockerException:
                    pass
        for n in api.networks(filters=flt):
            if mine(n.get("Labels")):
                try:
                    api.remove_network(n["Id"])
                except docker.errors.DockerException:
                    pass
        for v in (api.volumes(filters=flt) or {}).get("Volumes") or []:
            if mine(v.get("Labels")):
                try:
                    api.remove_volume(v["Name"], force=True)
                except docker.errors.DockerException:
                    pass
        for img in api.images(filters=flt):
            if mine(img.get("Labels")):
                for ref in img.get("RepoTags") or [img["Id"]]:
                    try:
                        api.remove_image(ref)
                    except docker.errors.DockerException:
                        pass
        remove_prefixed(client, prefix)
    except Exception:
        pass


# --------------------------------------------------------------------------- outputs


def _csv_safe(text: str) -> str:
    """Keep spreadsheets from reading a student id as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(path: Path, grades: list[SubmissionGrade], exercises: list[str]) -> None:
    rows = [["student", *exercises, "total", "status"]]
    for g in sorted(grades, key=lambda g: g.student):
        rows.append([_csv_safe(g.student), *[str(g.score(e)) for e in exercises],
                     str(sum(g.score(e) for e in exercises)), g.status])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    tmp.replace(path)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """grades.csv as ``{student: {column: value}}`` (for tests and scripts)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.5rem;
text-align:left;vertical-align:top}tr.pass td.r{color:#176f2c}tr.fail td.r{color:#a3262b}small{color:#666}
.status{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;background:#eee}
.status.ok{background:#dff3e3}.status.bad{background:#fbe3e4}code{background:#f4f4f4;padding:0 .2rem}
"""


def feedback_html(g: SubmissionGrade) -> str:
    """A self-contained HTML page with one submission's results (everything escaped)."""
    e = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    n = len(g.exercises)
    rows = []
    for x in g.exercises:
        if x.passed:
            detail = f"<small>checked {e(x.where)}</small>"
        else:
            detail = e(x.message)
            if x.hint:
                detail += f"<br><b>Hint:</b> {e(x.hint)}"
            if x.error:
                detail += "<br><small>(the check itself could not run; tell your instructor)</small>"
            detail += f"<br><small>checked {e(x.where)}</small>"
        rows.append(f'<tr class="{"pass" if x.passed else "fail"}"><td><code>{e(x.id)}</code><br>'
                    f'<small>{e(x.title)}</small></td><td class="r">{"✓ passed" if x.passed else "✗ not yet"}</td>'
                    f"<td>{detail}</td></tr>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Feedback for {e(g.student)} · chapter {e(g.chapter or '?')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Chapter {e(g.chapter or '?')} · feedback for {e(g.student)}</h1>",
        f"<p>Score: <b>{g.total} / {n}</b> &nbsp; Status: "
        f'<span class="status {"ok" if g.status == OK else "bad"}">{e(g.status)}</span> '
        f"<small>({e(STATUS_TEXT.get(g.status, ''))})</small></p>",
    ]
    if rows:
        parts.append("<table><tr><th>Exercise</th><th>Result</th><th>Details</th></tr>" + "".join(rows) + "</table>")
    if g.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in g.notes) + "</ul>")
    if g.cell_errors:
        shown = g.cell_errors[:20]
        more = len(g.cell_errors) - len(shown)
        parts.append("<h2>Cells that raised an error</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in shown)
                     + (f"<li>… and {more} more</li>" if more > 0 else "") + "</ul>")
    parts.append(f"<p><small>File {e(g.file)} · graded in {g.seconds:.1f} s · every check was run by the grader "
                 f"against the Docker engine, not in your notebook.</small></p></body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dockercourse grade",
                                 description="Grade a folder of submitted notebooks (one per student).")
    ap.add_argument("submissions", type=Path, help="folder of submitted notebooks (any file names)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <submissions>-grades)")
    ap.add_argument("--chapter", default=None, help="chapter to grade (default: from the notebooks' metadata)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    ap.add_argument("--force", action="store_true", help="grade again submissions already graded in --out")
    ap.add_argument("--cell-timeout", type=float, default=60, help="seconds one cell may run (default 60)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one submission may run (default 600)")
    ap.add_argument("--root", type=Path, default=None, help="the course folder holding checks/ (default: found)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel to run the cells in (default python3)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--engine", choices=("host", "vm"), default="host",
                    help="host: the engine DOCKER_HOST/the default socket points at (shared); vm: each worker "
                         "gets its own throwaway engine in a qemu VM (isolated; slower)")
    ap.add_argument("--vm-memory", type=int, default=None, help="MB of memory per worker VM")
    a = ap.parse_args(argv)
    if not a.submissions.is_dir():
        print(f"dockercourse grade: {a.submissions} is not a folder", file=sys.stderr)
        return 2
    if a.jobs < 1:
        print("dockercourse grade: -j must be at least 1", file=sys.stderr)
        return 2
    out = a.out or a.submissions.resolve().parent / (a.submissions.resolve().name + "-grades")
    if a.engine == "host":
        _engine()  # fail early, with the course's explanation, when no engine answers
    rep = grade_folder(a.submissions, out, chapter=a.chapter, root=a.root, jobs=a.jobs, force=a.force,
                       cell_timeout=a.cell_timeout, submission_timeout=a.timeout, kernel_name=a.kernel,
                       progress=not a.no_progress, engine=a.engine, vm_memory_mb=a.vm_memory)
    counts: dict[str, int] = {}
    for g in rep.grades:
        counts[g.status] = counts.get(g.status, 0) + 1
    print(f"chapter {rep.chapter}: {len(rep.grades)} submissions ({rep.graded} graded now, {rep.reused} from "
          f"an earlier run) in {rep.seconds:.1f} s; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    print(f"wrote {out / 'grades.csv'} and {out / 'feedback'}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
