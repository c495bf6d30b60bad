"""`dockercourse grade` on the fixture course: master, student copy and broken submissions.

Real engine, real kernels. One batch (-j 2) of deliberately broken submissions is
graded once (module fixture); the tests read its CSV, results and feedback pages,
then check that nothing of the batch is left on the engine. The ``unit`` tests need no
engine: check points, chapter detection, the CSV and feedback pages of hand-made grades,
submissions that never reach a kernel, the command line, and the cleanup's selection
against a fake engine.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from dockercourse.cli import main as dockercourse
from dockercourse.core import labels as L
from dockercourse.core.notebooks import cell_part
from dockercourse.grading import namespaces as grader_ns
from dockercourse.grading import report
from dockercourse.grading.batch import grade_folder
from dockercourse.grading.execute import worker_task
from dockercourse.grading.release import student_copy
from dockercourse.grading.results import ExerciseGrade, SubmissionGrade
from dockercourse.grading.submission import (
    END,
    detect_chapter,
    plan_checks,
    student_ids,
    submissions,
)

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
    "loop": ([1, 0, 0], "timeout"),  # flooding loop between hello's solution and its check
    "slow": ([1, 1, 0], "timeout"),  # many slow cells: the per-submission limit
    "nocheck": ([1, 1, 1], "ok"),  # volume's check cell deleted: checked after its answer
    "reordered": ([1, 0, 1], "ok"),  # hello's check on top (deferred); volume's after the cleanup
    "crash": ([1, 1, 0], "kernel died"),  # os._exit after volume's check
    "sigkill": ([1, 0, 0], "kernel died"),  # SIGKILL to itself after hello's check
    "killparent": ([0, 0, 0], "kernel died"),  # kills the grader's worker process
    "malformed": ([0, 0, 0], "not a notebook"),
    "notes": ([0, 0, 0], "not a notebook"),  # a text file in the folder
    "removeall": ([0, 1, 1], "ok"),  # removes its own containers before hello's check
    "faker": ([0, 0, 0], "ok"),  # fakes check() and the checks module in its kernel
    "hiddenfail": ([0, 1, 0], "ok"),  # hello's output right, exit code wrong; unlabelled extras
    "cli": ([1, 1, 1], "ok"),  # answered with `!docker ...` and the names written out (dc90-hello)
    "literal": ([1, 1, 1], "ok"),  # docker-py with the names written out instead of name()
}


def make_submissions(folder: Path) -> None:
    m = master()
    write(folder, "master.ipynb", m)
    s = student_copy(m)
    write(folder, "student.ipynb", s)

    write(
        folder,
        "loop.ipynb",
        insert_after(m, "90.hello", "solution", "while True:\n    print('spam ' * 2000)"),
    )

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
    write(
        folder,
        "sigkill.ipynb",
        insert_after(m, "90.hello", "check", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
    )
    write(
        folder,
        "killparent.ipynb",
        insert_after(s, "90.hello", "answer", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
    )

    (folder / "malformed.ipynb").write_text(MASTER.read_text(encoding="utf-8")[:500], encoding="utf-8")
    (folder / "notes.txt").write_text("my answers are in my head\n", encoding="utf-8")

    write(
        folder,
        "removeall.ipynb",
        insert_after(
            m,
            "90.hello",
            "solution",
            (
                "for c in client.containers.list(all=True, "
                "filters={'label': 'io.dockercourse.ns=' + course.prefix}):\n"
                "    c.remove(force=True)"
            ),
        ),
    )

    fk = copy.deepcopy(s)
    fk.cells.insert(
        2,
        new_code_cell(
            "import dockercourse.checks as C\n"
            "C.run_exercise = lambda ex, *a, **k: C.Result(ex.id, ex.title, True, '', '')\n"
            "check = lambda ex: print('✓', ex, 'passed')\n"
            "course.check = check"
        ),
    )
    fk.cells.insert(3, new_markdown_cell("<script>alert('x')</script> & friends"))
    write(folder, "faker.ipynb", fk)

    hf = copy.deepcopy(s)
    hf.cells[index(hf, "90.hello", "answer")].source = (
        "try:\n    client.containers.run(BUSYBOX, ['sh', '-c', 'echo hello; exit 3'], name=name('hello'))\n"
        "except Exception as e:\n    print(type(e).__name__)"
    )
    hf.cells[index(hf, "90.volume", "answer")].source = (
        "import docker\nraw = docker.from_env()\n"
        "raw.volumes.create(name('data'))\n"
        "raw.containers.run(BUSYBOX, 'sleep 300', name=name('rogue'), detach=True)\n"
        "raise ValueError('<b>not escaped?</b>')"
    )
    write(folder, "hiddenfail.ipynb", hf)

    # the same answers through the docker command and with the chapter's names written out: graded like
    # name() (the grader's own namespace, dc90g<batch><k>-, replaces the learner's dc90-)
    answers = {
        "cli": {
            "90.hello": "!docker run --name dc90-hello busybox:1.35.0 echo hello",
            "90.volume": "!docker volume create dc90-data",
            "90.sleeper": "out = !docker run -d --name dc90-sleeper busybox:1.35.0 sleep 300\nprint(out)",
        },
        "literal": {
            "90.hello": "client.containers.run('busybox:1.35.0', ['echo', 'hello'], name='dc90-hello')",
            "90.volume": "client.volumes.create('dc90-data')",
            "90.sleeper": (
                "client.containers.run('busybox:1.35.0', 'sleep 300', name='dc90-sleeper', detach=True)"
            ),
        },
    }
    for kind, cells in answers.items():
        nb = copy.deepcopy(s)
        for ex, source in cells.items():
            nb.cells[index(nb, ex, "answer")].source = source
        write(folder, f"{kind}.ipynb", nb)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    sub = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    make_submissions(sub)
    rc = dockercourse(
        [
            "grade",
            str(sub),
            "--out",
            str(out),
            "-j",
            "2",
            "--cell-timeout",
            "4",
            "--timeout",
            "15",
            "--no-progress",
            "--engine",
            "host",  # the grading logic on the suite's engine; the isolated tiers: test_grade_rootless
            "--trust-submissions",
        ]
    )
    assert rc == 0
    return sub, out


def namespaces(out: Path) -> list[str]:
    return [json.loads(p.read_text())["namespace"] for p in (out / "results").glob("*.json")]


@pytest.mark.timeout(240)
def test_batch_rows(batch):
    sub, out = batch
    rows = report.read_csv(out / "grades.csv")
    assert set(rows) == set(EXPECTED)
    header = next(iter(rows.values())).keys()
    assert list(header) == ["student", *EXS, "total", "possible", "percent", "late_days", "status"]
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
    rep = grade_folder(sub, out, jobs=1, cell_timeout=4, submission_timeout=15, progress=False, engine="host")
    assert rep.graded == 0 and rep.reused == len(EXPECTED)
    assert (out / "grades.csv").read_text() == before
    # A changed file is graded again; the rest are not.
    nb = nbformat.read(sub / "student.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell("changed"))
    nbformat.write(nb, sub / "student.ipynb")
    rep = grade_folder(sub, out, jobs=1, cell_timeout=4, submission_timeout=15, progress=False, engine="host")
    assert rep.graded == 1 and rep.reused == len(EXPECTED) - 1
    assert (out / "grades.csv").read_text() == before


@pytest.mark.unit
def test_plan_checks_rules():
    m = master()
    plan = plan_checks(m.cells, EXS)
    assert plan["90.hello"] == [
        (index(m, "90.hello", "check"), f"at its check cell (cell {index(m, '90.hello', 'check') + 1})")
    ]
    ro = copy.deepcopy(m)
    ro.cells.insert(0, ro.cells.pop(index(ro, "90.hello", "check")))
    ((idx, why),) = plan_checks(ro.cells, EXS)["90.hello"]
    assert idx == index(ro, "90.hello", "solution") and "comes before it" in why
    del ro.cells[index(ro, "90.volume", "check")]
    pts = plan_checks(ro.cells, EXS)["90.volume"]
    assert [p for p, _ in pts] == [index(ro, "90.volume", "solution"), END]
    assert plan_checks([], EXS)["90.sleeper"][0][0] == END


@pytest.mark.unit
def test_chapter_detection(tmp_path):
    s = student_copy(master())
    write(tmp_path, "a.ipynb", s)
    (tmp_path / "b.ipynb").write_text("nope")
    assert detect_chapter(submissions(tmp_path)) == "90"
    s.metadata["dockercourse"]["chapter"] = "91"
    write(tmp_path, "c.ipynb", s)
    with pytest.raises(Exception, match="several chapters"):
        detect_chapter(submissions(tmp_path))


@pytest.mark.unit
def test_ids_and_csv_safety(tmp_path):
    files = [tmp_path / "a.ipynb", tmp_path / "a.txt", tmp_path / "=cmd.ipynb"]
    ids = student_ids(files)
    assert ids[files[0]] == "a.ipynb" and ids[files[1]] == "a.txt" and ids[files[2]] == "=cmd"
    assert report.safe_name("../../etc/passwd") != "../../etc/passwd" and "/" not in report.safe_name("a/b")
    g = SubmissionGrade(student="=cmd", file="x", sha256="", chapter="90", status="ok")
    report.write_csv(tmp_path / "g.csv", [g], EXS)
    assert "'=cmd" in (tmp_path / "g.csv").read_text()


# --------------------------------------------------------------------------- no engine needed


def hand_made_grades() -> list[SubmissionGrade]:
    hello = ExerciseGrade("90.hello", "Say hello", True, "", "", "at its check cell (cell 5)")
    vol = ExerciseGrade(
        "90.volume",
        "A <volume>",
        False,
        "no volume named 'dc90g1-data'",
        "Create it with client.volumes.create(name('data')).",
        "at its check cell (cell 9)",
        points=2,
        credit=0.25,
    )
    broken = ExerciseGrade(
        "90.sleeper", "Sleep", False, "could not check: KeyError", "", "at the end", error=True
    )
    return [
        SubmissionGrade("alice", "alice.ipynb", "ab" * 32, "90", "ok", [hello, vol, broken], seconds=12.34),
        SubmissionGrade(
            "=bob",
            "=bob.ipynb",
            "",
            "90",
            "timeout",
            [hello],
            notes=["Cell 7 ran longer than 4 s."],
            cell_errors=[f"cell {i}: ValueError: <b>{i}</b>" for i in range(25)],
        ),
        SubmissionGrade("carol", "notes.txt", "", None, "not a notebook", notes=["Not a notebook: junk."]),
    ]


@pytest.mark.unit
def test_csv_of_hand_made_grades(tmp_path):
    report.write_csv(tmp_path / "grades.csv", hand_made_grades(), EXS)
    text = (tmp_path / "grades.csv").read_text(encoding="utf-8")
    assert text.splitlines() == [
        "student,90.hello,90.volume,90.sleeper,total,possible,percent,late_days,status",
        "'=bob,1,0,0,1,1,100,0,timeout",
        "alice,1,0.5,0,1.5,4,37.5,0,ok",
        "carol,0,0,0,0,0,0,0,not a notebook",
    ]
    rows = report.read_csv(tmp_path / "grades.csv")
    assert rows["alice"]["total"] == "1.5" and rows["'=bob"]["status"] == "timeout"
    late = hand_made_grades()[0]
    late.late_days, late.penalty = 2, 0.2
    assert (late.points, late.total, late.possible, late.percent) == (1.5, 1.2, 4, 30.0)


@pytest.mark.unit
def test_feedback_page_of_hand_made_grades():
    alice, bob, carol = map(report.feedback_html, hand_made_grades())
    assert alice.startswith("<!DOCTYPE html>") and alice.endswith("</html>\n")
    assert "<title>Feedback for alice · chapter 90</title>" in alice
    assert "<b>1.5 / 4 points</b> (37.5%)" in alice and '<span class="status ok">ok</span>' in alice
    assert alice.count('<tr class="pass">') == 1 and alice.count('<tr class="fail">') == 1
    assert alice.count('<tr class="part">') == 1 and "◐ part done" in alice and "0.5 / 2" in alice
    assert "<small>checked at its check cell (cell 5)</small>" in alice  # passed: only when
    assert "no volume named &#x27;dc90g1-data&#x27;<br><b>Hint:</b> Create it with" in alice
    assert "A &lt;volume&gt;" in alice and "<volume>" not in alice
    assert "the check itself could not run" in alice and "graded in 12.3 s" in alice
    assert "{%" not in alice and "{{" not in alice and "body{font-family" in alice  # the style sheet is in
    assert '<span class="status bad">timeout</span>' in bob and "ran out of time" in bob
    assert "<li>Cell 7 ran longer than 4 s.</li>" in bob
    assert "&lt;b&gt;19&lt;/b&gt;" in bob and "&lt;b&gt;20&lt;/b&gt;" not in bob and "… and 5 more" in bob
    assert "chapter ?" in carol and "<b>0 / 0 points</b>" in carol and "<table>" not in carol
    assert "Cells that raised an error" not in carol


@pytest.mark.unit
def test_results_round_trip_and_outputs(tmp_path):
    g = hand_made_grades()[1]
    report.write_result(tmp_path, g)
    assert report.read_result(tmp_path, "=bob") == g
    assert report.read_result(tmp_path, "nobody") is None
    assert report.feedback_path(tmp_path, "=bob").read_text(encoding="utf-8") == report.feedback_html(g)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.unit
def test_submissions_that_never_reach_a_kernel(tmp_path):
    (tmp_path / "notes.txt").write_text("my answers are in my head\n", encoding="utf-8")
    common = dict(root=str(FIXTURE), tag="gunit1")
    d = worker_task(dict(source=str(tmp_path / "notes.txt"), chapter="90", **common))
    g = SubmissionGrade.from_dict(d)
    assert g.status == "not a notebook" and g.namespace == "dc90gunit1-" and g.student == "notes"
    assert [(x.id, x.passed, x.where) for x in g.exercises] == [(e, False, "not checked") for e in EXS]
    g = SubmissionGrade.from_dict(worker_task(dict(source=str(tmp_path / "notes.txt"), **common)))
    assert g.status == "not a notebook" and not g.exercises  # no chapter to grade it against
    nb = master()
    del nb.metadata["dockercourse"]
    write(tmp_path, "nochapter.ipynb", nb)
    g = SubmissionGrade.from_dict(worker_task(dict(source=str(tmp_path / "nochapter.ipynb"), **common)))
    assert g.status == "grader error" and "grade it with --chapter" in g.notes[0]
    g = SubmissionGrade.from_dict(
        worker_task(dict(source=str(tmp_path / "notes.txt"), root=str(FIXTURE), tag="G-1"))
    )
    assert g.status == "grader error" and "lowercase letters and digits" in g.notes[0]


@pytest.mark.unit
def test_cli_help_is_light_and_usage_errors(tmp_path, capsys):
    code = (
        "import sys; import dockercourse.cli.grade, dockercourse.cli.release; "
        "print(sorted({'docker', 'nbclient', 'nbformat', 'jinja2', 'tqdm'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for cmd in ("grade", "release"):
        assert dockercourse([cmd, "--help"]) == 0
        assert f"usage: dockercourse {cmd}" in capsys.readouterr().out
    assert dockercourse(["grade", str(tmp_path / "missing")]) == 2
    assert "is neither a folder nor a .zip file" in capsys.readouterr().err
    assert dockercourse(["grade", str(tmp_path), "-j", "0"]) == 2
    assert "-j must be at least 1" in capsys.readouterr().err
    assert dockercourse(["grade", str(tmp_path), "--chapter", "x"]) == 2


class FakeAPI:
    """The few list and remove calls of docker's low-level API the sweeper uses, on an in-memory engine."""

    def __init__(self, objects):
        self.objects = objects  # [(kind, name, labels)]
        self.removed = []

    def _rows(self, kind, filters=None, name_key="Name"):
        filters = filters or {}
        out = []
        for k, name, labels in self.objects:
            if k != kind:
                continue
            if any(n not in name for n in filters.get("name") or []):
                continue
            wanted = filters.get("label") or []
            if any(
                labels.get(w.split("=", 1)[0]) != w.split("=", 1)[1] if "=" in w else w not in labels
                for w in wanted
            ):
                continue
            if filters.get("dangling"):
                continue
            row = {"Id": f"{kind}-{name}", "Labels": labels}
            row.update(
                {"Names": ["/" + name]}
                if kind == "container"
                else {"RepoTags": [name]}
                if kind == "image"
                else {name_key: name}
            )
            out.append(row)
        return out

    def containers(self, all=False, filters=None):
        return self._rows("container", filters)

    def networks(self, names=None, filters=None):
        return self._rows("network", dict(filters or {}, **({"name": names} if names else {})))

    def volumes(self, filters=None):
        return {"Volumes": self._rows("volume", filters)}

    def images(self, filters=None):
        return self._rows("image", filters)

    def inspect_network(self, nid):
        return {"Containers": {}}

    def inspect_image(self, ref):
        raise docker.errors.ImageNotFound(ref)

    def _remove(self, kind, key):
        name = key.split("-", 1)[1] if key.startswith(kind + "-") else key
        self.objects = [o for o in self.objects if not (o[0] == kind and o[1] == name)]
        self.removed.append(f"{kind} {name}")

    def remove_container(self, cid, v=False, force=False):
        self._remove("container", cid)

    def remove_network(self, nid):
        self._remove("network", nid)

    def remove_volume(self, name, force=False):
        self._remove("volume", name)

    def remove_image(self, ref):
        self._remove("image", ref)


class FakeClient:
    def __init__(self, objects):
        self.api = FakeAPI(objects)


def course_labels(prefix: str) -> dict:
    return {L.CHAPTER: "90", L.NAMESPACE: prefix, L.RUN: "r1"}


@pytest.mark.unit
def test_cleanup_selects_only_its_own(monkeypatch):
    from dockercourse.core.namespace import Namespace

    mine, other_batch = "dc90gabc1231-", "dc90gdef4561-"
    client = FakeClient(
        [
            ("container", mine + "hello", course_labels(mine)),
            ("container", mine + "rogue", {}),  # made without the course's labels
            ("volume", mine + "data", {}),
            ("network", mine + "net", course_labels(mine)),
            ("image", mine + "img:v1", course_labels(mine)),
            (
                "container",
                "dc90gabc12312-x",
                course_labels("dc90gabc12312-"),
            ),  # tag 12 of the batch, not tag 1
            ("container", other_batch + "hello", course_labels(other_batch)),
            ("container", "web", {}),
            ("volume", "dbdata", {}),  # the learner's own
            ("container", "dc90gabc123r1-left", course_labels("dc90gabc123r1-")),  # a retry's leftover
            ("volume", "dc90gabc123zz-odd", {}),  # named with the batch's prefix only
        ]
    )
    problems = grader_ns.clean_namespace(client, Namespace(chapter="90", tag="gabc1231"))
    assert problems == []
    assert sorted(client.api.removed) == sorted(
        [
            f"container {mine}hello",
            f"container {mine}rogue",
            f"volume {mine}data",
            f"network {mine}net",
            f"image {mine}img:v1",
        ]
    )
    monkeypatch.setattr(grader_ns, "_client", client)
    grader_ns.sweep_batch("90", "abc123")
    left = {name for _, name, _ in client.api.objects}
    assert left == {other_batch + "hello", "web", "dbdata"}


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_batch_of_files_that_are_not_notebooks(tmp_path, monkeypatch):
    """The outputs and resuming, with submissions that never need an engine (nor a worker process)."""
    monkeypatch.setattr(grader_ns, "_client", FakeClient([]))  # the batch's final sweep finds nothing
    sub, out = tmp_path / "subs", tmp_path / "out"
    sub.mkdir()
    (sub / "notes.txt").write_text("my answers are in my head\n", encoding="utf-8")
    (sub / "malformed.ipynb").write_text(MASTER.read_text(encoding="utf-8")[:500], encoding="utf-8")
    (sub / ".hidden").write_text("not a submission")
    rep = grade_folder(sub, out, chapter="90", root=FIXTURE, jobs=2, progress=False, engine="host")
    assert (rep.graded, rep.reused, rep.chapter, rep.exercises) == (2, 0, "90", EXS)
    assert rep.status_counts() == {"not a notebook": 2}
    rows = report.read_csv(out / "grades.csv")
    assert {k: (r["total"], r["status"]) for k, r in rows.items()} == {
        "notes": ("0", "not a notebook"),
        "malformed": ("0", "not a notebook"),
    }
    assert sorted(p.name for p in (out / "feedback").iterdir()) == ["malformed.html", "notes.html"]
    assert "NotJSONError" in (out / "feedback" / "malformed.html").read_text(encoding="utf-8")
    assert report.read_result(out, "notes").namespace.startswith(f"dc90g{rep.batch}")
    rep = grade_folder(sub, out, chapter="90", root=FIXTURE, jobs=1, progress=False, engine="host")
    assert (rep.graded, rep.reused) == (0, 2)
    rep = grade_folder(
        sub, out, chapter="90", root=FIXTURE, jobs=1, progress=False, force=True, engine="host"
    )
    assert (rep.graded, rep.reused) == (2, 0)
