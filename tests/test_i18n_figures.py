"""Figures in the notebook's language (dockercourse.i18n.figures): Chinese labels drawn with a CJK font from
the distribution's packages (./course setup installs fonts-wqy-microhei), and English labels with one line
saying why where no such font is installed."""

from __future__ import annotations

import warnings

import matplotlib
import pytest

from dockercourse.bench import plots
from dockercourse.i18n import figures, messages

matplotlib.use("Agg")
pytestmark = pytest.mark.unit
ROWS = [
    {"n": n, "seconds": n * 0.3, "seconds_per_start": 0.3, "cgroup_bytes": n << 20, "shim_pss": n << 21}
    for n in (1, 5)
]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("DOCKERCOURSE_LANG", raising=False)
    monkeypatch.setattr(figures, "_found", {})
    monkeypatch.setattr(figures, "_warned", False)
    with matplotlib.rc_context():
        yield
    messages.set_language(None)


def _texts(fig) -> list[str]:
    ax1, ax2 = fig.axes[:2]
    return [ax1.get_title(), ax1.get_xlabel(), ax1.get_ylabel(), ax2.get_title()]


def test_an_english_notebooks_figures_are_english():
    fig = plots.density(ROWS, show=False)
    assert _texts(fig) == [
        "Starting N containers",
        "N idle containers",
        "seconds since the first start",
        "Memory of N containers",
    ]


def test_a_chinese_notebooks_figures_are_chinese_and_every_character_has_a_glyph():
    if figures.cjk_font() is None:
        pytest.skip("no CJK font installed (./course setup installs fonts-wqy-microhei)")
    messages.set_language("zh")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plots.density(ROWS, show=False)
        fig.canvas.draw()  # every text is laid out: a missing glyph warns here
    assert _texts(fig) == ["启动 N 个容器", "N 个空闲容器", "自第一次启动以来的秒数", "N 个容器的内存"]
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert figures.cjk_font() in matplotlib.rcParams["font.family"]


def test_with_no_cjk_font_the_labels_stay_english_and_one_line_says_why(monkeypatch, capsys):
    monkeypatch.setattr(figures, "_found", {"cjk": None})  # as on a machine without one
    messages.set_language("zh")
    assert _texts(plots.density(ROWS, show=False))[0] == "Starting N containers"
    plots.density(ROWS, show=False)
    err = capsys.readouterr().err
    assert err.count("No font with Chinese characters") == 1 and "fonts-wqy-microhei" in err
    assert messages.tr("there is no container named x") == "没有名为 x 的容器"  # text output stays Chinese
