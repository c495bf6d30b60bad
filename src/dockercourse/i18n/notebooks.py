"""Translated notebooks: written from the English master and a catalog, and checked against both.

A translated notebook is the master with each markdown cell's text replaced by its translation: the code
cells, their ids, their metadata (the exercise parts release and grading read) and the notebook's metadata
stay the master's, so the same checks grade it, and so do its outputs (the same code against the same
engine prints the same English lines); the test command's strict nbval verifies them on the engine, as it
does the master's. A translated notebook is therefore exactly what ``build`` writes, and ``check`` says so
when it is not (a master re-recorded or edited without a rebuild, a translated notebook edited by hand).
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


def build_notebook(master, catalog: Catalog):
    """The translated notebook (a new object): ``master`` with the catalog's markdown, code cells as they are,
    outputs included. The toolkit prints English in either notebook, so a code cell's outputs are the same
    in both (strict nbval verifies the translated notebook on the engine); once the toolkit speaks the
    notebook's language, outputs will come from running the translated notebook instead."""
    nb = copy.deepcopy(master)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            e = catalog.cells.get(cell.id)
            if e is not None and e.text.strip():
                cell.source = e.text.rstrip("\n")
    meta = nb.metadata.setdefault(META, {})
    meta["language"] = catalog.language
    meta["translated_from"] = f"../{catalog.chapter}.ipynb"
    return nb


def _same(a, b) -> bool:
    """The same cells: types, ids, sources, metadata, and a code cell's outputs and execution count."""
    if len(a.cells) != len(b.cells) or a.metadata.get(META) != b.metadata.get(META):
        return False
    for x, y in zip(a.cells, b.cells, strict=True):
        if (x.cell_type, x.get("id"), x.source, x.get("metadata")) != (
            y.cell_type,
            y.get("id"),
            y.source,
            y.get("metadata"),
        ):
            return False
        if x.cell_type == "code" and (x.get("outputs"), x.get("execution_count")) != (
            y.get("outputs"),
            y.get("execution_count"),
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
        nb = build_notebook(master, Catalog.load(cat_path))
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
