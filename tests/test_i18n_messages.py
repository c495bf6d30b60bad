"""The toolkit's learner-facing messages in the notebook's language (dockercourse.i18n.messages).

English stays in the code; a template extracted from the source (f-string fields as {1}, {2}, ...) maps to
its translation in i18n/<lang>/messages.yml. These tests prove: a message is translated with its values in
place, an unknown one stays English, the language is chosen as documented, every message of the source has
a translation, and a changed English message is named by `dockercourse i18n check` until translated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dockercourse.checks import load_exercises
from dockercourse.checks.runner import Result, progress_text
from dockercourse.errors import CourseError
from dockercourse.i18n import messages as m

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_chosen_language(monkeypatch):
    monkeypatch.delenv("DOCKERCOURSE_LANG", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    m.set_language(None)
    yield
    m.set_language(None)


def test_templates_are_read_from_the_source_as_written():
    src = """
def f(ctx, full, n):
    ctx.require(n > 1, f"there are {n} of {full!r}, want {{two}}")
    raise NotYet("plain words")
    print(tr(f"{n}"))                       # no words of its own: it would match anything
    x = N_("a" if n else "b words")          # both branches of a conditional
    other(f"not a message {n}")              # not a learner-facing call
@exercise("01.x", title="the title", hint=f"the hint {X}", nudge="the nudge", points=2)
def g(ctx): pass
"""
    assert m.templates_in(src) == [
        "there are {1} of {2}, want {{two}}",
        "plain words",
        "b words",
        "the title",
        "the hint {1}",
        "the nudge",
    ]


def test_a_message_is_translated_with_its_values_and_an_unknown_one_stays_english():
    assert m.tr("there is no container named dc02-hello", "zh") == "没有名为 dc02-hello 的容器"
    said = "its output is 'hi {x}', not 'hello, docker'"  # a value with braces stays as it is
    assert m.tr(said, "zh") == "它的输出是 'hi {x}'，不是 'hello, docker'"
    assert m.tr("a message the course never wrote", "zh") == "a message the course never wrote"
    assert m.tr("there is no container named dc02-hello", "en") == "there is no container named dc02-hello"
    # a template with literal braces: filled as the English shows them
    rows = yaml.safe_load(m.catalog_path(ROOT, "zh").read_text())
    hint = next(e for e in rows if "{{registry}}" in e["en"])
    english = hint["en"].replace("{{", "{").replace("}}", "}")
    assert "f'{registry}/'" in m.tr(english, "zh") and m.tr(english, "zh") != english


def test_the_most_specific_template_wins():
    general, specific = m.compile_template("{1} is {2}"), m.compile_template("{1} is {2}, not running")
    assert general.fullmatch("dc01-iso is exited, not running") and specific.fullmatch(
        "dc01-iso is exited, not running"
    )
    assert m.tr("dc01-iso is exited, not running", "zh") == "dc01-iso 的状态是 exited，没有在运行"


def test_the_language_is_chosen_by_setup_then_environment_then_notebook_folder(tmp_path, monkeypatch):
    zh = tmp_path / "notebooks" / "zh"
    zh.mkdir(parents=True)
    assert m.language(tmp_path) == "en"
    assert m.language(zh) == "zh"  # a kernel runs in its notebook's folder
    monkeypatch.setenv("JPY_SESSION_NAME", str(zh / "02_core_concepts.ipynb"))  # JupyterLab tells the path
    assert m.language(tmp_path) == "zh"
    monkeypatch.setenv("DOCKERCOURSE_LANG", "en_GB.UTF-8")
    assert m.language(zh) == "en"
    assert m.set_language("zh-CN") == "zh" and m.language(tmp_path) == "zh"
    with pytest.raises(CourseError, match="no 'fr' edition; it has: en, zh"):
        m.set_language("fr")


def test_a_checks_result_and_progress_read_in_chinese():
    ex = load_exercises("02")["02.hello"]
    res = Result(ex.id, ex.title, False, "there is no container named dc02-hello", ex.hint, nudge=ex.nudge)
    res.show = "nudge"
    assert res.line.splitlines()[0] == "✗ 02.hello not yet: there is no container named dc02-hello"
    m.set_language("zh")
    lines = res.line.splitlines()
    assert lines[0] == "✗ 02.hello 尚未完成: 没有名为 dc02-hello 的容器"
    assert lines[1].startswith("  线索: 容器运行来自镜像的一条命令")
    assert lines[2] == "  想看更完整的提示：再运行一次检查，或 check('02.hello', hint=True)。"
    assert "尚未完成" in res._repr_html_() and "没有名为 dc02-hello 的容器" in res._repr_html_()
    ok = Result(ex.id, ex.title, True, "", "")
    assert progress_text([ok, res]).splitlines() == [
        "本章进度：2 个练习中通过了 1 个",
        "  ✓ 02.hello: 运行你的第一个容器",
        "  ✗ 02.hello: 运行你的第一个容器 (尚未完成: 没有名为 dc02-hello 的容器)",
    ]


def test_every_message_of_the_source_has_a_translation():
    assert m.check(ROOT, "zh") == []
    texts = [e for e in yaml.safe_load(m.catalog_path(ROOT, "zh").read_text()) if e["zh"]]
    assert len(texts) == len(m.extract(ROOT)) > 250
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in e["zh"]) for e in texts), "an entry left in English"


def test_a_changed_english_message_is_named_until_translated(tmp_path):
    for rel in ("src/dockercourse", "checks"):  # the source the templates come from
        shutil.copytree(ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "notebooks").mkdir()
    for nb in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):  # and the figure titles of the notebooks
        shutil.copy(nb, tmp_path / "notebooks" / nb.name)
    (tmp_path / "i18n" / "zh").mkdir(parents=True)
    shutil.copy(m.catalog_path(ROOT, "zh"), m.catalog_path(tmp_path, "zh"))
    assert m.check(tmp_path, "zh") == []
    checks = tmp_path / "checks" / "02_core_concepts.py"
    checks.write_text(checks.read_text().replace("not 'hello, docker'", "not 'hello, Docker'"))
    problems = m.check(tmp_path, "zh")
    new = "no translation of the message \"its output is {1}, not 'hello, Docker'\""
    assert any(new in p for p in problems)
    assert any("\"its output is {1}, not 'hello, docker'\" is no longer in the source" in p for p in problems)
    path, added, dropped = m.write_extracted(tmp_path, "zh")
    assert (added, dropped) == (1, 1)
    rows = yaml.safe_load(path.read_text())
    fresh = next(r for r in rows if r["en"] == "its output is {1}, not 'hello, Docker'")
    assert fresh["zh"] == ""  # for the translator
    fresh["zh"] = "它的输出是 {1}"
    path.write_text(yaml.safe_dump(rows, allow_unicode=True, sort_keys=False))
    assert m.check(tmp_path, "zh") == []
    fresh["zh"] = "它的输出"  # a value dropped from the translation
    path.write_text(yaml.safe_dump(rows, allow_unicode=True, sort_keys=False))
    assert any("does not have the same {n} fields" in p for p in m.check(tmp_path, "zh"))


def test_doctor_speaks_chinese_from_any_folder(tmp_path):
    """`dockercourse doctor` in Chinese (DOCKERCOURSE_LANG, or --lang), run outside the checkout: the
    findings, the no-engine advice and the verdict; an edition the course lacks is one line and status 1."""
    import subprocess
    import sys

    env = {
        "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock",
        "PATH": "/usr/bin:/bin",
        "DOCKERCOURSE_LANG": "zh",
    }
    cmd = [sys.executable, "-m", "dockercourse.cli", "doctor"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    for needle in (
        "[ok ] 客户端",
        "[ERR] 引擎",
        "没有引擎应答",
        "已尝试：",
        "Docker Desktop",
        "课程还不能运行",
    ):
        assert needle in r.stdout, r.stdout
    assert "No Docker engine answers" not in r.stdout
    del env["DOCKERCOURSE_LANG"]
    r = subprocess.run([*cmd, "--lang", "fr"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == (
        "dockercourse doctor: The course has no 'fr' edition; it has: en, zh "
        "(setup(..., lang='zh') or DOCKERCOURSE_LANG=zh)."
    )


def test_terminal_width_counts_chinese_characters_twice():
    from dockercourse.cli.doctor import width

    assert width("engine") == 6 and width("引擎") == 4 and width("镜像 busybox") == 12


def test_setup_without_engine_says_what_to_do_in_chinese(monkeypatch, tmp_path, capsys):
    from dockercourse.notebook.course import setup

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    course = setup("02", lang="zh")
    assert not course.connected
    err = capsys.readouterr().err
    assert "没有 Docker 引擎应答" in err and "怎么做：" in err and "Docker Desktop" in err, err
    assert "What to do" not in err


def test_doctor_findings_keep_english_topics_for_code_and_translate_the_rest(monkeypatch, tmp_path):
    """Chapter 02's cell picks findings by topic (`finding.topic in ("engine", ...)`), in both editions: the
    topic stays English (the command shows it translated), the detail and the fix are Chinese."""
    from dockercourse.core.doctor import diagnose

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    m.set_language("zh")
    found = diagnose()
    assert [f.topic for f in found] == ["client", "engine"]
    assert found[1].detail == "没有引擎应答" and "怎么做：" in found[1].fix
    assert m.tr(found[1].topic) == "引擎"
