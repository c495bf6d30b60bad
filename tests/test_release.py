"""`dockercourse release`: student copies, reproducible, and `--check` for stale copies."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from dockercourse.cli import main as dockercourse
from dockercourse.core import notebooks as N
from dockercourse.grading import release as R

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "course"
MASTER = FIXTURE / "notebooks" / "90_fixture.ipynb"


def release(*args: str) -> int:
    """``dockercourse release --root <the fixture course> ARGS``; its exit status."""
    return dockercourse(["release", "--root", str(FIXTURE), *args])


def all_masters():
    return [p for root in (HERE.parent, FIXTURE) for p in N.masters(root)]


@pytest.mark.unit
@pytest.mark.parametrize("path", all_masters(), ids=lambda p: p.stem)
def test_student_copy_shape(path):
    m = nbformat.read(path, as_version=4)
    s = R.student_copy(m, path.name[:2])
    kept = [c for c in m.cells if N.cell_part(c)[1] != "solution"]
    assert len(s.cells) == len(kept)
    assert not [c for c in s.cells if N.cell_part(c)[1] == "solution"]
    for mc, sc in zip(kept, s.cells, strict=True):
        assert sc.source == mc.source and sc.cell_type == mc.cell_type
        if mc.cell_type == "code" and (
            N.cell_part(mc)[1] in ("answer", "check") or R.PROGRESS_CALL in mc.source
        ):
            assert sc.outputs == [] and sc.execution_count is None
        else:
            assert sc == mc  # everything else intact, outputs included
    assert s.metadata["dockercourse"]["chapter"] == path.name[:2]
    assert m.cells and len(m.cells) >= len(s.cells)  # the master is not modified
    nbformat.validate(s)


@pytest.mark.unit
def test_fixture_has_all_parts():
    m = nbformat.read(MASTER, as_version=4)
    parts = [N.cell_part(c) for c in m.cells if N.cell_part(c)[0]]
    assert len(parts) == 12
    assert R.lint(m, MASTER, FIXTURE) == []
    s = R.student_copy(m)
    assert sum(1 for c in s.cells if N.cell_part(c)[1] == "solution") == 0
    assert 'client.containers.run(BUSYBOX, "echo hello"' not in R.dumps(s)


@pytest.mark.unit
def test_lint_finds_problems():
    m = nbformat.read(MASTER, as_version=4)
    sol = next(c for c in m.cells if N.cell_part(c)[1] == "solution")
    del sol.metadata["jupyter"]
    del m.cells[next(i for i, c in enumerate(m.cells) if N.cell_part(c) == ("90.volume", "check"))]
    problems = "\n".join(R.lint(m, MASTER, FIXTURE))
    assert "source_hidden" in problems and "90.volume has no check" in problems


@pytest.mark.unit
def test_release_reproducible_and_check(tmp_path, capsys):
    out = tmp_path / "student"
    assert release("--out", str(out), "--check") == 0  # nothing checked in yet
    assert "none checked in" in capsys.readouterr().out
    assert release("--out", str(out), "-q") == 0
    copy = out / MASTER.name
    first = copy.read_bytes()
    assert release("--out", str(out), "-q") == 0
    assert copy.read_bytes() == first  # byte-for-byte reproducible
    assert release("--out", str(out), "--check") == 0

    # A master edited after the release makes the copy stale (one master from here on: the other
    # fixture chapter's copy goes, or it would be a copy without a master).
    (out / "91_fixture2.ipynb").unlink()
    master = tmp_path / "notebooks" / MASTER.name
    master.parent.mkdir()
    master.write_bytes(MASTER.read_bytes())
    nb = nbformat.read(master, as_version=4)
    nb.cells[0].source += "\n\nEdited."
    nbformat.write(nb, master)
    assert release("--out", str(out), "--check", str(master)) == 1
    assert "differs" in capsys.readouterr().err
    assert release("--out", str(out), "-q", str(master)) == 0
    assert release("--out", str(out), "--check", str(master)) == 0

    # A copy without a master, or a master without a copy, is stale too.
    (out / "99_orphan.ipynb").write_text("{}")
    assert release("--out", str(out), "--check", str(master)) == 1
    (out / "99_orphan.ipynb").unlink()
    copy.unlink()
    (out / "other.ipynb").write_text("{}")
    assert release("--out", str(out), "--check", str(master)) == 1


@pytest.mark.unit
def test_cli_dispatch(tmp_path):
    assert dockercourse(["release", "--root", str(FIXTURE), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / MASTER.name).exists()


@pytest.mark.unit
def test_release_usage_errors(tmp_path, capsys):
    assert release("--out", str(tmp_path), str(tmp_path / "missing.ipynb")) == 2
    assert "no such notebook" in capsys.readouterr().err
    assert dockercourse(["release", "--root", str(tmp_path)]) == 2  # a folder without notebooks/
    assert "no notebooks/NN_*.ipynb" in capsys.readouterr().err


# --------------------------------------------------------------------------- the notebook format


def cell(meta, cell_type="code"):
    return {"cell_type": cell_type, "source": "", "metadata": meta}


@pytest.mark.unit
def test_cell_metadata_helpers():
    ok = cell({"dockercourse": {"exercise": "02.hello", "part": "answer"}})
    assert N.cell_meta(ok) == {"exercise": "02.hello", "part": "answer"}
    assert N.cell_part(ok) == ("02.hello", "answer")
    for bad in (
        cell({}),
        cell({"dockercourse": "x"}),
        cell({"dockercourse": {"exercise": 2, "part": "answer"}}),
        cell({"dockercourse": {"exercise": "02.hello"}}),
        {"cell_type": "code"},
        "not a cell",
        None,
    ):
        assert N.cell_part(bad) == (None, None)
    assert N.cell_meta({"metadata": []}) == {} and N.cell_meta(None) == {}
    cells = [
        cell({"dockercourse": {"exercise": e, "part": p}})
        for e, p in [("02.b", "task"), ("02.a", "answer"), ("02.b", "check"), ("02.a", "check")]
    ] + [cell({})]
    assert N.exercise_ids(cells) == ["02.b", "02.a"]
    assert N.PARTS == ("task", "answer", "solution", "check") and N.META == "dockercourse"


@pytest.mark.unit
def test_chapter_of_and_masters(tmp_path):
    assert N.chapter_of({"metadata": {"dockercourse": {"chapter": "2"}}}) == "02"
    assert N.chapter_of({"metadata": {"dockercourse": {"chapter": "03_images"}}}, "05_x.ipynb") == "03"
    assert N.chapter_of({"metadata": {"dockercourse": {"chapter": "nope"}}}, "05_x.ipynb") == "05"
    assert N.chapter_of({"metadata": {}}, Path("/a/07_ports.ipynb")) == "07"
    assert N.chapter_of({"metadata": {}}, "ports.ipynb") is None and N.chapter_of(None) is None
    (tmp_path / "notebooks").mkdir()
    for name in ("02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "3_c.ipynb"):
        (tmp_path / "notebooks" / name).write_text("{}")
    (tmp_path / "notebooks" / "04_dir.ipynb").mkdir()
    assert [p.name for p in N.masters(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in N.masters(FIXTURE)] == [MASTER.name, "91_fixture2.ipynb"]
