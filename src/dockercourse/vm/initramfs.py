"""Write an initramfs (gzip'd ``newc`` cpio) in pure Python: no root, no cpio tool.

Device nodes (``/dev/console``, ``/dev/null``) are written into the archive directly,
which an unprivileged ``mknod`` could not do.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["build", "CpioWriter"]

_DIR, _FILE, _LINK, _CHR = 0o040000, 0o100000, 0o120000, 0o020000


class CpioWriter:
    """Append entries to a newc cpio stream."""

    def __init__(self, out):
        self.out = out
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        rdev: tuple[int, int] = (0, 0),
        nlink: int = 1,
        mtime: int = 0,
    ) -> None:
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08X}"
            for v in (self.ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        )
        self.ino += 1
        blob = hdr.encode() + name_b
        blob += b"\0" * (-len(blob) % 4)
        self.out.write(blob)
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        path = _norm(path)
        if not path or path in self.dirs:
            return
        parent = str(PurePosixPath(path).parent)
        if parent not in (".", ""):
            self.mkdir(parent)
        self.dirs.add(path)
        self._entry(path, _DIR | mode, nlink=2)

    def _parents(self, path: str) -> None:
        parent = str(PurePosixPath(path).parent)
        if parent not in (".", ""):
            self.mkdir(parent)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = _norm(path)
        self._parents(path)
        self._entry(path, _FILE | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = _norm(path)
        self._parents(path)
        self._entry(path, _LINK | 0o777, target.encode())

    def chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        path = _norm(path)
        self._parents(path)
        self._entry(path, _CHR | mode, rdev=(major, minor))

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0, nlink=1)
        # pad the archive to 512 bytes like GNU cpio does
        pos = self.out.tell() if hasattr(self.out, "tell") else 0
        self.out.write(b"\0" * (-pos % 512))


def _norm(path: str) -> str:
    return str(PurePosixPath("/" + str(path))).lstrip("/")


def build(
    out: Path,
    files: dict[str, Path | bytes],
    init: str,
    symlinks: dict[str, str] | None = None,
    *,
    compresslevel: int = 6,
) -> Path:
    """Write a gzip'd newc cpio to ``out`` and return ``out``.

    Args:
        out: where to write the archive.
        files: destination path in the guest -> source path on the host, or bytes.
            Host files keep their executable bit; bytes starting with ``#!`` are made
            executable. A source directory is copied recursively (symlinks kept).
        init: the text of ``/init`` (made executable; a shebang is up to you, e.g.
            ``#!/bin/busybox sh``).
        symlinks: link path in the guest -> link target.

    The archive always holds ``/dev/console`` and ``/dev/null`` (device nodes), plus
    ``/proc``, ``/sys``, ``/tmp``, ``/run`` as empty directories.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    w = CpioWriter(raw)
    for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc"):
        w.mkdir(d)
    w.chardev("dev/console", 5, 1)
    w.chardev("dev/null", 1, 3, 0o666)
    for dest, src in sorted(files.items()):
        _add(w, dest, src)
    for dest, target in sorted((symlinks or {}).items()):
        w.symlink(dest, target)
    w.file("init", init.encode(), 0o755)
    w.trailer()
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=compresslevel, mtime=0) as gz:
            gz.write(raw.getbuffer())
    os.replace(tmp, out)
    return out


def _add(w: CpioWriter, dest: str, src) -> None:
    if isinstance(src, (bytes, bytearray)):
        w.file(dest, bytes(src), 0o755 if bytes(src[:2]) == b"#!" else 0o644)
        return
    src = Path(src)
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode) and not src.is_dir():
        # a symlink to a file: store the file itself (its target may not be in the archive)
        src = src.resolve()
        st = os.stat(src)
    if stat.S_ISDIR(st.st_mode):
        w.mkdir(dest, st.st_mode & 0o7777)
        for child in sorted(src.iterdir()):
            cst = os.lstat(child)
            cdest = f"{dest}/{child.name}"
            if stat.S_ISLNK(cst.st_mode):
                w.symlink(cdest, os.readlink(child))
            else:
                _add(w, cdest, child)
        return
    w.file(dest, src.read_bytes(), 0o755 if st.st_mode & 0o111 else 0o644)
