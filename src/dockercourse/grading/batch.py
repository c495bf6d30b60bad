"""Grading a folder: one submission per student, graded by a pool of worker processes.

Every regular file of the folder is one submission (its stem is the student id), graded in
a namespace of its own (``g<batch><k>``) by :func:`dockercourse.grading.execute.grade_notebook`
in a spawned worker process. A submission's failure never stops the batch: a worker process
killed by a submission breaks the pool; the submissions that had not started go back to the
queue, and each one that had started is graded again, alone, in a fresh worker, so the
innocent get their grade and the culprit gets ``kernel died``.

Outputs in ``out``: ``grades.csv``, ``feedback/<student>.html`` and ``results/<student>.json``;
a rerun reuses the results of unchanged files unless ``force``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import secrets
import shutil
import sys
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from dockercourse.checks import course_root, load_exercises
from dockercourse.core.namespace import chapter_number
from dockercourse.errors import CourseError, UsageError
from dockercourse.grading import report
from dockercourse.grading.execute import worker_task
from dockercourse.grading.namespaces import sweep_batch, sweep_tag
from dockercourse.grading.results import (
    DIED,
    ERROR,
    GRADER_VERSION,
    BatchReport,
    ExerciseGrade,
    SubmissionGrade,
)
from dockercourse.grading.submission import (
    detect_chapter,
    read_submission,
    sha256_of,
    student_ids,
    submissions,
)

log = logging.getLogger(__name__)

#: where submissions run: ``auto`` picks the first isolated tier this machine can run (see
#: :func:`choose_engine`); ``host`` (the engine DOCKER_HOST names) only for trusted submissions
ENGINES = ("auto", "rootless", "vm", "host")


def grade_folder(
    folder: Path | str,
    out: Path | str,
    *,
    chapter: str | None = None,
    root: Path | str | None = None,
    jobs: int = 1,
    force: bool = False,
    cell_timeout: float = 60,
    submission_timeout: float = 600,
    kernel_name: str = "python3",
    progress: bool = True,
    files: list[Path] | None = None,
    engine: str = "auto",
    vm_memory_mb: int | None = None,
    students: dict[Path, str] | None = None,
    annotate: dict[Path, dict] | None = None,
) -> BatchReport:
    """Grade every submission in ``folder``; write grades.csv, feedback/ and results/ into ``out``.

    ``students`` gives the student id of each file (default: its stem, see ``student_ids``);
    ``annotate`` sets fields of a file's grade after grading (the LMS's file name as ``file``,
    ``submitted_at``, ``late_days``, ``penalty``, ``notes`` added), e.g. from
    :mod:`dockercourse.grading.intake` and :mod:`dockercourse.grading.late`.

    ``engine`` (see docs/grading.md, "Isolation"): ``rootless`` gives every worker process a
    throwaway unprivileged user and a rootless Docker engine of its own
    (:mod:`dockercourse.grading.sandbox`); ``vm`` a throwaway Docker engine in a qemu VM
    (``dockercourse.vm.engine.worker_init``), and, when the grader is root, a throwaway user
    for its kernels too; ``host`` the engine DOCKER_HOST names, shared with everything on it:
    for trusted submissions only. ``auto`` (the default) is :func:`choose_engine`.
    """
    asked = choose_engine(engine)  # fails early when the tier cannot run here
    t0 = time.monotonic()
    folder, out = Path(folder), Path(out)
    root = Path(root or course_root()).resolve()
    files = sorted(files) if files is not None else submissions(folder)
    chapter = chapter_number(chapter) if chapter else detect_chapter(files)
    try:
        exercises = load_exercises(chapter, root)
    except FileNotFoundError as e:
        raise CourseError(f"the submissions are of chapter {chapter}, but {e}; give --chapter") from None
    engine, note = engine_for_chapter(asked, root, chapter, auto=engine == "auto")
    ids = {p: (students or {}).get(p) or i for p, i in student_ids(files).items()}
    out.mkdir(parents=True, exist_ok=True)
    results = {} if force else _reusable(files, ids, out, chapter, list(exercises))
    todo = [p for p in files if p not in results]
    reused = len(results)
    common = dict(
        chapter=chapter,
        root=str(root),
        cell_timeout=cell_timeout,
        submission_timeout=submission_timeout,
        kernel_name=kernel_name,
    )
    pool = _pool_args(engine, root, chapter, vm_memory_mb) if todo else {}
    run = _Batch(chapter, exercises, ids, out, results, common, pool, engine)
    try:
        run.grade(todo, max(1, jobs), progress)
    finally:
        run.close()
    grades = [results[p] for p in files if p in results]
    for p, fields in (annotate or {}).items():
        if p in results and _annotate(results[p], fields):
            report.write_result(out, results[p])
    report.write_csv(out / "grades.csv", grades, list(exercises))
    took = round(time.monotonic() - t0, 2)
    exs = list(exercises)
    return BatchReport(chapter, exs, grades, len(todo), reused, took, run.batch, out, engine, note)


def _annotate(g: SubmissionGrade, fields: dict) -> bool:
    """Set ``fields`` on ``g`` (``notes`` are added once); whether anything changed."""
    changed = False
    for k, v in fields.items():
        if k == "notes":
            new = [n for n in v if n not in g.notes]
            g.notes += new
            changed |= bool(new)
        elif getattr(g, k) != v:
            setattr(g, k, v)
            changed = True
    return changed


def _reusable(
    files: list[Path], ids: dict[Path, str], out: Path, chapter: str, exercises: list[str]
) -> dict[Path, SubmissionGrade]:
    """The results of an earlier run still good for these files: same file, grader, chapter, exercises."""
    found = {}
    for p in files:
        try:
            old = report.read_result(out, ids[p])
            if (
                old is not None
                and old.version == GRADER_VERSION
                and old.sha256 == sha256_of(p)
                and old.chapter == chapter
                and old.status != ERROR
                and [e.id for e in old.exercises] == exercises
            ):
                found[p] = old
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:  # unreadable: grade it again
            log.info("not reusing the earlier result of %s: %s: %s", ids[p], e.__class__.__name__, e)
    return found


def choose_engine(engine: str = "auto") -> str:
    """The isolation tier to grade on: ``engine`` itself, checked; ``auto``: ``rootless`` where it
    can run (root, rootlesskit, slirp4netns, uidmap: the native speed of the host's kernel), else
    ``vm`` (no privileges needed; qemu), else a :class:`UsageError` saying what to install."""
    from dockercourse.grading import sandbox

    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "host":
        return engine
    rootless = sandbox.rootless_missing()
    if engine == "rootless" and rootless:
        raise UsageError(
            f"--engine rootless needs {', '.join(rootless)}; on Debian or Ubuntu, as root: "
            f"apt-get install {sandbox.APT_PACKAGES}"
        )
    if engine == "auto":
        if not rootless:
            return "rootless"
        if _vm_missing():
            raise UsageError(
                "no isolated engine to grade on here. As root, install the rootless engine's packages "
                f"(apt-get install {sandbox.APT_PACKAGES}) or qemu (apt-get install qemu-system-x86); "
                "or, for submissions you trust, grade on this machine's engine: "
                "--engine host --trust-submissions"
            )
        return "vm"
    if engine == "vm" and _vm_missing():
        raise UsageError("--engine vm needs " + ", ".join(_vm_missing()))
    return engine


def engine_for_chapter(tier: str, root: Path, chapter: str, *, auto: bool) -> tuple[str, str]:
    """The tier for this chapter, and why when it differs: a chapter whose exercises need limits
    enforced (``needs = ["limits"]`` in chapters.toml) is not graded on a rootless engine that cannot
    enforce them (no cgroup v2 delegation): ``auto`` takes the VM tier instead, an explicit
    ``rootless`` keeps its tier and says which grades that makes wrong."""
    from dockercourse.core import chapters
    from dockercourse.grading import sandbox

    if tier != "rootless":
        return tier, ""
    try:
        needs = chapters.get(root, chapter).needs
    except CourseError:  # a course without a manifest entry for it: nothing declared
        needs = ()
    if "limits" not in needs or sandbox.rootless_limits():
        return tier, ""
    why = (
        f"chapter {chapter}'s exercises need memory limits enforced, which a rootless engine cannot do "
        "on this host (cgroup v1, or cgroup v2 without delegation)"
    )
    if auto and not _vm_missing():
        return "vm", why
    return tier, why + ": correct answers to those exercises will be marked wrong"


def _vm_missing() -> list[str]:
    from dockercourse.vm import engine as vm

    return vm.requirements()


def _pool_args(engine: str, root: Path, chapter: str, vm_memory_mb: int | None) -> dict:
    """``ProcessPoolExecutor`` arguments of the workers: their user and engine (rootless, vm)."""
    if engine == "host":
        return {}
    from dockercourse.grading import sandbox

    python = sandbox.kernel_python(root)
    if engine == "rootless":
        sandbox.ensure_rootless_binaries()
    sandbox.reap_stale()  # what workers of an earlier, killed run left
    images = images_for_chapter(root, chapter)
    vm_args: tuple = ()
    if engine == "vm":
        from dockercourse.vm import engine as vm

        vm.build(images, log=lambda *_: None)  # once, before the workers share the disk read-only
        vm_args = (images, vm_memory_mb or vm.DEFAULT_MEMORY_MB)
    return dict(initializer=sandbox.worker_init, initargs=(engine, images, vm_args, python))


#: ``from dockercourse import BUSYBOX, ...`` (or from ``dockercourse.core.images``) in a notebook's source.


def images_for_chapter(root: Path, chapter: str) -> list[str]:
    """The pinned course images a chapter uses, from the course's chapter manifest (for a VM engine)."""
    from dockercourse.core import chapters

    return chapters.get(root, chapter).image_refs


class _Batch:
    """One run of the pool over the submissions to grade, with its tags, progress and results."""

    def __init__(
        self,
        chapter: str,
        exercises: dict,
        ids: dict[Path, str],
        out: Path,
        results: dict[Path, SubmissionGrade],
        common: dict,
        pool_args: dict,
        engine: str = "host",
    ):
        self.chapter, self.exercises, self.ids, self.out = chapter, exercises, ids, out
        self.results, self.pool_args = results, pool_args
        self.shared = engine == "host"  # one engine for all: sweep it after a worker died, and at the end
        self.batch = secrets.token_hex(3)
        self.marks = Path(tempfile.mkdtemp(prefix=f"dcgrade-{self.batch}-"))  # start marks, kernels' folders
        self.common = dict(common, workroot=str(self.marks))
        self.tags: dict[Path, str] = {}
        self.retries = 0
        self.bar = None

    def grade(self, todo: list[Path], jobs: int, progress: bool) -> None:
        from tqdm import tqdm

        self.tags = {p: f"g{self.batch}{k}" for k, p in enumerate(todo, 1)}
        self.bar = tqdm(
            total=len(todo),
            desc=f"grading chapter {self.chapter}",
            unit="nb",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        # a file that is not a notebook starts no kernel: graded here, without a worker process
        junk = [p for p in todo if read_submission(p)[0] is None]
        for p in junk:
            self._finish(p, worker_task(self._kwargs(p)))
        queue = [p for p in todo if p not in junk]
        while queue:
            lost = self._run_pool(queue, jobs)
            # A worker process died (e.g. a submission killed its parent process). Every pending
            # future fails with it: the ones never started go back to the queue; the ones that
            # had started are suspects, each graded again alone, so the innocent get their grade.
            suspects = [p for p in lost if self._started(p).exists()] or lost
            queue = [p for p in lost if p not in suspects]
            for p in queue:
                self._new_tag(p)
            for p in suspects:
                tag = self._new_tag(p)
                if self._run_pool([p], 1) and self.shared:
                    sweep_tag(self.chapter, tag)
                    self._finish(p, self._killed_worker(p, tag).to_dict())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        shutil.rmtree(self.marks, ignore_errors=True)
        if self.shared:
            sweep_batch(self.chapter, self.batch)
        else:  # each submission's user and engine went after it; a killed worker's go here
            from dockercourse.grading import sandbox

            sandbox.reap_stale()

    def _run_pool(self, items: list[Path], workers: int) -> list[Path]:
        """Grade ``items`` in a pool; the ones a dying worker took down with it."""
        lost = []
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **self.pool_args) as pool:
            futs = {pool.submit(worker_task, self._kwargs(p), str(self._started(p))): p for p in items}
            for fut in cf.as_completed(futs):
                p = futs[fut]
                try:
                    self._finish(p, fut.result())
                except BrokenProcessPool:
                    lost.append(p)
        return lost

    def _kwargs(self, p: Path) -> dict:
        return dict(source=str(p), student=self.ids[p], tag=self.tags[p], **self.common)

    def _started(self, p: Path) -> Path:
        return self.marks / f"{self.tags[p]}.started"

    def _new_tag(self, p: Path) -> str:
        if self.shared:
            sweep_tag(self.chapter, self.tags[p])  # what the interrupted attempt left
        self.retries += 1
        self.tags[p] = f"g{self.batch}r{self.retries}"
        return self.tags[p]

    def _finish(self, p: Path, d: dict) -> None:
        g = SubmissionGrade.from_dict(d)
        g.student = self.ids[p]
        self.results[p] = g
        report.write_result(self.out, g)
        self.bar.update(1)

    def _killed_worker(self, p: Path, tag: str) -> SubmissionGrade:
        """The grade of a submission that killed its worker process even when graded alone."""
        return SubmissionGrade(
            student=self.ids[p],
            file=p.name,
            sha256=sha256_of(p),
            chapter=self.chapter,
            status=DIED,
            exercises=[ExerciseGrade.unchecked(e) for e in self.exercises.values()],
            notes=["The submission killed the grader's worker process, so nothing could be checked."],
            namespace=f"dc{self.chapter}{tag}-",
        )
