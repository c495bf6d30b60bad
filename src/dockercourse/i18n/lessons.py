"""Translated lessons: ``lessons/<lang>/NN_slug.md``, written from the English lesson and its catalog.

A lesson is cut into sections at its headings (outside code blocks); the part before the first heading is
the front matter. Each section is one catalog entry (``i18n/<lang>/lessons/NN_slug.yml``), keyed by its
heading (``concepts``, ``cli-docker-py``; ``front-matter``) and carrying the hash of the English section it
translates, as a notebook's markdown cells are (:mod:`.notebooks`). The translated front matter keeps the
chapter's numbers and points ``notebook:`` at the translated notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

from dockercourse.core import chapters
from dockercourse.i18n.catalog import Catalog, Entry, source_hash
from dockercourse.i18n.notebooks import Problem, first_line, output_problems


def sections(text: str) -> list[tuple[str, str]]:
    """``[(key, text)]``: the lesson cut at its headings, in order; keys are unique."""
    parts: list[list[str]] = [[]]
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("#") and any(s.strip() for s in parts[-1]):
            parts.append([])
        parts[-1].append(line)
    out, seen = [], {}
    for lines in parts:
        body = "\n".join(lines).strip("\n")
        if not body:
            continue
        head = lines[0] if lines[0].startswith("#") else ""
        key = _slug(head.lstrip("#")) if head else ("front-matter" if body.startswith("---") else "intro")
        seen[key] = seen.get(key, 0) + 1
        out.append((key if seen[key] == 1 else f"{key}-{seen[key]}", body))
    return out


def _slug(heading: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
    return s[:48].rstrip("-") or "section"


def catalog_path(root: Path, language: str, stem: str) -> Path:
    return Path(root) / "i18n" / language / "lessons" / f"{stem}.yml"


def translated_path(root: Path, language: str, stem: str) -> Path:
    return Path(root) / "lessons" / language / f"{stem}.md"


def build_lesson(english: str, catalog: Catalog) -> str:
    """The translated lesson: each section's translation (the English where there is none yet)."""
    out = []
    for key, body in sections(english):
        e = catalog.cells.get(key)
        out.append(e.text.strip("\n") if e is not None and e.text.strip() else body)
    return "\n\n".join(out) + "\n"


def catalog_problems(english: str, catalog: Catalog, where: str) -> list[Problem]:
    out, keys = [], set()
    for key, body in sections(english):
        keys.add(key)
        e = catalog.cells.get(key)
        first = first_line(body)
        if e is None or not e.text.strip():
            out.append(Problem(f"{where}:{key}", f"not translated: {first!r}"))
        elif e.en != source_hash(body):
            out.append(
                Problem(
                    f"{where}:{key}",
                    f"stale: the English section changed since it was translated ({first!r}); update the "
                    f"text, then its `en` to {source_hash(body)}",
                )
            )
    out += [
        Problem(f"{where}:{key}", "the English lesson has no such section: drop the entry")
        for key in catalog.cells
        if key not in keys
    ]
    return out


def check(root: Path, language: str) -> tuple[list[Problem], list[str]]:
    """The problems of a language's lesson catalogs and lessons, and the chapters with no catalog yet."""
    root = Path(root)
    problems, untranslated = [], []
    for ch in chapters.load(root):
        cat_path, out = catalog_path(root, language, ch.stem), translated_path(root, language, ch.stem)
        if not cat_path.exists():
            untranslated.append(ch.number)
            if out.exists():
                problems.append(Problem(str(out.relative_to(root)), f"has no catalog {cat_path.name}"))
            continue
        catalog = Catalog.load(cat_path)
        english = ch.lesson(root).read_text(encoding="utf-8")
        problems += catalog_problems(english, catalog, str(cat_path.relative_to(root)))
        current = out.exists() and out.read_text(encoding="utf-8") == build_lesson(english, catalog)
        problems += output_problems(root, out, "lesson", current)
    return problems, untranslated


def build(root: Path, language: str, numbers: list[str] | None = None) -> list[Path]:
    root, written = Path(root), []
    for ch in chapters.load(root):
        cat_path = catalog_path(root, language, ch.stem)
        if (numbers and ch.number not in numbers) or not cat_path.exists():
            continue
        out = translated_path(root, language, ch.stem)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(build_lesson(ch.lesson(root).read_text(encoding="utf-8"), Catalog.load(cat_path)))
        written.append(out)
    return written


def extract(root: Path, language: str, number: str) -> tuple[Path, int, int]:
    """Create or refresh a lesson's catalog (as :func:`.notebooks.extract` does a notebook's)."""
    root = Path(root)
    ch = chapters.get(root, number)
    path = catalog_path(root, language, ch.stem)
    old = Catalog.load(path) if path.exists() else Catalog(language, ch.stem)
    new, added = Catalog(language, ch.stem), 0
    for key, body in sections(ch.lesson(root).read_text(encoding="utf-8")):
        if key in old.cells:
            new.cells[key] = old.cells[key]
        else:
            new.cells[key] = Entry(en=source_hash(body), text="")
            added += 1
    new.save(path)
    return path, added, len(set(old.cells) - set(new.cells))
