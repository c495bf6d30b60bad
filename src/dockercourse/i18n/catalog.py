"""A chapter's translation catalog: ``i18n/<lang>/NN_slug.yml``.

::

    language: zh
    chapter: 02_core_concepts
    cells:
      70b00d28:            # the master notebook's cell id
        en: 5d41402abc4b   # hash of the English source this translates (source_hash)
        text: |
          # 02 · 核心概念：镜像、容器与仓库
          ...

The entries are in the order of the master's cells. ``en`` ties a translation to the English it was made
from: when the English cell changes, its hash does, and ``dockercourse i18n check`` reports the entry as
stale until a translator updates the text and the hash (``dockercourse i18n extract`` writes the current
hashes of new cells, with an empty text, for the translator to fill).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dockercourse.errors import CourseError

HASH_LEN = 12


def source_hash(text: str) -> str:
    """The hash that ties a translation to its English source (trailing spaces and newlines ignored)."""
    norm = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:HASH_LEN]


@dataclass
class Entry:
    en: str  # hash of the English source
    text: str  # the translation ("" when not translated yet)


@dataclass
class Catalog:
    language: str
    chapter: str  # the master's stem, NN_slug
    cells: dict[str, Entry] = field(default_factory=dict)

    @staticmethod
    def path(root: Path, language: str, stem: str) -> Path:
        return Path(root) / "i18n" / language / f"{stem}.yml"

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise CourseError(f"{path}: not a readable catalog ({e})") from e
        if not isinstance(data, dict) or not isinstance(data.get("cells") or {}, dict):
            raise CourseError(f"{path}: a catalog has `language`, `chapter` and a mapping `cells`")
        cells = {}
        for cid, e in (data.get("cells") or {}).items():
            if not isinstance(e, dict) or not isinstance(e.get("en"), str):
                raise CourseError(f"{path}: cell {cid}: an entry has `en` (the English hash) and `text`")
            cells[str(cid)] = Entry(en=e["en"], text=str(e.get("text") or ""))
        return cls(language=str(data.get("language", "")), chapter=str(data.get("chapter", "")), cells=cells)

    def dump(self) -> str:
        data = {
            "language": self.language,
            "chapter": self.chapter,
            "cells": {cid: {"en": e.en, "text": e.text} for cid, e in self.cells.items()},
        }
        return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)

    def save(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.dump(), encoding="utf-8")


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks (``|``), so a catalog reads like the markdown it holds."""


def _str(dumper, value: str):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)
