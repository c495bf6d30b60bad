"""The chapter manifest (``chapters.toml`` at the course's root): the one list of chapters.

    from dockercourse.core.chapters import load, get
    for ch in load(root):                  # in order
        ch.number, ch.slug, ch.title, ch.notebook(root), ch.image_refs
    get(root, "08").image_refs             # ['busybox:1.35.0', 'gcc:12']

The grader seeds a VM engine with a chapter's images from here, the image kit makes the images
the chapters use, ``release`` and the tests check every chapter's files against it, and the
README's chapter table is checked against it. Nothing reads notebooks to find out what a
chapter needs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from dockercourse.core.images import COURSE_IMAGES
from dockercourse.errors import UsageError

MANIFEST = "chapters.toml"
#: what a chapter's ``needs`` may name: ``limits``: the engine enforces memory and CPU limits (cgroups)
NEEDS = ("limits",)


@dataclass(frozen=True)
class Chapter:
    number: str
    slug: str
    title: str
    teaching: int
    exercises: int
    images: tuple[str, ...]  # roles of COURSE_IMAGES
    needs: tuple[str, ...] = ()  # what grading its exercises needs of an engine (NEEDS)

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.slug}"

    def notebook(self, root: Path) -> Path:
        return Path(root) / "notebooks" / f"{self.stem}.ipynb"

    def lesson(self, root: Path) -> Path:
        return Path(root) / "lessons" / f"{self.stem}.md"

    def checks(self, root: Path) -> Path:
        return Path(root) / "checks" / f"{self.stem}.py"

    @property
    def image_refs(self) -> list[str]:
        """The pinned references of the chapter's images (``busybox:1.35.0`` ...)."""
        return [COURSE_IMAGES[role] for role in self.images]


def load(root: Path | str) -> list[Chapter]:
    """Every chapter of the course at ``root``, in order."""
    path = Path(root) / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path} is missing: the course's chapter manifest (see docs/authoring.md)"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    out = []
    for i, entry in enumerate(data.get("chapter") or [], 1):
        try:
            ch = Chapter(
                number=f"{int(entry['number']):02d}",
                slug=str(entry["slug"]),
                title=str(entry["title"]),
                teaching=int(entry["teaching"]),
                exercises=int(entry["exercises"]),
                images=tuple(entry.get("images") or ()),
                needs=tuple(entry.get("needs") or ()),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise UsageError(f"{path}: chapter entry {i} lacks or mistypes {e}") from None
        unknown = [r for r in ch.images if r not in COURSE_IMAGES]
        if unknown:
            raise UsageError(
                f"{path}: chapter {ch.number} names unknown images {unknown}; "
                f"the course's are {list(COURSE_IMAGES)}"
            )
        if [n for n in ch.needs if n not in NEEDS]:
            raise UsageError(f"{path}: chapter {ch.number} needs {list(ch.needs)}; known: {list(NEEDS)}")
        out.append(ch)
    return out


def get(root: Path | str, number: str) -> Chapter:
    """One chapter by its number (``"02"`` or ``"2"``)."""
    try:
        want = f"{int(str(number)[:2]):02d}"
    except ValueError:
        raise UsageError(f"not a chapter number: {number!r}") from None
    chapters = load(root)
    for ch in chapters:
        if ch.number == want:
            return ch
    raise UsageError(
        f"no chapter {want} in {Path(root) / MANIFEST}; "
        f"the course has {', '.join(c.number for c in chapters)}"
    )


def all_image_refs(root: Path | str) -> list[str]:
    """The images some chapter uses, in the order of COURSE_IMAGES."""
    used = {role for ch in load(root) for role in ch.images}
    return [ref for role, ref in COURSE_IMAGES.items() if role in used]
