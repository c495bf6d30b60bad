"""Grading one submission: its cells run one by one in a fresh kernel, its checks run by the grader.

1. A fresh kernel starts with ``DOCKERCOURSE_NS=<tag>`` and ``DOCKERCOURSE_RUN=<id>`` in its
   environment, so the notebook's ``setup()`` names everything ``dc02<tag>-...``; its working
   folder is a fresh temporary folder.
2. The cells run one by one with nbclient (errors do not stop the run), each under a
   per-cell timeout and all under a per-submission timeout; output kept per cell is capped.
3. After the cell at each exercise's check point (:func:`~dockercourse.grading.submission.plan_checks`)
   the grader runs that exercise's check and hidden checks itself
   (:func:`dockercourse.checks.run_exercise`), never in the learner's kernel, so nothing in a
   submission can fake a result. An exercise passes if it passes at any of its check points.
4. When the run stops early (timeout, kernel died) the kernel is killed and every exercise
   not yet checked is checked once, against the engine as it is then.
5. The namespace is cleaned (:func:`~dockercourse.grading.namespaces.clean_namespace`),
   whatever happened.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from dockercourse.checks import course_root, load_exercises, run_exercise
from dockercourse.core.namespace import NS_ENV, RUN_ENV, Namespace, chapter_number
from dockercourse.core.notebooks import chapter_of, exercise_ids
from dockercourse.errors import UsageError
from dockercourse.grading import sandbox
from dockercourse.grading.namespaces import ENGINE_ERRORS, clean_namespace, engine
from dockercourse.grading.results import (
    DIED,
    ERROR,
    NOT_NOTEBOOK,
    OK,
    TIMEOUT,
    ExerciseGrade,
    SubmissionGrade,
)
from dockercourse.grading.submission import (
    END,
    checks_after,
    plan_checks,
    read_submission,
    sane,
    sha256_of,
)

#: Output text kept per cell (what a submission prints beyond it is dropped).
MAX_OUTPUT_CHARS = 200_000

log = logging.getLogger(__name__)

_exercise_cache: dict = {}


def _exercises(chapter: str, root: Path):
    """A chapter's exercises, loaded once per worker process."""
    key = (chapter, str(root))
    if key not in _exercise_cache:
        _exercise_cache[key] = load_exercises(chapter, root)
    return _exercise_cache[key]


# --------------------------------------------------------------------------- entry points


def grade_notebook(
    source,
    chapter: str | None = None,
    *,
    root: Path | str | None = None,
    tag: str,
    run: str | None = None,
    student: str | None = None,
    cell_timeout: float = 60,
    submission_timeout: float = 600,
    hidden: bool = True,
    kernel_name: str = "python3",
    cwd: Path | str | None = None,
    workroot: Path | str | None = None,
) -> SubmissionGrade:
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
    if not re.fullmatch(r"[a-z0-9]+", tag):  # it makes the names the namespace's cleanup removes by prefix
        raise UsageError(f"a grading namespace tag is lowercase letters and digits, not {tag!r}")
    root = Path(root or course_root()).resolve()
    g, nb, why, own = _open(source, chapter, student, hidden)
    if g.chapter is None:
        g.status = NOT_NOTEBOOK if nb is None else ERROR
        g.notes.append(why or "the notebook does not say its chapter; grade it with --chapter")
    else:
        exercises = _exercises(g.chapter, root)
        ns = Namespace(chapter=g.chapter, tag=tag, run=run or uuid.uuid4().hex[:12])
        g.namespace = ns.prefix
        if nb is None:
            g.status = NOT_NOTEBOOK
            g.notes.append(f"Not a notebook: {why}.")
            g.exercises = [
                ExerciseGrade.unchecked(e, "the file is not a notebook") for e in exercises.values()
            ]
        else:
            if own and own != g.chapter:
                g.notes.append(
                    f"The notebook says it is chapter {own}; it was graded as chapter {g.chapter}."
                )
            kernel = dict(root=root, kernel_name=kernel_name, cwd=cwd, workroot=workroot)
            _Run(
                g,
                nb,
                exercises,
                ns,
                hidden=hidden,
                cell_timeout=cell_timeout,
                submission_timeout=submission_timeout,
                deadline=t0 + submission_timeout,
            ).grade(**kernel)
    g.seconds = round(time.monotonic() - t0, 2)
    return g


def worker_task(kw: dict, started: str | None = None) -> dict:
    """Worker process entry point: grade one submission (``grade_notebook(**kw)``), always return a result.

    ``started``: a file touched first, so the batch knows which submissions were
    running when a worker process died (the others were only queued).
    """
    if started:
        Path(started).touch()
    if sandbox.init_error:  # this worker has no engine of its own: never grade on another one
        return _grader_error(kw, f"its worker's VM engine did not start: {sandbox.init_error}")
    try:
        with sandbox.boundary():  # an isolated tier's user and engine for this submission alone
            return grade_notebook(**kw).to_dict()
    except sandbox.BoundaryError as e:
        return _grader_error(kw, f"the submission's isolated engine did not start: {e}")
    except BaseException as e:  # deliberately everything: one submission must never stop the batch
        log.warning("grading %s failed: %s: %s", kw.get("source"), e.__class__.__name__, e)
        return _grader_error(kw, f"{e.__class__.__name__}: {e}")


def _grader_error(kw: dict, why: str) -> dict:
    """The result of a submission the grader could not grade (never reused by a rerun)."""
    path = Path(kw["source"])
    return SubmissionGrade(
        student=kw.get("student") or path.stem,
        file=path.name,
        sha256="",
        chapter=kw.get("chapter"),
        status=ERROR,
        notes=[f"The grader failed: {why}"],
    ).to_dict()


def _open(source, chapter: str | None, student: str | None, hidden: bool):
    """``(grade so far, notebook or None, why not a notebook, the notebook's own chapter)``."""
    path = None if isinstance(source, dict) else Path(source)
    g = SubmissionGrade(
        student=student or (path.stem if path else "notebook"),
        file=path.name if path else "",
        sha256=sha256_of(path) if path else "",
        chapter=None,
        status=OK,
        hidden=hidden,
    )
    nb, why = read_submission(path) if path is not None else sane(source)
    own = chapter_of(nb, None) if nb is not None else None
    try:
        g.chapter = chapter_number(chapter) if chapter else own
    except ValueError:  # not a chapter number: the notebook's own, as if none was given
        log.info("not a chapter: %r; grading %s as chapter %s", chapter, g.student, own)
        g.chapter = own
    return g, nb, why, own


# --------------------------------------------------------------------------- the run


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


def _cell_error(cell) -> str | None:
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            ev = str(o.get("evalue", ""))
            ev = ev if len(ev) <= 300 else ev[:300] + "…"
            return f"{o.get('ename', 'Error')}: {ev}"
    return None


class _KernelDidNotStart(Exception):
    """The kernel process ended before its first reply (its cause is jupyter_client's error)."""


class _StderrTail:
    """A pipe for a kernel's stderr, drained by a thread that keeps only its last ``keep`` bytes.

    A file would grow without bound under a submission that floods its stderr (``os.system`` with
    ``>&2``); a pipe nobody reads would block it. ``fd`` is the end the kernel writes to.
    """

    def __init__(self, keep: int = 4096):
        import threading

        self.keep, self.data = keep, b""
        r, self.fd = os.pipe()
        self._thread = threading.Thread(target=self._drain, args=(r,), daemon=True)
        self._thread.start()

    def _drain(self, r: int) -> None:
        try:
            while chunk := os.read(r, 65536):  # until every writer (the kernel, its children) is gone
                self.data = (self.data + chunk)[-self.keep :]
        finally:
            os.close(r)

    def close(self) -> None:
        """Close this process's copy of the writing end (the kernel has its own)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def text(self, chars: int = 400) -> str:
        """The last ``chars`` characters written, on one line (after waiting a moment for the rest)."""
        self.close()
        self._thread.join(timeout=2)
        text = " ".join(self.data.decode(errors="replace").split())
        return text if len(text) <= chars else "…" + text[-chars:]


class _Run:
    """One submission's run: its kernel, its cells, and the grades of its exercises so far."""

    def __init__(
        self,
        g: SubmissionGrade,
        nb,
        exercises: dict,
        ns: Namespace,
        *,
        hidden: bool,
        cell_timeout: float,
        submission_timeout: float,
        deadline: float,
    ):
        self.g, self.nb, self.cells, self.exercises, self.ns = g, nb, nb.cells, exercises, ns
        self.hidden = hidden
        self.cell_timeout, self.submission_timeout, self.deadline = cell_timeout, submission_timeout, deadline
        self.plan = plan_checks(self.cells, list(exercises))
        self.grades: dict[str, ExerciseGrade] = {}
        self.last_done = -1  # index of the last cell whose execution finished
        self.client = None

    def grade(self, *, root: Path, kernel_name: str, cwd, workroot) -> None:
        """Run the cells and the checks, clean the namespace; the results go into ``self.g``."""
        g = self.g
        self.client = engine()
        unknown = sorted(ex for ex in exercise_ids(self.cells) if ex not in self.exercises)
        if unknown:
            g.notes.append("Cells name exercises this chapter does not have: " + ", ".join(unknown) + ".")
        ident = sandbox.current()  # the worker's throwaway user: the kernel runs as it
        if cwd:
            workdir = Path(cwd)
        else:
            workdir = Path(
                tempfile.mkdtemp(prefix=f"dcgrade-{self.ns.tag}-", dir=ident.home if ident else workroot)
            )
            if ident:
                os.chown(workdir, ident.uid, ident.gid)
        env = dict(os.environ)  # the kernel's environment: the grader's, with the submission's namespace
        env.update({NS_ENV: self.ns.tag, RUN_ENV: self.ns.run, "DOCKERCOURSE_ROOT": str(root)})
        env.pop("JPY_PARENT_PID", None)
        if ident:
            env = ident.env(env)
        try:
            clean_namespace(self.client, self.ns)  # leftovers of an earlier, interrupted run with this tag
            self._run_kernel(env, workdir, kernel_name, ident)
            self._check_pending()
        except Exception as e:  # a grader problem (engine gone, kernel would not start, ...): say so in
            g.status = ERROR  # this submission's result, keep its grades so far, go on with the batch
            g.notes.append(f"The grader failed: {e.__class__.__name__}: {str(e)[:300]}")
            log.exception("grading %s failed", g.student)
        finally:
            try:
                problems = clean_namespace(self.client, self.ns)
                if problems:
                    g.notes.append("Cleanup: " + "; ".join(problems))
            except ENGINE_ERRORS as e:
                g.notes.append(f"Cleanup failed: {e.__class__.__name__}: {e}")
            if not cwd:
                shutil.rmtree(workdir, ignore_errors=True)
        g.exercises = [self.grades.get(e.id) or ExerciseGrade.unchecked(e) for e in self.exercises.values()]

    def _run_kernel(self, env: dict, workdir: Path, kernel_name: str, ident=None) -> None:
        """Run the cells in a fresh kernel. A kernel that dies before its first reply (nothing of the
        submission has run yet) is started once more; its last words go into the notes either way."""
        for attempt in (1, 2):
            stderr = _StderrTail()
            try:
                self._kernel_session(env, workdir, kernel_name, ident, stderr)
                return
            except _KernelDidNotStart as e:
                said = stderr.text()
                log.warning("the kernel of %s did not start (try %d): %s", self.g.student, attempt, said)
                if attempt == 2:
                    if said:
                        self.g.notes.append(f"The kernel's last words: {said}")
                    raise e.__cause__ from None
                self.g.notes.append(
                    f"The kernel died before it answered ({e.__cause__}); it was started once more "
                    "(nothing of the submission had run)." + (f" Its last words: {said}" if said else "")
                )
            finally:
                stderr.close()

    def _kernel_session(self, env: dict, workdir: Path, kernel_name: str, ident, stderr) -> None:
        from nbclient.exceptions import DeadKernelError

        quiet = logging.getLogger(f"{__name__}.nbclient")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        nbc = _notebook_client_class()(
            self.nb,
            timeout=int(self.cell_timeout),
            kernel_name=kernel_name,
            allow_errors=True,
            interrupt_on_timeout=False,
            shutdown_kernel="immediate",
            startup_timeout=60,
            resources={"metadata": {"path": str(workdir)}},
            log=quiet,
            **({"kernel_manager_class": sandbox.kernel_manager_class(ident)} if ident else {}),
        )
        as_user = ident.popen_kwargs() if ident else {}
        at = checks_after(self.plan)
        started = False
        try:
            with nbc.setup_kernel(
                env=env, cwd=str(workdir), stdout=subprocess.DEVNULL, stderr=stderr.fd, **as_user
            ):
                started = True
                stderr.close()  # the kernel holds its own copy
                for i, cell in enumerate(self.cells):
                    if cell.get("cell_type") == "code" and cell.get("source", "").strip():
                        if not self._run_cell(nbc, cell, i):
                            break
                    self.last_done = i
                    for ex_id, why in at.get(i, []):
                        if not self._passed(ex_id):
                            self._record(ex_id, why)
        except DeadKernelError:
            self.g.status = DIED
            self.g.notes.append("The kernel died.")
        except RuntimeError as e:  # jupyter_client: "Kernel died before replying to kernel_info"
            if started or "died before replying" not in str(e):
                raise
            raise _KernelDidNotStart() from e

    def _run_cell(self, nbc, cell, i: int) -> bool:
        """Execute one code cell; False when the run stops here (out of time, kernel dead)."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        g = self.g
        left = self.deadline - time.monotonic()
        if left < 1:
            g.status = TIMEOUT
            g.notes.append(
                f"The submission ran longer than {self.submission_timeout:g} s in all; "
                f"it was stopped before cell {i + 1}."
            )
            return False
        total_is_limit = left < self.cell_timeout
        nbc.timeout = max(1, math.ceil(min(self.cell_timeout, left)))
        nbc.budget = MAX_OUTPUT_CHARS
        try:
            nbc.execute_cell(cell, i)
        except CellTimeoutError:
            g.status = TIMEOUT
            g.notes.append(
                f"Cell {i + 1} was stopped: the submission ran longer than "
                f"{self.submission_timeout:g} s in all."
                if total_is_limit
                else f"Cell {i + 1} ran longer than {self.cell_timeout:g} s and was stopped."
            )
            return False
        except DeadKernelError:
            g.status = DIED
            g.notes.append(f"The kernel died while running cell {i + 1}.")
            return False
        err = _cell_error(cell)
        if err:
            g.cell_errors.append(f"cell {i + 1}: {err}")
        return True

    def _check_pending(self) -> None:
        """The kernel is gone: check what is still pending against the engine as it is now."""
        finished = self.g.status == OK
        for ex_id, points in self.plan.items():
            if self._passed(ex_id):
                continue
            pending = [(idx, w) for idx, w in points if idx == END or idx > self.last_done]
            if not pending:
                continue
            if finished:
                self._record(ex_id, pending[-1][1] if pending[-1][0] == END else "at the end of the notebook")
            else:
                self._record(ex_id, f"when the run stopped ({self.g.status}), before its check point")

    def _passed(self, ex_id: str) -> bool:
        return ex_id in self.grades and self.grades[ex_id].passed

    def _record(self, ex_id: str, where: str) -> None:
        res = run_exercise(self.exercises[ex_id], self.client, self.ns, hidden=self.hidden)
        self.grades[ex_id] = ExerciseGrade(
            ex_id,
            res.title,
            res.passed,
            res.message,
            res.hint,
            where,
            res.error,
            points=self.exercises[ex_id].points,
            credit=res.credit,
        )
