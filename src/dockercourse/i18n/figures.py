"""Figures in the notebook's language: labels through the message catalog, and a CJK font matplotlib finds.

A chapter's plotting code labels its figures with :func:`figure_text` (``ax.set_title(figure_text("Memory of N
containers"))``) and calls :func:`use_language` before it draws. In a Chinese notebook the labels come from
the catalog (:mod:`dockercourse.i18n.messages`) and matplotlib gets a font with Chinese glyphs after its
default one, so Latin text keeps its usual look and each Chinese character is drawn from the CJK font
(matplotlib falls back glyph by glyph along ``font.family``).

The font comes from the distribution's packages: ``./course setup`` (and ``lab``, ``test``) installs
``fonts-wqy-microhei`` on Debian and Ubuntu; Noto Sans CJK (``fonts-noto-cjk``) and the other common ones
are found too. Where none is installed, a figure keeps its English labels (boxes in place of characters
would help nobody) and the first figure says so in one line, with the package to install.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dockercourse.i18n.messages import language, tr

#: font families with Chinese glyphs, the most common first
CJK_FAMILIES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
#: where the distributions put them (matplotlib's font cache, made before a package was installed, may
#: not list them yet: they are added from here)
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".local/share/fonts"))
#: the Debian package the course installs for them
PACKAGE = "fonts-wqy-microhei"

_found: dict[str, str | None] = {}
_warned = False


def cjk_font() -> str | None:
    """The family name of a font with Chinese glyphs that matplotlib can use; None when there is none."""
    if "cjk" in _found:
        return _found["cjk"]
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((n for n in CJK_FAMILIES if n in names), None)

    name = known()
    if name is None:
        for d in FONT_DIRS:
            for pattern in ("**/wqy-*.tt[cf]", "**/NotoSansCJK*.tt[cf]", "**/SourceHanSans*.[ot]t[cf]"):
                for path in Path(d).glob(pattern):
                    try:
                        font_manager.fontManager.addfont(str(path))
                    except (OSError, RuntimeError, ValueError):
                        continue
        name = known()
    _found["cjk"] = name
    return name


def figure_language() -> str:
    """The language figures are labelled in: the notebook's, if a font can draw it; else English."""
    global _warned
    lang = language()
    if lang != "zh" or cjk_font():
        return lang
    if not _warned:
        _warned = True
        print(
            f"(No font with Chinese characters was found, so the figures' labels stay in English: install "
            f"one, e.g. `sudo apt-get install {PACKAGE}`, then restart the kernel.)",
            file=sys.stderr,
        )
    return "en"


def use_language() -> str:
    """Make matplotlib able to draw the figure language's characters; returns that language."""
    lang = figure_language()
    if lang == "zh":
        import matplotlib as mpl

        font = cjk_font()
        latin = next((f for f in mpl.rcParams["font.sans-serif"] if f != font), "DejaVu Sans")
        # two families: matplotlib draws each character from the first that has it (3.6 and newer)
        mpl.rcParams["font.family"] = [latin, font]
        mpl.rcParams["axes.unicode_minus"] = False  # the CJK font's minus sign, not a missing glyph
    return lang


def figure_text(text: str) -> str:
    """A figure's text (title, axis, legend, tick) in the figure language."""
    return tr(text, figure_language())
