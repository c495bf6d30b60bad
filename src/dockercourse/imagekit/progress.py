"""tqdm progress bars for pulls and pushes (one bar per layer), off when not wanted."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class LayerBars:
    """Turns the engine's pull/push JSON stream into one tqdm bar per layer."""

    def __init__(self, title: str, enabled: bool = True):
        self.title = title
        # one bar per layer only where bars redraw in place (a terminal, a notebook);
        # in a CI log they would print thousands of lines
        self.enabled = enabled and interactive()
        self.bars: dict[str, tqdm] = {}
        self.error: str | None = None
        self.digest: str | None = None

    def feed(self, ev: dict) -> None:
        if "error" in ev or "errorDetail" in ev:
            self.error = (ev.get("errorDetail") or {}).get("message") or ev.get("error") or "failed"
            return
        st = ev.get("status", "")
        if st.startswith("Digest: ") or "digest: sha256:" in st:
            self.digest = st.split("sha256:", 1)[1].split()[0]
            self.digest = "sha256:" + self.digest
        aux = ev.get("aux") or {}
        if aux.get("Digest"):
            self.digest = aux["Digest"]
        if not self.enabled:
            return
        lid = ev.get("id")
        detail = ev.get("progressDetail") or {}
        if not lid or ":" in lid:
            return
        total = detail.get("total")
        cur = detail.get("current")
        bar = self.bars.get(lid)
        if bar is None and total:
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
                desc=f"{self.title} {lid[:12]}",
                file=sys.stderr,
                dynamic_ncols=True,
            )
            self.bars[lid] = bar
        if bar is None:
            return
        if total and bar.total != total:
            bar.total = total
        if cur is not None:
            bar.n = min(cur, bar.total or cur)
            bar.refresh()
        if st in ("Pull complete", "Pushed", "Layer already exists", "Already exists", "Download complete"):
            bar.n = bar.total or bar.n
            bar.refresh()

    def close(self) -> None:
        for b in self.bars.values():
            b.close()
        self.bars.clear()


def interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def steps(total: int, enabled: bool, desc: str):
    """An overall bar over the course images (a no-op bar when disabled)."""
    return tqdm(
        total=total,
        desc=desc,
        unit="image",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5 if interactive() else 30,
    )
