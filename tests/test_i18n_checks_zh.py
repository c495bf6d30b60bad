"""Every exercise's check, failing on a real engine, reads in Chinese in a Chinese notebook.

The messages a check shows carry values only known at run time (names, states, ports): each is matched
against the catalog's templates (dockercourse.i18n.messages). Run against a namespace where nothing was
made, every exercise of every chapter fails its first check: its message and its hint must come out in
Chinese, and in English by default.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dockercourse.checks import load_exercises
from dockercourse.checks.runner import run_exercise
from dockercourse.core import chapters
from dockercourse.core.namespace import Namespace
from dockercourse.i18n.messages import tr

ROOT = Path(__file__).resolve().parents[1]


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize("number", [c.number for c in chapters.load(ROOT)])
def test_a_failing_check_reads_in_chinese(engine, number):
    ns = Namespace(chapter=number, tag="t" + uuid.uuid4().hex[:6])  # nothing of this run exists
    results = [run_exercise(ex, engine, ns, wait=0) for ex in load_exercises(number).values()]
    assert results and not any(r.passed or r.error for r in results), [r.line for r in results]
    for r in results:
        assert not _chinese(r.line), r.line  # English unless the notebook is Chinese
        for text in (r.title, r.message, r.nudge or r.hint, r.hint):
            assert _chinese(tr(text, "zh")), f"{r.exercise}: not in the catalog: {text!r}"
    assert engine.containers.list(all=True, filters=ns.filters()) == []
