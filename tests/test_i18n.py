"""The translated notebooks (issue 18): catalogs keyed by cell id and English hash, build and check.

The check is what keeps the languages in sync: these tests prove it names a changed English cell, a
missing translation and a hand-edited translated notebook, and that the repository's own catalogs and
notebooks are current (the test command's gate: a change to an English cell fails it until translated).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dockercourse.core.notebooks import cell_part, exercise_ids
from dockercourse.i18n import lessons
from dockercourse.i18n import notebooks as tr
from dockercourse.i18n.catalog import Catalog, source_hash

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
STEM = "02_core_concepts"


def _copy(tmp_path: Path) -> Path:
    """A course folder with chapter 02's master, its zh catalog and its zh notebook."""
    parts = ("chapters.toml", f"notebooks/{STEM}.ipynb", f"i18n/zh/{STEM}.yml", f"notebooks/zh/{STEM}.ipynb")
    for rel in parts:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_the_repository_translations_are_current():
    problems, untranslated = tr.check(ROOT, "zh")
    assert problems == [], "\n".join(map(str, problems)) + "\n(fix: see docs/i18n.md)"
    assert untranslated == []


def test_a_changed_english_cell_is_named_until_its_translation_follows(tmp_path):
    root = _copy(tmp_path)
    master_path = root / "notebooks" / f"{STEM}.ipynb"
    nb = nbformat.read(master_path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("A tag is only"))
    cell.source += " Tags cost nothing."
    nbformat.write(nb, master_path)
    problems, _ = tr.check(root, "zh")
    named = [p for p in problems if p.where.endswith(f":{cell.id}")]
    assert len(named) == 1 and named[0].what.startswith("stale:"), problems
    assert source_hash(cell.source) in named[0].what  # the hash to write once the text is updated
    # the translated notebook still matches its (old) catalog text: only the catalog is stale
    assert [p for p in problems if p.where.endswith(".ipynb")] == []
    # the translator updates the entry: the check is clean again
    cat_path = Catalog.path(root, "zh", STEM)
    cat = Catalog.load(cat_path)
    cat.cells[cell.id].text += " 打标签不花任何代价。"
    cat.cells[cell.id].en = source_hash(cell.source)
    cat.save(cat_path)
    assert [str(p) for p in tr.check(root, "zh")[0]] == [
        f"notebooks/zh/{STEM}.ipynb: differs from its master and catalog (edited by hand, or not rebuilt): "
        "change the catalog or the master, then run `dockercourse i18n build`"
    ]
    tr.build(root, "zh")
    assert tr.check(root, "zh")[0] == []


def test_missing_translations_orphans_and_hand_edits_are_named(tmp_path):
    root = _copy(tmp_path)
    cat_path = Catalog.path(root, "zh", STEM)
    cat = Catalog.load(cat_path)
    first, second = list(cat.cells)[:2]
    del cat.cells[first]
    cat.cells[second].text = "  "
    cat.cells["deadbeef"] = cat.cells[list(cat.cells)[-1]]
    cat.save(cat_path)
    out = root / "notebooks" / "zh" / f"{STEM}.ipynb"
    nb = nbformat.read(out, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "check(" in c.source)
    code.source = code.source.replace("check(", "check (")
    nbformat.write(nb, out)
    problems = {p.where.rsplit(":", 1)[-1]: p.what for p in tr.check(root, "zh")[0]}
    assert problems[first].startswith("not translated: '# 02 · Core concepts")
    assert problems[second].startswith("not translated: '## Setup'")
    assert problems["deadbeef"].startswith("no markdown cell of the master has this id")
    assert problems[f"notebooks/zh/{STEM}.ipynb"].startswith("differs from its master and catalog")
    # extract gives the translator the missing entry back, with the current hash, and drops the orphan
    path, added, dropped = tr.extract(root, "zh", "02")
    again = Catalog.load(path)
    assert (added, dropped) == (1, 1) and first in again.cells and "deadbeef" not in again.cells
    assert list(again.cells)[0] == first and again.cells[first].text == ""


def test_a_translated_notebook_is_the_master_with_translated_markdown():
    master = nbformat.read(ROOT / "notebooks" / f"{STEM}.ipynb", as_version=4)
    zh = nbformat.read(ROOT / "notebooks" / "zh" / f"{STEM}.ipynb", as_version=4)
    assert [c.id for c in zh.cells] == [c.id for c in master.cells]
    for m, z in zip(master.cells, zh.cells, strict=True):
        # exercise parts, hidden solutions: release and grading read them (a run's timings are its own)
        assert tr._recorded(z) == tr._recorded(m)
        if m.cell_type == "code":
            assert z.source == m.source
        else:
            assert z.source != m.source and any("\u4e00" <= ch <= "\u9fff" for ch in z.source), m.id
    assert exercise_ids(zh.cells) == exercise_ids(master.cells) == ["02.hello", "02.writable", "02.tag"]
    assert [cell_part(c) for c in zh.cells] == [cell_part(c) for c in master.cells]
    assert zh.metadata["dockercourse"]["language"] == "zh"


def test_a_catalog_keeps_its_texts_exactly(tmp_path):
    cat = Catalog.load(Catalog.path(ROOT, "zh", STEM))
    p = tmp_path / "c.yml"
    cat.save(p)
    assert Catalog.load(p) == cat
    assert p.read_text(encoding="utf-8") == Catalog.path(ROOT, "zh", STEM).read_text(encoding="utf-8")


def test_the_command_line(tmp_path):
    run = [sys.executable, "-m", "dockercourse.cli"]
    ok = subprocess.run([*run, "i18n", "check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1] == "zh: every catalog, notebook, lesson and message is current"
    bad = subprocess.run([*run, "i18n", "check", "--lang", "fr"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "dockercourse i18n: no catalogs for language 'fr'; the course has: zh"


# ----------------------------------------------------------------------------- lessons


def test_the_repository_lessons_are_current():
    problems, untranslated = lessons.check(ROOT, "zh")
    assert problems == [], "\n".join(map(str, problems)) + "\n(fix: see docs/i18n.md)"
    assert untranslated == []


def test_a_lesson_is_cut_at_its_headings_and_loses_nothing():
    for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.md")):
        text = path.read_text(encoding="utf-8")
        parts = lessons.sections(text)
        assert parts[0][0] == "front-matter" and len({k for k, _ in parts}) == len(parts), path.name
        kept = [line for _, body in parts for line in body.splitlines() if line.strip()]
        assert kept == [line for line in text.splitlines() if line.strip()], path.name
    fenced = "# T\n\n```bash\n# a comment, not a heading\n```\n\n## T\n\nx\n"
    assert [k for k, _ in lessons.sections(fenced)] == ["t", "t-2"]


def test_a_changed_english_section_is_named(tmp_path):
    root = _copy(tmp_path)
    for rel in (f"lessons/{STEM}.md", f"i18n/zh/lessons/{STEM}.yml", f"lessons/zh/{STEM}.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    assert lessons.check(root, "zh")[0] == []
    english = root / "lessons" / f"{STEM}.md"
    english.write_text(
        english.read_text().replace("## Key points\n", "## Key points\n\n- Layers are shared.\n")
    )
    problems = lessons.check(root, "zh")[0]
    assert [p.where for p in problems] == [f"i18n/zh/lessons/{STEM}.yml:key-points"]
    assert problems[0].what.startswith("stale: the English section changed")
    (root / "lessons" / "zh" / f"{STEM}.md").write_text("# 改过了\n")
    assert any(p.what.startswith("differs from its lesson") for p in lessons.check(root, "zh")[0])


def _front_matter(text: str) -> dict:
    import yaml

    return yaml.safe_load(text.split("---", 2)[1])


def test_a_translated_lesson_keeps_its_chapter_and_points_at_its_notebook():
    for path in sorted((ROOT / "lessons" / "zh").glob("*.md")):
        zh = _front_matter(path.read_text(encoding="utf-8"))
        en = _front_matter((ROOT / "lessons" / path.name).read_text(encoding="utf-8"))
        assert set(zh) == set(en), path.name
        for key in set(en) - {"title", "notebook", "checks"}:
            assert zh[key] == en[key], (path.name, key)
        for key, want in (
            ("notebook", f"notebooks/zh/{path.stem}.ipynb"),
            ("checks", f"checks/{path.stem}.py"),
        ):
            if key not in zh:
                continue
            value = zh[key]
            target = (path.parent / value) if value.startswith("../") else (ROOT / value)
            assert target.resolve() == (ROOT / want).resolve() and target.exists(), (path.name, key, value)


def test_a_changed_code_cell_needs_a_rebuild_and_recorded_outputs_stay_the_translations_own(tmp_path):
    # the translated notebook's outputs are its own run's (in its language): a master re-recorded changes
    # nothing there; a master's changed code cell is named until rebuilt, and then has the master's outputs
    # until the translated notebook is run again (strict nbval compares them with what the cell prints)
    root = _copy(tmp_path)
    master_path = root / "notebooks" / f"{STEM}.ipynb"
    zh_path = root / "notebooks" / "zh" / f"{STEM}.ipynb"
    own = {c.id: c.outputs for c in nbformat.read(zh_path, as_version=4).cells if c.cell_type == "code"}
    nb = nbformat.read(master_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")]
    recorded, changed = code[0], code[1]
    recorded.outputs = [nbformat.v4.new_output("stream", name="stdout", text="recorded again\n")]
    nbformat.write(nb, master_path)
    assert tr.check(root, "zh")[0] == []
    changed.source += "\nprint('one more line')"
    changed.outputs = [nbformat.v4.new_output("stream", name="stdout", text="new output\n")]
    nbformat.write(nb, master_path)
    assert [p.where for p in tr.check(root, "zh")[0]] == [f"notebooks/zh/{STEM}.ipynb"]
    tr.build(root, "zh")
    assert tr.check(root, "zh")[0] == []
    zh = {c.id: c for c in nbformat.read(zh_path, as_version=4).cells}
    assert zh[recorded.id].outputs == own[recorded.id]  # its own, not the master's re-recording
    assert zh[changed.id].source == changed.source and zh[changed.id].outputs[0]["text"] == "new output\n"


def test_the_notebooks_record_no_font_warning_and_no_path_of_the_checkout():
    # a figure drawn before its CJK font was in place warns once per character ("Glyph … missing from
    # font(s) DejaVu Sans", with this checkout's path): such an output would fail strict nbval elsewhere
    masters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in masters + sorted((ROOT / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                assert "missing from font" not in text, (path.name, cell.id, text[:200])
                assert str(ROOT) not in text, (path.name, cell.id, text[:200])
