"""Chapter 01 benchmarks: containers vs a virtual machine, measured on this machine.

* :mod:`.containers` - start latency, memory of an idle container, density, CPU-bound work;
* :mod:`.vm`         - a tiny Linux guest under qemu: boot to init, qemu's memory, the same work;
* :mod:`.reference`  - published figures (with sources) plotted beside the live ones;
* :mod:`.plots`      - one figure per comparison; :mod:`.widgets` - an ipywidgets explorer.

From a terminal::

    dockercourse bench                      # quick: 10 starts each way, density up to 30, one VM boot
    dockercourse bench --runs 30 --density 100
    dockercourse bench --full               # density up to 500 containers (minutes; removes them all)
    dockercourse bench --csv results/       # also write every measurement as CSV

Everything the benchmarks start is named ``dc01bench-...`` (from a terminal) or with the
notebook's ``name()``, labelled, and removed before the command ends - also on Ctrl-C.
The command itself (its options and what it prints) is :mod:`dockercourse.cli.bench`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

#: The counts ``dockercourse bench --full`` sweeps density at.
FULL_COUNTS = (1, 10, 25, 50, 100, 200, 300, 400, 500)


def csv_text(rows: list[dict], lineterminator: str = "\r\n") -> str:
    """Measurement rows (dicts) as CSV text, with every key any row has as a column."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator=lineterminator)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def save_csv(rows: list[dict], path: str | Path) -> Path:
    """Write measurement rows (dicts) as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(csv_text(rows))
    return path
