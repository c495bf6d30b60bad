"""Labelling every image a build makes, by adding the course's labels to the Dockerfile it sends.

``docker build --label`` (docker-py ``labels=``) labels only the final image. The classic
builder also makes one image per step; on the classic image store they hang below the final
image and go with it, but on the containerd image store (Docker 29's default, Docker Desktop)
they stay behind as nameless images after the build. So the course puts one ``LABEL`` line
with its labels right after every ``FROM``: every image of the build, the temporary ones
included, carries them, and the chapter's cleanup finds them (and nothing it did not make).

:func:`labelled_build_kwargs` rewrites the arguments of ``APIClient.build`` accordingly, for
each way docker-py takes a build context: a folder, a Dockerfile as a file object, or a
ready tar archive.
"""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

from docker.utils.build import tar as _tar

log = logging.getLogger(__name__)

#: Name of the labelled copy of the Dockerfile inside the context (the original stays as it is).
LABELLED_DOCKERFILE = ".dockerfile.course"


def label_line(labels: dict) -> str:
    return "LABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items())


def add_labels(text: str, labels: dict) -> str:
    """The Dockerfile ``text`` with one ``LABEL`` line for ``labels`` right after every ``FROM``."""
    if not labels:
        return text
    line = label_line(labels)
    out: list[str] = []
    in_from = False
    for ln in text.rstrip("\n").split("\n"):
        out.append(ln)
        words = ln.split()
        if not in_from and words and words[0].upper() == "FROM":
            in_from = True
        if in_from and not ln.rstrip().endswith("\\"):  # the end of the FROM instruction
            out.append(line)
            in_from = False
    return "\n".join(out) + "\n"


def read_dockerignore(path) -> list[str]:
    """The patterns of ``path/.dockerignore`` as docker-py reads them (comments and blanks dropped)."""
    f = Path(path) / ".dockerignore"
    if not f.exists():
        return []
    return [s for s in (line.strip() for line in f.read_text().splitlines()) if s and not s.startswith("#")]


def labelled_context(path, dockerfile: str | None, labels: dict):
    """A tar of the folder ``path`` (``.dockerignore`` honoured) with the labelled Dockerfile added."""
    dfname = dockerfile or "Dockerfile"
    text = add_labels((Path(path) / dfname).read_text(), labels)
    return _tar(str(path), exclude=read_dockerignore(path), dockerfile=(LABELLED_DOCKERFILE, text))


def _relabel_tar(fileobj, dockerfile: str | None, labels: dict, gzip: bool):
    """A copy of the tar context ``fileobj`` with a labelled Dockerfile added (None when it has none)."""
    dfname = (dockerfile or "Dockerfile").lstrip("./")
    data = fileobj.read()
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as src,
        tarfile.open(fileobj=out, mode="w:gz" if gzip else "w") as dst,
    ):
        text = None
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            dst.addfile(m, f)
            if m.isfile() and m.name.lstrip("./") == dfname:
                text = src.extractfile(m).read().decode("utf-8", "replace")
        if text is None:
            return None, data
        body = add_labels(text, labels).encode()
        info = tarfile.TarInfo(LABELLED_DOCKERFILE)
        info.size = len(body)
        dst.addfile(info, io.BytesIO(body))
    out.seek(0)
    return out, data


def labelled_build_kwargs(args: tuple, kwargs: dict, labels: dict) -> tuple[tuple, dict, bool]:
    """The arguments of ``APIClient.build(*args, **kwargs)`` with ``labels`` after every ``FROM``.

    Returns ``(args, kwargs, labelled)``; ``labelled`` is False when the Dockerfile could not be
    rewritten (a remote context: a URL or git repository), and the caller labels the final image
    with ``labels=`` instead.
    """
    kwargs = dict(kwargs)
    if args:
        kwargs.setdefault("path", args[0])
        args = ()
    path, fileobj = kwargs.get("path"), kwargs.get("fileobj")
    try:
        if fileobj is not None and not kwargs.get("custom_context"):
            text = fileobj.read()
            text = text.decode("utf-8") if isinstance(text, bytes) else text
            kwargs["fileobj"] = io.BytesIO(add_labels(text, labels).encode())
            return args, kwargs, True
        if fileobj is not None:
            if kwargs.get("encoding") not in (None, "gzip"):
                return args, kwargs, False
            new, raw = _relabel_tar(
                fileobj,
                kwargs.get("dockerfile"),
                labels,
                gzip=kwargs.get("encoding") == "gzip" or bool(kwargs.get("gzip")),
            )
            if new is None:
                kwargs["fileobj"] = io.BytesIO(raw)
                return args, kwargs, False
            kwargs.update(fileobj=new, dockerfile=LABELLED_DOCKERFILE)
            return args, kwargs, True
        if path is not None and Path(str(path)).is_dir():
            kwargs.update(
                fileobj=labelled_context(path, kwargs.get("dockerfile"), labels),
                custom_context=True,
                encoding=None,
                dockerfile=LABELLED_DOCKERFILE,
                path=None,
                gzip=False,
            )
            return args, kwargs, True
    except (OSError, UnicodeDecodeError, tarfile.TarError) as e:
        # the engine will report the same problem with the context in its own words
        log.info("build context left as it is: %s", e)
    return args, kwargs, False
