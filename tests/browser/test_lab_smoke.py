"""The browser tier's own smoke test: its helpers against a real JupyterLab 4 and Chromium.

No Docker engine: the smoke notebook (tests/fixtures/browser/smoke.ipynb) prints, draws a
matplotlib figure, shows ipywidgets (a button starting a ~5 s background job, one blocking the
kernel 4 s, a download link) and raises.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import lab as labmod
import nbformat
import pytest
from lab import (
    LabError,
    add_cell_and_run,
    cell_outputs,
    click_widget_button,
    expect_download,
    figures,
    open_notebook,
    run_all,
    run_cell,
    run_command,
    screenshot,
    set_cell_source,
    wait_for_text,
)

pytestmark = pytest.mark.browser(needs_engine=False)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "browser"
SMOKE = "smoke.ipynb"
CSV = "name,value\nalpha,1\nbeta,2\n"


def test_the_lab_reads_the_test_settings(lab):
    tracker = lab.api("lab/api/settings/@jupyterlab/notebook-extension:tracker")["settings"]
    assert tracker["windowingMode"] == "none"  # else cells out of view are not in the DOM


def test_smoke_notebook_runs_all_as_a_learner_would(lab, page):
    open_notebook(page, lab, SMOKE)
    screenshot(page, "opened")

    run_all(page, timeout=120)
    screenshot(page, "ran-all")
    cells = cell_outputs(page)
    assert [c.index for c in cells] == [1, 2, 3, 4]
    assert cells[0].text.strip() == "hello from the kernel"
    assert [o.mime_type for o in cells[1].outputs] == ["image/png"]
    errors = [c.index for c in cells if c.error]
    assert errors == [4], f"exactly the raising cell shows an error: {errors}"
    assert "the expected error of the smoke notebook" in cells[-1].text
    assert all(c.prompt not in ("[*]:", "[ ]:") for c in cells), [c.prompt for c in cells]
    assert figures(page) == 1

    # the widget's job runs in the background: the kernel answers meanwhile
    click_widget_button(page, "Start job")
    wait_for_text(page, "job running", timeout=10)
    text, seconds = add_cell_and_run(page, "1+1")
    screenshot(page, "1+1-while-the-job-runs")
    print(f"1+1 answered in {seconds:.3f} s while the widget's job ran")
    assert text.strip() == "2"
    assert seconds < 2.0, f"1+1 took {seconds:.2f} s while the widget's job ran"
    assert "job done" not in " ".join(cell_outputs(page)[2].texts), "the job had ended: nothing was measured"
    wait_for_text(page, "job done", timeout=20)
    screenshot(page, "job-done", show=page.get_by_text("Download x.csv"))

    # the control: a callback that blocks the kernel shows as a slow 1+1
    click_widget_button(page, "Block 4 s")
    text, blocked = add_cell_and_run(page, "2+2")
    print(f"2+2 answered in {blocked:.3f} s after a callback blocked the kernel 4 s")
    assert text.strip() == "4" and blocked > 2.0, f"a blocked kernel answered in {blocked:.2f} s"

    path, name = expect_download(page, "Download x.csv")
    screenshot(page, "downloaded")
    assert name == "x.csv"
    assert path.read_text() == CSV


def test_cells_are_edited_and_run_one_by_one(lab, page):
    open_notebook(page, lab, SMOKE)
    set_cell_source(page, 1, 'print("edited")\nfor i in range(3):\n    print(i)')
    assert run_cell(page, 1, timeout=60).split() == ["edited", "0", "1", "2"]
    assert cell_outputs(page)[0].prompt == "[1]:"
    with pytest.raises(LabError, match="not a code cell"):
        run_cell(page, 0)
    text, _ = add_cell_and_run(page, "import sys; print('to stderr', file=sys.stderr)")
    assert text.strip() == "to stderr"
    last = cell_outputs(page)[-1]
    assert last.stderr and not last.error
    screenshot(page, "edited")
    run_command(page, "notebook:clear-all-cell-outputs")
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel .jp-OutputArea-child')")
    assert all(not c.outputs for c in cell_outputs(page))
    with pytest.raises(LabError, match="no command nothing:here"):
        run_command(page, "nothing:here", timeout=2)


def test_a_lab_on_a_folder_of_the_test_passes_the_environment_to_its_kernels(lab_server, tmp_path, page):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "sub").mkdir()
    nbformat.write(nb, tmp_path / "sub" / "env.ipynb")
    env = {"DOCKERCOURSE_BROWSER_PROBE": "reached-the-kernel"}
    served = lab_server(tmp_path, env)
    assert lab_server(tmp_path, env) is served, "one lab per root and environment"
    assert served.root == tmp_path.resolve()
    open_notebook(page, served, "sub/env.ipynb")
    set_cell_source(page, 0, 'import os\nprint(os.environ.get("DOCKERCOURSE_BROWSER_PROBE"), os.getcwd())')
    assert run_cell(page, 0).split() == ["reached-the-kernel", str(tmp_path.resolve() / "sub")]


def test_a_missing_notebook_fails_naming_it(lab, page):
    with pytest.raises(LabError, match=r"notebook no/such\.ipynb does not exist"):
        open_notebook(page, lab, "no/such.ipynb")


def test_a_notebook_that_does_not_open_fails_naming_it(lab, page):
    # written here, not kept in tests/fixtures: ruff reads every .ipynb under tests/
    (lab.root / "broken.ipynb").write_text((FIXTURES / SMOKE).read_text()[:200])  # JSON cut short
    with pytest.raises(LabError, match=r"notebook broken\.ipynb did not open") as e:
        open_notebook(page, lab, "broken.ipynb")
    screenshot(page, "broken")
    assert "\n" not in str(e.value) and "File Load Error for broken.ipynb" in str(e.value)


def test_a_port_taken_meanwhile_is_given_up_for_another(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = [busy]
        monkeypatch.setattr(
            labmod, "free_port", lambda real=labmod.free_port: ports.pop() if ports else real()
        )
        with labmod.lab_server(tmp_path) as lab:
            assert lab.port != busy
            assert lab.api("api/status")["started"]
            pid = lab.pid
    assert not labmod._alive(pid), "the lab was stopped by its PID"


def test_a_lab_that_does_not_start_fails_in_one_line(tmp_path):
    with pytest.raises(LabError, match=r"JupyterLab did not start on 127\.0\.0\.1:\d+ \(exit code 1\)") as e:
        with labmod.lab_server(tmp_path, extra_args=("--ServerApp.port=not-a-port",)):
            pass
    assert "\n" not in str(e.value) and "not-a-port" in str(e.value)


def test_the_tier_says_how_to_install_what_is_missing(monkeypatch, tmp_path):
    assert labmod.skip_reason() is None
    monkeypatch.setattr(labmod, "CHROMIUM", tmp_path / "chromium")
    assert "apt-get install --no-install-recommends chromium" in labmod.skip_reason()
    assert "./course setup" in labmod.skip_reason()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import fails
    assert "pip install playwright" in labmod.skip_reason()
