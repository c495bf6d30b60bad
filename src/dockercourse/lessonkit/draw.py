"""Small matplotlib pictures drawn from the engine's own data.

Each function takes plain values the notebook got from docker-py (so a learner
sees where the numbers come from) and returns the matplotlib Figure.
"""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's inline backend
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from dockercourse.i18n.figures import figure_text, use_language  # noqa: E402


def show(fig):
    """Display ``fig`` once and close it (in IPython); elsewhere return it.

    Returning None in a notebook keeps the figure from being shown twice (once by
    the inline backend, once as the cell's value).
    """
    try:
        get_ipython  # type: ignore[name-defined]  # noqa: B018, F821
    except NameError:
        return fig
    from IPython.display import display

    display(fig)
    plt.close(fig)
    return None


RO = "#9ecae1"  # read-only image layers
RW = "#fdae6b"  # writable container layers


def human(n: float) -> str:
    """Bytes as a short text: 1.2 MB, 512 B (decimal units, as `docker images`)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def layer_stack(
    layers: list[tuple[str, int]],
    containers: dict[str, list[tuple[str, int]]] | None = None,
    title: str = "Image layers and container layers",
):
    """Draw an image's layers (bottom = first) and, on top, each container's writable layer.

    Args:
        layers: ``(label, size_bytes)`` for each image layer, oldest first.
        containers: container name -> its writable-layer entries ``(label, size_bytes)``.
    """
    use_language()  # before the figure: its texts take the font then
    containers = containers or {}
    ncol = max(1, len(containers))
    fig, ax = plt.subplots(figsize=(2.6 + 2.6 * ncol, 0.55 * (len(layers) + 2) + 1.2))
    width = 2.4 * ncol + 0.2 * (ncol - 1)
    y = 0.0
    for label, size in layers:
        ax.add_patch(FancyBboxPatch((0, y), width, 0.8, boxstyle="round,pad=0.02", fc=RO, ec="#3182bd"))
        ax.text(width / 2, y + 0.4, f"{label}  ({human(size)})", ha="center", va="center", fontsize=9)
        y += 1.0
    for i, (cname, entries) in enumerate(containers.items()):
        x = i * 2.6
        text = (
            "\n".join(f"{lab} ({human(sz)})" if sz is not None else lab for lab, sz in entries) or "(empty)"
        )
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                2.4,
                0.8 + 0.25 * max(0, len(entries) - 1),
                boxstyle="round,pad=0.02",
                fc=RW,
                ec="#e6550d",
            )
        )
        ax.text(
            x + 1.2, y + 0.4 + 0.12 * max(0, len(entries) - 1), text, ha="center", va="center", fontsize=8
        )
        ax.text(
            x + 1.2, y + 1.15 + 0.25 * max(0, len(entries) - 1), cname, ha="center", fontsize=9, weight="bold"
        )
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.2, y + 1.8 + 0.25 * max((len(e) for e in containers.values()), default=0))
    ax.axis("off")
    ax.set_title(figure_text(title))
    handles = [
        plt.Rectangle((0, 0), 1, 1, fc=RO, ec="#3182bd"),
        plt.Rectangle((0, 0), 1, 1, fc=RW, ec="#e6550d"),
    ]
    ax.legend(
        handles,
        ["image layer (read-only, shared)", "container layer (writable, own)"],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return show(fig)


def chain(steps: list[tuple[str, str]], title: str = ""):
    """Draw boxes left to right joined by arrows: ``[(heading, detail), ...]``."""
    use_language()  # before the figure: its texts take the font then
    n = len(steps)
    fig, ax = plt.subplots(figsize=(2.3 * n, 1.9))
    for i, (head, detail) in enumerate(steps):
        x = i * 2.3
        ax.add_patch(FancyBboxPatch((x, 0), 1.9, 1.2, boxstyle="round,pad=0.03", fc="#e5f5e0", ec="#31a354"))
        ax.text(x + 0.95, 0.82, head, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x + 0.95, 0.38, detail, ha="center", va="center", fontsize=7.5, wrap=True)
        if i < n - 1:
            ax.annotate(
                "", xy=(x + 2.3, 0.6), xytext=(x + 1.95, 0.6), arrowprops=dict(arrowstyle="->", color="#555")
            )
    ax.set_xlim(-0.2, 2.3 * n)
    ax.set_ylim(-0.2, 1.5)
    ax.axis("off")
    if title:
        ax.set_title(figure_text(title))
    fig.tight_layout()
    return show(fig)
