"""An ipywidgets explorer for the chapter 01 benchmarks.

    from dockercourse.bench.widgets import explorer
    explorer(client, name, vm=vm_result)      # shows the controls; returns None

Controls: the number of start runs, N containers for the density sweep, which
measurement to run. "Run" measures on the engine **in a background thread**, so the
kernel stays free (other cells run meanwhile) while a progress bar counts; "Cancel" stops
it at the next step and removes what it started; the plot is redrawn when it is done. A
second Run while one is in progress is refused with a message. "Save CSV" gives the
browser a download of what was measured last (a ``data:`` link: it works on Binder and a
hub, where the server's files are out of reach) and also writes it to ``bench-results/``
on the server, saying where.
"""

from __future__ import annotations

import base64
import html
import io
import threading
from pathlib import Path

from dockercourse.bench import containers as C
from dockercourse.bench import csv_text, plots, save_csv
from dockercourse.i18n.messages import N_, tr

METRICS = {  # shown in the notebook's language (dockercourse.i18n.messages)
    N_("start latency (with and without network)"): "start",
    N_("density: N idle containers"): "density",
    N_("memory of one idle container"): "memory",
    N_("CPU-bound work: native vs container"): "cpu",
}


class Cancelled(Exception):
    """The learner pressed Cancel."""


def density_counts(n: int) -> list[int]:
    """The counts a sweep up to ``n`` measures at (about 6 points)."""
    pts = {1, n}
    for f in (0.1, 0.25, 0.5, 0.75):
        pts.add(max(1, round(n * f)))
    return sorted(pts)


def download_link(rows: list[dict], filename: str) -> str:
    """An HTML link that makes the browser save ``rows`` as the CSV file ``filename``."""
    data = base64.b64encode(csv_text(rows, lineterminator="\n").encode()).decode()
    name = html.escape(filename, quote=True)
    return f'<a download="{name}" href="data:text/csv;base64,{data}">{tr(f"download {name}")}</a>'


def measure(kind: str, client, name, *, runs: int, n: int, vm, step) -> tuple[list[dict], object]:
    """One measurement: its rows and its figure. ``step(k)`` is called as it goes (k steps done;
    it raises :class:`Cancelled` to stop, and the measurement removes what it started)."""
    if kind == "start":
        res = {net: C.start_latency(client, name, runs, net, progress=step) for net in ("bridge", "none")}
        return res["bridge"] + res["none"], plots.start_latency(res, vm, show=False)
    if kind == "density":
        rows = C.density(client, name, density_counts(n), progress=step)
        return rows, plots.density(rows, show=False)
    if kind == "memory":
        m = C.idle_container_memory(client, name)
        step(1)
        return [m], plots.memory(m, vm, show=False)
    bb = C.busybox_binary(client)
    step(1)
    cc = C.cpu_compare(client, name, bb)
    step(1)
    rows = [{"where": "native", "seconds": cc["native"]}, {"where": "container", "seconds": cc["container"]}]
    return rows, plots.cpu(cc["native"], cc["container"], vm, show=False)


def steps_of(kind: str, runs: int, n: int) -> int:
    return {"start": 2 * runs, "density": n, "memory": 1, "cpu": 2}[kind]


class Explorer:
    """The explorer's state and actions (the widgets call these; tests can too)."""

    def __init__(self, client, name, vm=None, n_max: int = 100, out_dir: str | Path = "bench-results"):
        import ipywidgets as W

        self.client, self.name, self.vm, self.out_dir = client, name, vm, Path(out_dir)
        self.kinds = {tr(label): kind for label, kind in METRICS.items()}  # what the dropdown shows -> kind
        self.runs = W.IntSlider(value=5, min=3, max=50, description=tr("start runs"), continuous_update=False)
        self.n = W.IntSlider(
            value=min(20, n_max), min=2, max=n_max, description=tr("N containers"), continuous_update=False
        )
        self.metric = W.Dropdown(
            options=list(self.kinds), description=tr("measure"), layout=W.Layout(width="420px")
        )
        self.go = W.Button(description=tr("Run"), button_style="primary", icon="play")
        self.stop = W.Button(description=tr("Cancel"), icon="stop", disabled=True)
        self.save = W.Button(description=tr("Save CSV"), icon="download", disabled=True)
        self.bar = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="300px"))
        self.status = W.HTML("")
        self.link = W.HTML("")
        self.out = W.Output()
        self.last: dict = {}
        self.thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self.go.on_click(lambda _: self.start())
        self.stop.on_click(lambda _: self.cancel())
        self.save.on_click(lambda _: self.save_csv())
        self.box = W.VBox(
            [
                W.HBox([self.metric]),
                W.HBox([self.runs, self.n]),
                W.HBox([self.go, self.stop, self.save, self.bar]),
                self.status,
                self.link,
                self.out,
            ]
        )

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> bool:
        """Start the chosen measurement in a background thread; False (with a message) when one runs."""
        if self.busy:
            self.status.value = tr("a measurement is still running: wait for it, or press Cancel")
            return False
        kind = self.kinds[self.metric.value]
        self._cancel.clear()
        self.bar.value, self.bar.max = 0, steps_of(kind, self.runs.value, self.n.value)
        self.status.value = tr(f"measuring: {html.escape(self.metric.value)} …")
        self.go.disabled, self.stop.disabled = True, False
        args = (kind, self.metric.value, self.runs.value, self.n.value)
        self.thread = threading.Thread(target=self._work, args=args, name="dc01-explorer", daemon=True)
        self.thread.start()
        return True

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status.value = tr("cancelling: removing what the measurement started …")

    def _step(self, k: int = 1) -> None:
        if self._cancel.is_set():
            raise Cancelled
        self.bar.value = min(self.bar.max, self.bar.value + k)

    def _work(self, kind: str, title: str, runs: int, n: int) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import Image

        try:
            rows, fig = measure(kind, self.client, self.name, runs=runs, n=n, vm=self.vm, step=self._step)
            png = io.BytesIO()
            fig.savefig(png, format="png", bbox_inches="tight")
            plt.close(fig)
            self.out.clear_output()
            self.out.append_display_data(Image(data=png.getvalue(), format="png"))
            self.last = {"kind": kind, "rows": rows}
            self.status.value = tr(f"measured: {html.escape(title)}")
            self.save.disabled = False
        except Cancelled:
            self.status.value = tr("cancelled; the benchmark's containers were removed")
        except Exception as e:  # noqa: BLE001 - a thread's error would vanish: show it
            self.status.value = html.escape(tr(f"failed: {e.__class__.__name__}: {e}"))
        finally:
            self.go.disabled, self.stop.disabled = False, True

    def save_csv(self) -> Path | None:
        """A browser download of the last measurement, and the same file on the server."""
        if not self.last:
            return None
        fname = f"{self.last['kind']}.csv"
        p = save_csv(self.last["rows"], self.out_dir / fname)
        self.link.value = (
            download_link(self.last["rows"], fname)
            + f" <small>{tr(f'(also saved on the server as {html.escape(str(p))})')}</small>"
        )
        return p


def explorer(client, name, vm=None, n_max: int = 100, out_dir: str | Path = "bench-results"):
    """Display the benchmark explorer (returns None, so the cell shows only the widgets)."""
    from IPython.display import display

    display(Explorer(client, name, vm=vm, n_max=n_max, out_dir=out_dir).box)
    return None
