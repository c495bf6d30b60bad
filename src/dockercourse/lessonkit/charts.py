"""Bar charts of values the notebook measured on the engine (sizes, counts, times).

from dockercourse.lessonkit.charts import bars
bars({"image size": {"a": 5_000_000, "b": 2_000_000}, "layers": {"a": 4, "b": 2}},
     units={"image size": "bytes"}, title="Two ways to write the same image")
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from dockercourse.i18n.figures import figure_text, use_language
from dockercourse.lessonkit.draw import human, show


def bars(
    panels: dict[str, dict[str, float]],
    units: dict[str, str] | None = None,
    title: str = "",
    log: tuple[str, ...] = (),
):
    """One horizontal bar chart per panel, side by side; each panel maps a label to a value.

    Args:
        panels: panel title -> {bar label: value}.
        units: panel title -> "bytes" to print values as kB/MB (default: plain numbers).
        title: the figure's title.
        log: panel titles drawn on a logarithmic axis (for sizes that differ a hundredfold).
    """
    use_language()  # before the figure: its texts take the font then
    units = units or {}
    n = len(panels)
    rows = max(len(v) for v in panels.values())
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 0.55 * rows + 1.4), squeeze=False)
    colors = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#fdae6b"]
    for ax, (ptitle, values) in zip(axes[0], panels.items(), strict=True):
        labels = list(values)[::-1]
        vals = [values[k] for k in labels]
        ax.barh(labels, vals, color=[colors[i % len(colors)] for i in range(len(labels))][::-1])
        for y, v in enumerate(vals):
            text = (
                human(v)
                if units.get(ptitle) == "bytes"
                else (f"{v:g}" if isinstance(v, (int, float)) else str(v))
            )
            ax.text(v, y, " " + text, va="center", fontsize=9)
        if ptitle in log:
            ax.set_xscale("log")
        ax.set_xlim(right=(max(vals) * (8 if ptitle in log else 1.3)) or 1)
        ax.set_title(ptitle, fontsize=10)
        ax.tick_params(axis="y", labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if title:
        fig.suptitle(figure_text(title))
    fig.tight_layout()
    return show(fig)
