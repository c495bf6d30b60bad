"""The chapter manifest (chapters.toml) against the course's files and the README."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from dockercourse.core import chapters
from dockercourse.core.images import COURSE_IMAGES
from dockercourse.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def test_every_chapter_has_its_files_and_every_notebook_its_entry():
    listed = chapters.load(ROOT)
    assert [c.number for c in listed] == sorted(c.number for c in listed)
    for ch in listed:
        for path in (ch.notebook(ROOT), ch.lesson(ROOT), ch.checks(ROOT)):
            assert path.is_file(), f"chapter {ch.number}: {path} is missing"
    on_disk = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert on_disk == [c.stem for c in listed]


def test_declared_images_cover_what_each_notebook_uses():
    names = {
        "BUSYBOX": "busybox",
        "DEBIAN": "debian",
        "PYTHON": "python",
        "NGINX": "nginx",
        "REGISTRY": "registry",
        "BUILDER": "builder",
    }
    for ch in chapters.load(ROOT):
        code = "\n".join(
            c.source for c in nbformat.read(ch.notebook(ROOT), as_version=4).cells if c.cell_type == "code"
        )
        used = {role for name, role in names.items() if re.search(rf"\b{name}\b", code)}
        if "COURSE_IMAGES" in code:
            used |= set(COURSE_IMAGES)
        assert used <= set(ch.images), f"chapter {ch.number} uses {sorted(used - set(ch.images))} too"


def test_readme_table_lists_every_chapter():
    readme = (ROOT / "README.md").read_text()
    for ch in chapters.load(ROOT):
        row = (
            f"| {ch.number} | {ch.title} | [{ch.stem}.ipynb](notebooks/{ch.stem}.ipynb) | "
            f"[{ch.stem}.md](lessons/{ch.stem}.md) |"
        )
        assert row in readme, f"README's chapter table lacks:\n{row}"


def test_bad_manifests_say_what_is_wrong(tmp_path):
    with pytest.raises(UsageError, match="chapters.toml is missing"):
        chapters.load(tmp_path)
    (tmp_path / "chapters.toml").write_text('[[chapter]]\nnumber = "01"\nslug = "x"\n')
    with pytest.raises(UsageError, match="chapter entry 1 lacks"):
        chapters.load(tmp_path)
    (tmp_path / "chapters.toml").write_text(
        '[[chapter]]\nnumber = "01"\nslug = "x"\ntitle = "t"\nteaching = 1\n'
        'exercises = 1\nimages = ["ubuntu"]\n'
    )
    with pytest.raises(UsageError, match="unknown images"):
        chapters.load(tmp_path)
    (tmp_path / "chapters.toml").write_text("not toml [")
    with pytest.raises(UsageError, match="not valid TOML"):
        chapters.load(tmp_path)


def test_get_by_number():
    assert chapters.get(ROOT, "8").image_refs == [COURSE_IMAGES["busybox"], COURSE_IMAGES["builder"]]
    with pytest.raises(UsageError, match="no chapter 99"):
        chapters.get(ROOT, "99")


def test_committed_setup_cells_were_recorded_on_a_clean_engine():
    """A chapter recorded after an interrupted run keeps "removed 1 containers ..." as its expected
    output, and every clean run then fails its first cell (chapter 01 did, 2026-12-06)."""
    for ch in chapters.load(ROOT):
        nb = nbformat.read(ch.notebook(ROOT), as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        text = "".join(o.get("text", "") for o in first.get("outputs", []))
        assert "Leftovers of an earlier run: none." in text, (
            f"{ch.notebook(ROOT).name}: its setup cell was recorded on an engine with leftovers; record it "
            "again (tools/execute.py) after a clean run"
        )
