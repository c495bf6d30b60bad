"""Issue 13: a check accepts every valid way to do a task, the ``docker`` command too, through the grader.

For each chapter 01-08 the master and a *CLI copy* of it are graded together, as a folder of two
submissions (``grade_folder``, one worker, the course at the repository's root): the CLI copy is the master
with every solution cell replaced by ``CLI[id]`` (``tests/cli_solutions.py``), a cell that solves the exercise
with ``!docker ...`` and the chapter's names written out (``dc02-hello``), as a learner would. The grader runs
it in its own namespace (``dc02g<batch><k>-``) and maps those names, so both must run to their end with every
exercise's full points, and no cell of either may raise.

A learner's failed ``!docker ...`` only prints its error and the cell goes on. So that a CLI line that fails
cannot hide behind a check that passes anyway, the CLI copy's first cell (added here, no part of the course)
makes a failed command raise: an exit status other than 0 of ``!cmd``, or an ``Error``/``docker:`` line in the
output of ``x = !cmd``; the cell's error is then in the grade's ``cell_errors``, with its cell.

The ``unit`` tests need no engine: ``CLI`` covers exactly each chapter's exercises, every cell uses
``!docker``, is valid IPython, names only its own chapter's resources, puts no Go template braces in a ``!``
line, and defines the variables that later cells of the notebook use from the master's solution.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from cli_solutions import CLI
from nbformat.v4 import new_code_cell

from dockercourse.checks import load_exercises
from dockercourse.core.notebooks import cell_part
from dockercourse.grading.batch import grade_folder
from dockercourse.grading.results import SubmissionGrade

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [f"{n:02d}" for n in range(1, 9)]
#: Every chapter's CLI copy gets full marks through the grader (06 too, since a folder such as
#: /tmp/dc06-x1y2 is no longer taken for a course name in the API calls' bodies: Namespace.map_names).
GRADED = CHAPTERS

#: The CLI copy's first cell: a failed shell command raises (see the module's docstring).
RAISE_ON_FAILED_COMMAND = """\
# Added by tests/test_grade_cli.py, no part of the course: a `!cmd` that fails raises here, so that the
# grade's cell errors name it (in a learner's notebook a failed command only prints its error).
_dc_shell = get_ipython()


def _dc_system(_dc_cmd, *_dc_args, _dc_run=_dc_shell.system, **_dc_kwargs):
    _dc_run(_dc_cmd, *_dc_args, **_dc_kwargs)
    if _dc_shell.user_ns.get("_exit_code"):
        raise RuntimeError(f"!{_dc_cmd} ended with exit status {_dc_shell.user_ns['_exit_code']}")


def _dc_getoutput(_dc_cmd, *_dc_args, _dc_run=_dc_shell.getoutput, **_dc_kwargs):
    _dc_out = _dc_run(_dc_cmd, *_dc_args, **_dc_kwargs)
    _dc_lines = _dc_out.splitlines() if isinstance(_dc_out, str) else list(_dc_out)
    _dc_bad = [x for x in _dc_lines if x.startswith(("Error", "docker: "))]
    if _dc_bad:
        raise RuntimeError(f"!{_dc_cmd} printed: {' | '.join(_dc_bad)}")
    return _dc_out


_dc_shell.system, _dc_shell.getoutput = _dc_system, _dc_getoutput
"""


def master_path(chapter: str) -> Path:
    found = sorted((ROOT / "notebooks").glob(f"{chapter}_*.ipynb"))
    assert found, f"no master notebook of chapter {chapter}"
    return found[0]


def cli_copy(master, chapter: str, raise_on_failure: bool = True):
    """The master with each solution cell's source replaced by ``CLI[id]``; every exercise must have one."""
    nb = copy.deepcopy(master)
    exercises = set(load_exercises(chapter, ROOT))
    replaced = set()
    for cell in nb.cells:
        ex, part = cell_part(cell)
        if part == "solution":
            assert ex in CLI, f"{ex} has no CLI solution in tests/cli_solutions.py"
            cell.source = CLI[ex]
            cell.outputs, cell.execution_count = [], None
            replaced.add(ex)
    assert replaced == exercises, (
        f"chapter {chapter}: solution cells replaced for {sorted(replaced)}, exercises {sorted(exercises)}"
    )
    if raise_on_failure:
        nb.cells.insert(0, new_code_cell(RAISE_ON_FAILED_COMMAND))
    return nb


def _error_sources(grade: SubmissionGrade, nb) -> dict[str, str]:
    """{source of a cell that raised: the error it raised} (the grade numbers cells from 1)."""
    out = {}
    for line in grade.cell_errors:
        m = re.match(r"cell (\d+): (.*)", line, re.S)
        if m:
            out[nb.cells[int(m.group(1)) - 1].source] = m.group(2)
        else:
            out[line] = line
    return out


def _docker_on_path(monkeypatch) -> None:
    """The kernels run ``!docker``: the command on PATH, else the course's own engine packages' one."""
    if shutil.which("docker"):
        return
    for pkg in sorted(Path("/var/lib/dockercourse/pkgs").glob("*/root/usr/bin/docker"), reverse=True):
        monkeypatch.setenv("PATH", f"{pkg.parent}{os.pathsep}{os.environ.get('PATH', '')}")
        return
    pytest.skip("no docker command on this machine")


# --------------------------------------------------------------------------- through the grader


@pytest.mark.slow  # about 9 minutes for the eight chapters: CI runs it once, on the primary engine
@pytest.mark.timeout(900)
@pytest.mark.parametrize("chapter", GRADED)
def test_cli_copy_grades_like_the_master(chapter, engine, tmp_path, monkeypatch):
    _docker_on_path(monkeypatch)
    monkeypatch.setenv("DOCKERCOURSE_ROOT", str(ROOT))  # the spawned workers load this course's checks
    master = nbformat.read(master_path(chapter), as_version=4)
    notebooks = {"master": master, "cli": cli_copy(master, chapter)}
    folder, out = tmp_path / "submissions", tmp_path / "graded"
    folder.mkdir()
    for who, nb in notebooks.items():
        nbformat.write(nb, folder / f"{who}.ipynb")

    rep = grade_folder(
        folder,
        out,
        chapter=chapter,
        root=ROOT,
        jobs=1,
        progress=False,
        cell_timeout=300,
        submission_timeout=420,
        engine="host",  # every chapter's checks on the suite's engine (the matrix's)
    )

    grades = {g.student: g for g in rep.grades}
    assert set(grades) == set(notebooks), f"graded: {sorted(grades)}"
    exercises = load_exercises(chapter, ROOT)
    problems = []
    for who, nb in notebooks.items():
        g = grades[who]
        if g.status != "ok":
            problems.append(f"{who}: did not run to its end: {g.status}: {' '.join(g.notes)}")
        for ex_id, ex in exercises.items():
            if g.score(ex_id) != ex.points:
                x = next((e for e in g.exercises if e.id == ex_id), None)
                why = f"{x.message} ({x.where})" if x else "not graded"
                problems.append(f"{who}: {ex_id} got {g.score(ex_id):g} of {ex.points:g} points: {why}")
        for source, err in _error_sources(g, nb).items():
            problems.append(f"{who}: a cell raised {err}\n    " + source.replace("\n", "\n    "))
    assert not problems, f"chapter {chapter}:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- no engine


def _ipython(source: str) -> str:
    """A cell's source as the Python IPython runs (``!cmd`` -> ``get_ipython().system('cmd')``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _shell_calls(tree) -> list[tuple[ast.Call, bool]]:
    """``get_ipython().system/getoutput(...)`` calls of a transformed cell; whether each is in a function."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in ("system", "getoutput")
                and isinstance(child.func.value, ast.Call)
                and getattr(child.func.value.func, "id", "") == "get_ipython"
            ):
                found.append((child, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _names_of(tree) -> tuple[set[str], set[str]]:
    """(names a cell stores, names it reads), the ``{python}`` of its ``!`` lines included."""
    stored, loaded = set(), set()
    inner = []
    for call, _ in _shell_calls(tree):
        if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
            for expr in re.findall(r"\{([^{}]+)\}", call.args[0].value):
                try:
                    inner.append(ast.parse(expr.strip(), mode="eval"))
                except SyntaxError:
                    pass  # IPython leaves such a line as it is
    for n in (m for t in [tree, *inner] for m in ast.walk(t)):
        if isinstance(n, ast.Name):
            (loaded if isinstance(n.ctx, ast.Load) else stored).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            stored |= {(a.asname or a.name).split(".")[0] for a in n.names}
    return stored, loaded


@pytest.mark.unit
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cli_covers_exactly_the_chapters_exercises(chapter):
    exercises = set(load_exercises(chapter, ROOT))
    assert len(exercises) >= 3
    ours = {ex for ex in CLI if ex.startswith(chapter + ".")}
    assert ours == exercises, f"CLI lacks {sorted(exercises - ours)}, has unknown {sorted(ours - exercises)}"
    for ex in sorted(ours):
        assert "!docker" in CLI[ex], f"{ex}: its CLI solution never runs !docker"
    cli_copy(nbformat.read(master_path(chapter), as_version=4), chapter)  # every solution cell replaced


@pytest.mark.unit
def test_cli_has_no_other_exercises():
    every = {ex for ch in CHAPTERS for ex in load_exercises(ch, ROOT)}
    assert set(CLI) == every
    assert len(CLI) == 35


@pytest.mark.unit
@pytest.mark.parametrize("ex", sorted(CLI))
def test_cli_cell_is_ipython_with_its_chapters_names(ex):
    source = CLI[ex]
    chapter = ex.split(".")[0]
    tree = ast.parse(_ipython(source))  # a SyntaxError fails here
    compile(tree, ex, "exec")
    calls = _shell_calls(tree)
    assert any(
        isinstance(c.args[0], ast.Constant) and str(c.args[0].value).startswith("docker ") for c, _ in calls
    ), f"{ex}: no docker command"
    for call, in_function in calls:
        cmd = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
        assert isinstance(cmd, str), f"{ex}: a shell command that is not a plain line"
        # IPython expands {python} only with the cell's globals and the grader's wrapper's own locals
        assert not in_function, f"{ex}: !{cmd} inside a function"
        # IPython's expansion turns {{ into {: a Go template goes in as a Python string ({fmt})
        assert "{{" not in cmd and "}}" not in cmd, f"{ex}: !{cmd} holds double braces"
        # names the grader maps are the chapter's, written out in the line itself
        for m in re.finditer(r"(?<![a-z0-9])dc(\d\d)[a-z0-9]*-", cmd):
            assert m.group(1) == chapter, f"{ex}: !{cmd} names a resource of chapter {m.group(1)}"
            assert m.group(0) == f"dc{chapter}-", f"{ex}: !{cmd} names {m.group(0)}, not dc{chapter}-..."
        for expr in re.findall(r"\{([^{}]*)\}", cmd):  # a {name} is a Python value, never a course name
            assert "name(" not in expr, (
                f"{ex}: !{cmd} puts in name(...): the grader maps only what is written"
            )


@pytest.mark.unit
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cli_keeps_the_variables_later_cells_use(chapter):
    """A name the master's solution cell defines and a later cell of the CLI copy reads before defining it
    itself must be defined by the CLI cell too."""
    master = nbformat.read(master_path(chapter), as_version=4)
    cli = cli_copy(master, chapter, raise_on_failure=False)
    trees = [
        ast.parse(_ipython(c.source)) if c.cell_type == "code" and c.source.strip() else None
        for c in cli.cells
    ]
    missing = []
    for i, cell in enumerate(master.cells):
        ex, part = cell_part(cell)
        if part != "solution":
            continue
        defined, _ = _names_of(ast.parse(_ipython(cell.source)))
        ours, _ = _names_of(trees[i])
        for later in trees[i + 1 :]:
            if later is None:
                continue
            stored, loaded = _names_of(later)
            for var in sorted((defined & loaded) - stored - ours):
                missing.append(f"{ex}: {var}")
    assert not missing, "variables a later cell uses that the CLI solution does not define: " + ", ".join(
        sorted(set(missing))
    )
