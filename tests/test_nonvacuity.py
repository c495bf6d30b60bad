"""Non-vacuity: every check can fail, and every check passes on its master.

For every chapter with both ``notebooks/NN_*.ipynb`` and ``checks/NN_*.py`` (in the
course and in the fixture course, so new chapters join automatically):

* the student copy (``dockercourse release``) is executed cell by cell, and every
  exercise's visible check, run by the grader's process at its check point, must
  report "not yet" (a check that cannot fail is a defect; one that errors is too);
* the master is executed the same way and every exercise must pass, hidden checks
  included;
* both must run to their end, and the student copy must raise no error in a cell
  that does not raise in the master ("later cells never depend on an exercise");
* nothing of either run is left on the engine.

Each run has a namespace of its own (``DOCKERCOURSE_NS=v<random>``), so it never
touches a learner's ``dc02-...`` resources or another run's.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import re
import uuid
from pathlib import Path

import docker
import nbformat
import pytest

from dockercourse.core.cleanup import leftovers
from dockercourse.core.namespace import Namespace
from dockercourse.grading.execute import worker_task
from dockercourse.grading.release import student_copy
from dockercourse.grading.results import SubmissionGrade
from dockercourse.i18n import LANGUAGES

HERE = Path(__file__).resolve().parent
ROOTS = [HERE.parent, HERE / "fixtures" / "course"]


#: the translated chapters graded end to end too. The grader reads code cells and their metadata only,
#: and tests/test_i18n.py proves those of every translation equal their master's; one chapter graded
#: whole shows it (each more would add a chapter's grading time to every run of the test command).
GRADED_TRANSLATIONS = ("02",)


def chapters():
    """Every chapter's master, and a translation (``notebooks/zh/``: the same checks grade it)."""
    found = []
    for root in ROOTS:
        kind = "course" if root == HERE.parent else "fixture"  # ids the engine matrix reads
        folders = [("", root / "notebooks", "[0-9][0-9]")]
        folders += [
            (f"{lang}-", root / "notebooks" / lang, n) for lang in LANGUAGES for n in GRADED_TRANSLATIONS
        ]
        for lang, folder, pattern in folders:
            for nb in sorted(folder.glob(f"{pattern}_*.ipynb")):
                if sorted((root / "checks").glob(f"{nb.name[:2]}_*.py")):
                    found.append(pytest.param(root, nb, id=f"{kind}-{lang}{nb.stem}"))
    return found


def _error_sources(grade: SubmissionGrade, nb) -> dict[str, str]:
    """{source of a cell that raised: the error it raised}."""
    out = {}
    for line in grade.cell_errors:
        m = re.match(r"cell (\d+): (.*)", line, re.S)
        if m:
            out[nb.cells[int(m.group(1)) - 1].source] = m.group(2)
    return out


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("root,master_path", chapters())
def test_checks_fail_on_student_copy_and_pass_on_master(root, master_path, tmp_path):
    master = nbformat.read(master_path, as_version=4)
    student = student_copy(master, master_path.name[:2])
    student_path = tmp_path / master_path.name
    nbformat.write(student, student_path)
    chapter = master_path.name[:2]
    tags = {"master": "v" + uuid.uuid4().hex[:8], "student": "v" + uuid.uuid4().hex[:8]}
    common = dict(chapter=chapter, root=str(root), cell_timeout=300, submission_timeout=1500)
    jobs = {
        "master": dict(source=str(master_path), tag=tags["master"], hidden=True, **common),
        "student": dict(source=str(student_path), tag=tags["student"], hidden=False, **common),
    }
    env_root = os.environ.get("DOCKERCOURSE_ROOT")
    os.environ["DOCKERCOURSE_ROOT"] = str(root)  # the spawned workers load this course's checks
    try:
        with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = {k: pool.submit(worker_task, kw) for k, kw in jobs.items()}
            res = {k: SubmissionGrade.from_dict(f.result()) for k, f in futs.items()}
    finally:
        if env_root is None:
            os.environ.pop("DOCKERCOURSE_ROOT", None)
        else:
            os.environ["DOCKERCOURSE_ROOT"] = env_root

    m, s = res["master"], res["student"]
    assert m.exercises, f"chapter {chapter} declares no exercise"
    assert m.status == "ok", f"master did not run to its end: {m.status}: {m.notes}"
    assert s.status == "ok", f"student copy did not run to its end: {s.status}: {s.notes}"
    failing = [f"{x.id}: {x.message} ({x.where})" for x in m.exercises if not x.passed]
    assert not failing, "checks that do not pass on the master:\n" + "\n".join(failing)
    vacuous = [f"{x.id} ({x.where})" for x in s.exercises if x.passed]
    assert not vacuous, "checks that pass on the student copy (they cannot fail):\n" + "\n".join(vacuous)
    broken = [f"{x.id}: {x.message}" for x in s.exercises if x.error]
    assert not broken, "checks that could not run on the student copy:\n" + "\n".join(broken)
    raised = _error_sources(s, student)
    new_errors = {f"{src}\n  -> {raised[src]}" for src in raised.keys() - _error_sources(m, master).keys()}
    assert not new_errors, (
        "cells of the student copy that raise although they do not in the master "
        "(later cells must not depend on an exercise):\n" + "\n---\n".join(new_errors)
    )

    client = docker.from_env()
    for tag in tags.values():
        left = leftovers(client, namespace=Namespace(chapter=chapter, tag=tag))
        assert not any(left.values()), f"left on the engine: {left}"
