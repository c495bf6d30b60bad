"""Timelines of what happened to containers, drawn from the engine's own event times.

    from dockercourse.lessonkit.timeline import timeline
    timeline(
        [("web", [(0, 3.0, "running", "#fdae6b")], [(0.0, "kill (signal 15)"), (3.0, "kill (signal 9)")])],
        title="docker stop -t 3",
    )

Like :mod:`dockercourse.lessonkit.draw`, the function takes plain values the notebook got
from docker-py (``client.events(...)``) and displays the figure (returning None
in IPython).
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's inline backend
import matplotlib.pyplot as plt  # noqa: E402

from dockercourse.i18n.figures import figure_text, use_language  # noqa: E402
from dockercourse.lessonkit.draw import show  # noqa: E402


def engine_now(client) -> float:
    """The engine's clock now (POSIX seconds), for ``client.events(since=..., until=...)``.

    Event times are the engine's: a VM engine's clock (Docker Desktop's, the course's) can run a
    little ahead of this machine's, and an ``until`` read from this machine's clock then drops the
    last events. Falls back to this machine's clock when the engine does not say its time.
    """
    from dockercourse.core.buildcache import epoch

    try:
        return epoch(client.info().get("SystemTime") or "")
    except ValueError:
        return time.time()


def timeline(
    rows: list[tuple[str, list[tuple[float, float, str, str]], list[tuple[float, str]]]],
    title: str = "",
    xlabel: str = "seconds",
):
    """Draw one horizontal lane per row: coloured spans and labelled instants.

    Args:
        rows: ``(label, spans, marks)`` per lane, top to bottom; ``spans`` are
            ``(start, end, text, colour)`` and ``marks`` are ``(time, text)``.
        title: the figure's title.
        xlabel: the unit of the time axis.
    """
    use_language()  # before the figure: its texts take the font then
    n = len(rows)
    fig, ax = plt.subplots(figsize=(9, 1.0 + 1.15 * n))
    tmax = 0.0
    for i, (_label, spans, marks) in enumerate(rows):
        y = n - 1 - i
        for start, end, text, colour in spans:
            ax.barh(y, end - start, left=start, height=0.42, color=colour, edgecolor="#444")
            if text:
                ax.text(start + (end - start) / 2, y, text, ha="center", va="center", fontsize=8)
            tmax = max(tmax, end)
        for j, (t, text) in enumerate(marks):
            ax.plot([t, t], [y - 0.3, y + 0.3], color="#b30000", lw=1.6)
            ax.annotate(
                text,
                (t, y + 0.3),
                xytext=(0, 4 + 9 * (j % 2)),
                textcoords="offset points",
                ha="center",
                fontsize=7.5,
                color="#b30000",
            )
            tmax = max(tmax, t)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=9)
    ax.set_ylim(-0.6, n - 0.1 + 0.35)
    ax.set_xlim(-0.05 * max(tmax, 1), tmax * 1.08 + 0.1)
    ax.set_xlabel(xlabel)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(figure_text(title))
    fig.tight_layout()
    return show(fig)
