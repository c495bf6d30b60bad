#!/usr/bin/env python3
"""Execute notebooks in place (fresh kernel, cwd = the notebook's folder) so committed outputs are current.

    python tools/execute.py notebooks/02_core_concepts.ipynb [more.ipynb ...]

Execution counts are kept (nbval compares only cells that have one).
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(paths):
    for p in map(Path, paths):
        nb = nbformat.read(p, as_version=4)
        t0 = time.monotonic()
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(p.parent.resolve())}}
        ).execute()
        nbformat.write(nb, p)
        print(f"{p}: executed in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
