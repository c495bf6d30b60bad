"""An ipywidgets explorer for the chapter 01 benchmarks.

    from dockercourse.bench.widgets import explorer
    explorer(client, name, vm=vm_result)      # shows the controls; returns None

Controls: the number of start runs, N containers for the density sweep, which
measurement to run; "Run" measures on the engine (with a progress bar) and redraws
the plot; "Save CSV" writes what was measured last to ``bench-results/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from dockercourse.bench import containers as C
from dockercourse.bench import plots, save_csv

METRICS = {
    "start latency (with and without network)": "start",
    "density: N idle containers": "density",
    "memory of one idle container": "memory",
    "CPU-bound work: native vs container": "cpu",
}


def density_counts(n: int) -> list[int]:
    """The counts a sweep up to ``n`` measures at (about 6 points)."""
    pts = {1, n}
    for f in (0.1, 0.25, 0.5, 0.75):
        pts.add(max(1, round(n * f)))
    return sorted(pts)


def explorer(client, name, vm=None, n_max: int = 100, out_dir: str | Path = "bench-results"):
    """Display the benchmark explorer (returns None, so the cell shows only the widgets)."""
    import ipywidgets as W
    from IPython.display import display
    from tqdm.auto import tqdm

    runs = W.IntSlider(value=5, min=3, max=50, description="start runs", continuous_update=False)
    n = W.IntSlider(
        value=min(20, n_max), min=2, max=n_max, step=1, description="N containers", continuous_update=False
    )
    metric = W.Dropdown(options=list(METRICS), description="measure", layout=W.Layout(width="420px"))
    go = W.Button(description="Run", button_style="primary", icon="play")
    save = W.Button(description="Save CSV", icon="download", disabled=True)
    status = W.HTML("")
    out = W.Output()
    last: dict = {}

    def run(_):
        kind = METRICS[metric.value]
        go.disabled = True
        out.clear_output(wait=True)
        try:
            with out:
                if kind == "start":
                    with tqdm(total=2 * runs.value, desc="starting containers") as bar:
                        res = {
                            net: C.start_latency(client, name, runs.value, net, progress=bar.update)
                            for net in ("bridge", "none")
                        }
                    plt.close("all")
                    plots.start_latency(res, vm)
                    last.update(kind=kind, rows=res["bridge"] + res["none"])
                elif kind == "density":
                    with tqdm(total=n.value, desc="idle containers") as bar:
                        rows = C.density(client, name, density_counts(n.value), progress=bar.update)
                    plt.close("all")
                    plots.density(rows)
                    last.update(kind=kind, rows=rows)
                elif kind == "memory":
                    m = C.idle_container_memory(client, name)
                    plt.close("all")
                    plots.memory(m, vm)
                    last.update(kind=kind, rows=[m])
                else:
                    bb = C.busybox_binary(client)
                    cc = C.cpu_compare(client, name, bb)
                    nat, con = cc["native"], cc["container"]
                    plt.close("all")
                    plots.cpu(nat, con, vm)
                    last.update(
                        kind=kind,
                        rows=[{"where": "native", "seconds": nat}, {"where": "container", "seconds": con}],
                    )
            status.value = f"measured: {metric.value}"
            save.disabled = False
        except KeyboardInterrupt:
            status.value = "interrupted; the benchmark's containers were removed"
        except Exception as e:  # noqa: BLE001 - a callback's error would vanish into the widget log
            status.value = f"failed: {e.__class__.__name__}: {e}"
        finally:
            go.disabled = False

    def do_save(_):
        if last:
            p = save_csv(last["rows"], Path(out_dir) / f"{last['kind']}.csv")
            status.value = f"saved {p}"

    go.on_click(run)
    save.on_click(do_save)
    display(W.VBox([W.HBox([metric]), W.HBox([runs, n]), W.HBox([go, save, status]), out]))
    return None
