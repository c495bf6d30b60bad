"""Temporary folders a chapter makes on the learner's machine, removed however the chapter ends.

Chapters 03, 06 and 08 write files on the machine: image archives, host folders to mount, build
contexts. ``course.folder("build")`` makes one, private (mode 700), in the temporary folder, named
``dc08-build-<pid>-<random>``: the chapter's prefix, a word for what it holds, and the process (the
notebook's kernel) that made it. It is removed

* by ``course.cleanup()`` (the last cell of the chapter);
* when the kernel stops (restart, shutdown, a closed JupyterLab: ``atexit``), if the chapter never got
  to its last cell;
* by the next ``setup()`` of the same chapter, if the kernel that made it is gone without a word
  (killed, the machine lost power): a folder whose process no longer runs is nobody's.

Only folders of the current user, with the chapter's prefix and a pid in the name, are ever removed;
a folder of a kernel that still runs (the same chapter open twice) is left alone.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

#: The folders this process made, by chapter prefix.
_MADE: dict[str, list[Path]] = {}


def make(prefix: str, word: str) -> Path:
    """A new private folder ``<tmp>/<prefix><word>-<pid>-<random>`` (``word``: letters, digits, ``_``)."""
    if not re.fullmatch(r"[a-z0-9_]+", word):
        raise ValueError(f"a folder's word is lower-case letters, digits or _, not {word!r}")
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{word}-{os.getpid()}-"))
    _MADE.setdefault(prefix, []).append(path)
    return path


def remove_made(prefix: str) -> int:
    """Remove the folders this process made for ``prefix``; how many there were."""
    made = _MADE.pop(prefix, [])
    for p in made:
        shutil.rmtree(p, ignore_errors=True)
    return len(made)


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale(prefix: str) -> int:
    """Remove the folders of ``prefix`` that a process now gone made (and that are the user's)."""
    pattern = re.compile(rf"{re.escape(prefix)}[a-z0-9_]+-(\d+)-[^/]+")
    removed = 0
    for p in Path(tempfile.gettempdir()).glob(f"{prefix}*-*-*"):
        m = pattern.fullmatch(p.name)
        if not m or p.is_symlink() or not p.is_dir():
            continue
        try:
            if p.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _runs(pid):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed += not p.exists()
    return removed


@atexit.register
def _at_exit() -> None:
    for prefix in list(_MADE):
        remove_made(prefix)
