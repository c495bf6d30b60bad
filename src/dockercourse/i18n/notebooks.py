"""Translated notebooks: written from the English master and a catalog, and checked against both.

A translated notebook is the master with each markdown cell's text replaced by its translation: the code
cells, their ids, their metadata (the exercise parts release and grading read) and the notebook's metadata
stay the master's, so the same checks grade it. Its outputs are its own: the toolkit speaks the notebook's
language (:mod:`dockercourse.i18n.messages`), so a setup line or a check's result reads in Chinese there.
They are recorded by running the translated notebook (``python tools/execute.py notebooks/zh/NN_slug.ipynb``)
and verified like the master's, by the test command's strict nbval on the engine. ``build`` keeps a code
cell's recorded outputs while its source is the master's; a new or changed code cell gets the master's
outputs until the translated notebook is run again (strict nbval names it if they differ).

``check`` says when a translated notebook is not what ``build`` writes (a master edited without a rebuild, a
translated notebook edited by hand): everything but the code cells' outputs is compared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dockercourse.core import chapters
from dockercourse.core.notebooks import META
from dockercourse.i18n.catalog import Catalog, Entry, source_hash


@dataclass
class Problem:
    where: str  # a file, or file:cell id
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def translated_path(root: Path, language: str, stem: str) -> Path:
    return Path(root) / "notebooks" / language / f"{stem}.ipynb"


def first_line(text: str) -> str:
    line = next((s for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= 70 else line[:67] + "..."


def catalog_problems(master, catalog: Catalog, where: str) -> list[Problem]:
    """What a catalog lacks for a master: cells missing or not yet translated, stale ones, orphans."""
    out = []
    md_ids = set()
    for cell in master.cells:
        if cell.cell_type != "markdown":
            continue
        md_ids.add(cell.id)
        e = catalog.cells.get(cell.id)
        first = first_line(cell.source)
        if e is None or not e.text.strip():
            out.append(Problem(f"{where}:{cell.id}", f"not translated: {first!r}"))
        elif e.en != source_hash(cell.source):
            out.append(
                Problem(
                    f"{where}:{cell.id}",
                    f"stale: the English cell changed since it was translated ({first!r}); update the "
                    f"text, then its `en` to {source_hash(cell.source)}",
                )
            )
    for cid in catalog.cells:
        if cid not in md_ids:
            out.append(
                Problem(f"{where}:{cid}", "no markdown cell of the master has this id: drop the entry")
            )
    return out


#: cell metadata a run records (nbclient's timings): the translated notebook's own, not compared
RUN_METADATA = ("execution",)


def _recorded(cell) -> dict:
    return {k: v for k, v in cell.get("metadata", {}).items() if k not in RUN_METADATA}


def build_notebook(master, catalog: Catalog, previous=None):
    """The translated notebook (a new object): ``master`` with the catalog's markdown and its code cells.

    A code cell's outputs (and execution count and timings) are ``previous``'s, the translated notebook as
    it was, where that has the cell with the same source; else the master's, until it is run again."""
    nb = copy.deepcopy(master)
    before = {
        c.get("id"): c for c in (previous.cells if previous is not None else []) if c.cell_type == "code"
    }
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            e = catalog.cells.get(cell.id)
            if e is not None and e.text.strip():
                cell.source = e.text.rstrip("\n")
        elif (old := before.get(cell.get("id"))) is not None and old.source == cell.source:
            cell.outputs = copy.deepcopy(old.get("outputs", []))
            cell.execution_count = old.get("execution_count")
            for k in RUN_METADATA:
                cell.metadata.pop(k, None)
                if k in old.get("metadata", {}):
                    cell.metadata[k] = copy.deepcopy(old.metadata[k])
    meta = nb.metadata.setdefault(META, {})
    meta["language"] = catalog.language
    meta["translated_from"] = f"../{catalog.chapter}.ipynb"
    return nb


def _same(a, b) -> bool:
    """The same cells: types, ids, sources and metadata (a run's timings and a code cell's outputs are the
    translated notebook's own: strict nbval verifies those)."""
    if len(a.cells) != len(b.cells) or a.metadata.get(META) != b.metadata.get(META):
        return False
    for x, y in zip(a.cells, b.cells, strict=True):
        if (x.cell_type, x.get("id"), x.source, _recorded(x)) != (
            y.cell_type,
            y.get("id"),
            y.source,
            _recorded(y),
        ):
            return False
    return True


def check(root: Path, language: str) -> tuple[list[Problem], list[str]]:
    """Every problem of a language's catalogs and notebooks, and the chapters with no catalog yet."""
    root = Path(root)
    problems, untranslated = [], []
    for ch in chapters.load(root):
        cat_path = Catalog.path(root, language, ch.stem)
        out = translated_path(root, language, ch.stem)
        if not cat_path.exists():
            untranslated.append(ch.number)
            if out.exists():
                problems.append(Problem(str(out.relative_to(root)), f"has no catalog {cat_path.name}"))
            continue
        where = str(cat_path.relative_to(root))
        catalog = Catalog.load(cat_path)
        if catalog.language != language or catalog.chapter != ch.stem:
            said = f"says language {catalog.language!r}, chapter {catalog.chapter!r}"
            problems.append(Problem(where, said))
        master = nbformat.read(ch.notebook(root), as_version=4)
        problems += catalog_problems(master, catalog, where)
        current = out.exists() and _same(nbformat.read(out, as_version=4), build_notebook(master, catalog))
        # (the outputs are not compared: a translated notebook's are its own run's, verified by nbval)
        problems += output_problems(root, out, "master", current)
    return problems, untranslated


def output_problems(root: Path, out: Path, source: str, current: bool) -> list[Problem]:
    """A translated file (notebook or lesson) that is missing, or not (``current``) what ``build`` writes from
    its English ``source`` and catalog."""
    where = str(out.relative_to(root))
    if not out.exists():
        return [Problem(where, "missing: run `dockercourse i18n build`")]
    if current:
        return []
    return [
        Problem(
            where,
            f"differs from its {source} and catalog (edited by hand, or not rebuilt): change the "
            f"catalog or the {source}, then run `dockercourse i18n build`",
        )
    ]


def build(root: Path, language: str, numbers: list[str] | None = None) -> list[Path]:
    """Write the translated notebooks of the chapters that have a catalog (or of ``numbers``)."""
    root = Path(root)
    written = []
    for ch in chapters.load(root):
        if numbers and ch.number not in numbers:
            continue
        cat_path = Catalog.path(root, language, ch.stem)
        if not cat_path.exists():
            continue
        master = nbformat.read(ch.notebook(root), as_version=4)
        out = translated_path(root, language, ch.stem)
        previous = nbformat.read(out, as_version=4) if out.exists() else None
        nb = build_notebook(master, Catalog.load(cat_path), previous)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
        written.append(out)
    return written


def extract(root: Path, language: str, number: str) -> tuple[Path, int, int]:
    """Create or refresh a chapter's catalog: an entry (empty text, current hash) for every new markdown
    cell, in the master's order; translations already there are kept as they are (stale ones too), those
    of cells the master no longer has are dropped. Returns the catalog's path, entries added, dropped."""
    root = Path(root)
    ch = chapters.get(root, number)
    master = nbformat.read(ch.notebook(root), as_version=4)
    path = Catalog.path(root, language, ch.stem)
    old = Catalog.load(path) if path.exists() else Catalog(language, ch.stem)
    new = Catalog(language, ch.stem)
    added = 0
    for cell in master.cells:
        if cell.cell_type != "markdown":
            continue
        if cell.id in old.cells:
            new.cells[cell.id] = old.cells[cell.id]
        else:
            new.cells[cell.id] = Entry(en=source_hash(cell.source), text="")
            added += 1
    new.save(path)
    return path, added, len(set(old.cells) - set(new.cells))
