"""`dockercourse grade` on the fixture course: master, student copy and broken submissions.

Real engine, real kernels. One batch (-j 2) of deliberately broken submissions is
graded once (module fixture); the tests read its CSV, results and feedback pages,
then check that nothing of the batch is left on the engine.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import docker
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from dockercourse.core import labels as L
from dockercourse.grading import grade as G
from dockercourse.grading.release import cell_part, student_copy

FIXTURE = Path(__file__).parent / "fixtures" / "course"
MASTER = FIXTURE / "notebooks" / "90_fixture.ipynb"
EXS = ["90.hello", "90.volume", "90.sleeper"]


@pytest.fixture(scope="module", autouse=True)
def fixture_root():
    old = os.environ.get("DOCKERCOURSE_ROOT")
    os.environ["DOCKERCOURSE_ROOT"] = str(FIXTURE.resolve())
    yield
    if old is None:
        os.environ.pop("DOCKERCOURSE_ROOT", None)
    else:
        os.environ["DOCKERCOURSE_ROOT"] = old


def master():
    return nbformat.read(MASTER, as_version=4)


def index(nb, ex, part):
    return next(i for i, c in enumerate(nb.cells) if cell_part(c) == (ex, part))


def insert_after(nb, ex, part, source):
    nb = copy.deepcopy(nb)
    nb.cells.insert(index(nb, ex, part) + 1, new_code_cell(source))
    return nb


def write(folder: Path, name: str, nb) -> None:
    nbformat.write(nb, folder / name)


# name -> (expected scores for EXS, expected status)
EXPECTED = {
    "master": ([1, 1, 1], "ok"),
    "student": ([0, 0, 0], "ok"),
    "loop": ([1, 0, 0], "timeout"),            # flooding loop between hello's solution and its check
    "slow": ([1, 1, 0], "timeout"),            # many slow cells: the per-submission limit
    "nocheck": ([1, 1, 1], "ok"),              # volume's check cell deleted: checked after its answer
    "reordered": ([1, 0, 1], "ok"),            # hello's check on top (deferred); volume's after the cleanup
    "crash": ([1, 1, 0], "kernel died"),       # os._exit after volume's check
    "sigkill": ([1, 0, 0], "kernel died"),     # SIGKILL to itself after hello's check
    "killparent": ([0, 0, 0], "kernel died"),  # kills the grader's worker process
    "malformed": ([0, 0, 0], "not a notebook"),
    "notes": ([0, 0, 0], "not a notebook"),    # a text file in the folder
    "removeall": ([0, 1, 1], "ok"),            # removes its own containers before hello's check
    "faker": ([0, 0, 0], "ok"),                # fakes check() and the checks module in its kernel
    "hiddenfail": ([0, 1, 0], "ok"),           # hello's output right, exit code wrong; unlabelled extras
}


def make_submissions(folder: Path) -> None:
    m = master()
    write(folder, "master.ipynb", m)
    s = student_copy(m)
    write(folder, "student.ipynb", s)

    write(folder, "loop.ipynb", insert_after(m, "90.hello", "solution", "while True:\n    print('spam ' * 2000)"))

    slow = copy.deepcopy(m)
    at = index(slow, "90.volume", "check") + 1
    for _ in range(6):
        slow.cells.insert(at, new_code_cell("import time\ntime.sleep(3)"))
    write(folder, "slow.ipynb", slow)

    nocheck = copy.deepcopy(m)
    del nocheck.cells[index(nocheck, "90.volume", "check")]
    write(folder, "nocheck.ipynb", nocheck)

    ro = copy.deepcopy(m)
    hello_check = ro.cells.pop(index(ro, "90.hello", "check"))
    ro.cells.insert(0, hello_check)
    vol_check = ro.cells.pop(index(ro, "90.volume", "check"))
    ro.cells.append(vol_check)  # after course.cleanup(): the volume is gone by then
    write(folder, "reordered.ipynb", ro)

    write(folder, "crash.ipynb", insert_after(m, "90.volume", "check", "import os\nos._exit(1)"))
    write(folder, "sigkill.ipynb",
          insert_after(m, "90.hello", "check", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    write(folder, "killparent.ipynb", insert_after(s, "90.hello", "answer",
                                                   "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"))

    (folder / "malformed.ipynb").write_text(MASTER.read_text(encoding="utf-8")[:500], encoding="utf-8")
    (folder / "notes.txt").write_text("my answers are in my head\n", encoding="utf-8")

    write(folder, "removeall.ipynb", insert_after(m, "90.hello", "solution", (
        "for c in client.containers.list(all=True, filters={'label': 'io.dockercourse.ns=' + course.prefix}):\n"
        "    c.remove(force=True)")))

    fk = copy.deepcopy(s)
    fk.cells.insert(2, new_code_cell(
        "import dockercourse.checks as C\n"
        "C.run_exercise = lambda ex, *a, **k: C.Result(ex.id, ex.title, True, '', '')\n"
        "check = lambda ex: print('✓', ex, 'passed')\n"
        "course.check = check"))
    fk.cells.insert(3, new_markdown_cell("<script>alert('x')</script> & friends"))
    write(folder, "faker.ipynb", fk)

    hf = copy.deepcopy(s)
    hf.cells[index(hf, "90.hello", "answer")].source = (
        "try:\n    client.containers.run(BUSYBOX, ['sh', '-c', 'echo hello; exit 3'], name=name('hello'))\n"
        "except Exception as e:\n    print(type(e).__name__)")
    hf.cells[index(hf, "90.volume", "answer")].source = (
        "import docker\nraw = docker.from_env()\n"
        "raw.volumes.create(name('data'))\n"
        "raw.containers.run(BUSYBOX, 'sleep 300', name=name('rogue'), detach=True)\n"
        "raise ValueError('<b>not escaped?</b>')")
    write(folder, "hiddenfail.ipynb", hf)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    sub = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    make_submissions(sub)
    rc = G.main([str(sub), "--out", str(out), "-j", "2", "--cell-timeout", "4", "--timeout", "15",
                 "--no-progress"])
    assert rc == 0
    return sub, out


def namespaces(out: Path) -> list[str]:
    return [json.loads(p.read_text())["namespace"] for p in (out / "results").glob("*.json")]


@pytest.mark.timeout(240)
def test_batch_rows(batch):
    sub, out = batch
    rows = G.read_csv(out / "grades.csv")
    assert set(rows) == set(EXPECTED)
    header = next(iter(rows.values())).keys()
    assert list(header) == ["student", *EXS, "total", "status"]
    got = {k: ([int(r[e]) for e in EXS], r["status"]) for k, r in rows.items()}
    assert got == EXPECTED
    for k, r in rows.items():
        assert int(r["total"]) == sum(EXPECTED[k][0])


@pytest.mark.timeout(60)
def test_feedback_pages(batch):
    sub, out = batch
    pages = {p.stem: p.read_text(encoding="utf-8") for p in (out / "feedback").glob("*.html")}
    assert set(pages) == set(EXPECTED)
    assert "3 / 3" in pages["master"] and "0 / 3" in pages["student"]
    assert "Hint:" in pages["student"] and "name(&#x27;hello&#x27;)" in pages["student"]
    assert "<b>not escaped?</b>" not in pages["hiddenfail"]
    assert "&lt;b&gt;not escaped?&lt;/b&gt;" in pages["hiddenfail"]
    assert "exit with status 0" in pages["hiddenfail"]  # the hidden check's message
    assert "timeout" in pages["loop"] and "ran longer than 4 s" in pages["loop"]
    assert "15 s in all" in pages["slow"]
    assert "kernel died" in pages["crash"]
    assert "check cell is missing" in pages["nocheck"]


@pytest.mark.timeout(60)
def test_nothing_left_on_engine(batch):
    sub, out = batch
    api = docker.from_env().api  # low-level lists: they do not inspect (others remove theirs meanwhile)
    prefixes = [p for p in namespaces(out) if p]
    assert prefixes and all(p.startswith("dc90g") for p in prefixes)
    assert len(set(prefixes)) == len(prefixes)  # one namespace per submission
    names = [n.lstrip("/") for c in api.containers(all=True) for n in c.get("Names") or []]
    names += [v["Name"] for v in api.volumes().get("Volumes") or []] + [n["Name"] for n in api.networks()]
    names += [t for i in api.images() for t in i.get("RepoTags") or []]
    assert not [n for n in names if any(n.startswith(p) for p in prefixes)]
    labelled = api.containers(all=True, filters={"label": f"{L.CHAPTER}=90"})
    assert not [c for c in labelled if (c.get("Labels") or {}).get(L.NAMESPACE) in prefixes]


@pytest.mark.timeout(120)
def test_resume_skips_graded(batch, tmp_path):
    sub, out = batch
    before = (out / "grades.csv").read_text()
    rep = G.grade_folder(sub, out, jobs=1, cell_timeout=4, submission_timeout=15, progress=False)
    assert rep.graded == 0 and rep.reused == len(EXPECTED)
    assert (out / "grades.csv").read_text() == before
    # A changed file is graded again; the rest are not.
    nb = nbformat.read(sub / "student.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell("changed"))
    nbformat.write(nb, sub / "student.ipynb")
    rep = G.grade_folder(sub, out, jobs=1, cell_timeout=4, submission_timeout=15, progress=False)
    assert rep.graded == 1 and rep.reused == len(EXPECTED) - 1
    assert (out / "grades.csv").read_text() == before


def test_plan_checks_rules():
    m = master()
    plan = G.plan_checks(m.cells, EXS)
    assert plan["90.hello"] == [(index(m, "90.hello", "check"), "at its check cell (cell %d)"
                                 % (index(m, "90.hello", "check") + 1))]
    ro = copy.deepcopy(m)
    ro.cells.insert(0, ro.cells.pop(index(ro, "90.hello", "check")))
    (idx, why), = G.plan_checks(ro.cells, EXS)["90.hello"]
    assert idx == index(ro, "90.hello", "solution") and "comes before it" in why
    del ro.cells[index(ro, "90.volume", "check")]
    pts = G.plan_checks(ro.cells, EXS)["90.volume"]
    assert [p for p, _ in pts] == [index(ro, "90.volume", "solution"), G.END]
    assert G.plan_checks([], EXS)["90.sleeper"][0][0] == G.END


def test_chapter_detection(tmp_path):
    s = student_copy(master())
    write(tmp_path, "a.ipynb", s)
    (tmp_path / "b.ipynb").write_text("nope")
    assert G.detect_chapter(G.submissions(tmp_path)) == "90"
    s.metadata["dockercourse"]["chapter"] = "91"
    write(tmp_path, "c.ipynb", s)
    with pytest.raises(Exception, match="several chapters"):
        G.detect_chapter(G.submissions(tmp_path))


def test_ids_and_csv_safety(tmp_path):
    files = [tmp_path / "a.ipynb", tmp_path / "a.txt", tmp_path / "=cmd.ipynb"]
    ids = G.student_ids(files)
    assert ids[files[0]] == "a.ipynb" and ids[files[1]] == "a.txt" and ids[files[2]] == "=cmd"
    assert G.safe_name("../../etc/passwd") != "../../etc/passwd" and "/" not in G.safe_name("a/b")
    g = G.SubmissionGrade(student="=cmd", file="x", sha256="", chapter="90", status="ok")
    G.write_csv(tmp_path / "g.csv", [g], EXS)
    assert "'=cmd" in (tmp_path / "g.csv").read_text()
