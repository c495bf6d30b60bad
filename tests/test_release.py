"""`dockercourse release`: student copies, reproducible, and `--check` for stale copies."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from dockercourse.grading import release as R

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "course"
MASTER = FIXTURE / "notebooks" / "90_fixture.ipynb"


def all_masters():
    return [p for root in (HERE.parent, FIXTURE) for p in R.masters(root)]


@pytest.mark.parametrize("path", all_masters(), ids=lambda p: p.stem)
def test_student_copy_shape(path):
    m = nbformat.read(path, as_version=4)
    s = R.student_copy(m, path.name[:2])
    kept = [c for c in m.cells if R.cell_part(c)[1] != "solution"]
    assert len(s.cells) == len(kept)
    assert not [c for c in s.cells if R.cell_part(c)[1] == "solution"]
    for mc, sc in zip(kept, s.cells):
        assert sc.source == mc.source and sc.cell_type == mc.cell_type
        if mc.cell_type == "code" and (R.cell_part(mc)[1] in ("answer", "check") or R.PROGRESS_CALL in mc.source):
            assert sc.outputs == [] and sc.execution_count is None
        else:
            assert sc == mc  # everything else intact, outputs included
    assert s.metadata["dockercourse"]["chapter"] == path.name[:2]
    assert m.cells and len(m.cells) >= len(s.cells)  # the master is not modified
    nbformat.validate(s)


def test_fixture_has_all_parts():
    m = nbformat.read(MASTER, as_version=4)
    parts = [R.cell_part(c) for c in m.cells if R.cell_part(c)[0]]
    assert len(parts) == 12
    assert R.lint(m, MASTER, FIXTURE) == []
    s = R.student_copy(m)
    assert sum(1 for c in s.cells if R.cell_part(c)[1] == "solution") == 0
    assert "client.containers.run(BUSYBOX, \"echo hello\"" not in R.dumps(s)


def test_lint_finds_problems():
    m = nbformat.read(MASTER, as_version=4)
    sol = next(c for c in m.cells if R.cell_part(c)[1] == "solution")
    del sol.metadata["jupyter"]
    del m.cells[next(i for i, c in enumerate(m.cells) if R.cell_part(c) == ("90.volume", "check"))]
    problems = "\n".join(R.lint(m, MASTER, FIXTURE))
    assert "source_hidden" in problems and "90.volume has no check" in problems


def test_release_reproducible_and_check(tmp_path, capsys):
    out = tmp_path / "student"
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check"]) == 0  # nothing checked in yet
    assert "none checked in" in capsys.readouterr().out
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "-q"]) == 0
    copy = out / MASTER.name
    first = copy.read_bytes()
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "-q"]) == 0
    assert copy.read_bytes() == first  # byte-for-byte reproducible
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check"]) == 0

    # A master edited after the release makes the copy stale.
    master = tmp_path / "notebooks" / MASTER.name
    master.parent.mkdir()
    master.write_bytes(MASTER.read_bytes())
    nb = nbformat.read(master, as_version=4)
    nb.cells[0].source += "\n\nEdited."
    nbformat.write(nb, master)
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check", str(master)]) == 1
    assert "differs" in capsys.readouterr().err
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "-q", str(master)]) == 0
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check", str(master)]) == 0

    # A copy without a master, or a master without a copy, is stale too.
    (out / "99_orphan.ipynb").write_text("{}")
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check", str(master)]) == 1
    (out / "99_orphan.ipynb").unlink()
    copy.unlink()
    (out / "other.ipynb").write_text("{}")
    assert R.main(["--root", str(FIXTURE), "--out", str(out), "--check", str(master)]) == 1


def test_cli_dispatch(tmp_path):
    from dockercourse.cli import main

    assert main(["release", "--root", str(FIXTURE), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / MASTER.name).exists()
