"""Argument types and helpers shared by the subcommands (cheap to import: nothing heavy at the top)."""

from __future__ import annotations

import argparse
import sys

from dockercourse.errors import UsageError


def chapter(text: str) -> str:
    """argparse ``type=``: a chapter as ``02``, ``2`` or ``02_core_concepts`` -> ``"02"``."""
    from dockercourse.core.namespace import chapter_number

    try:
        return chapter_number(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def namespace(chapter: str, tag: str | None = None):
    """The :class:`~dockercourse.core.namespace.Namespace` of a command's run; a bad tag is a UsageError."""
    from dockercourse.core.namespace import Namespace

    try:
        return Namespace.for_chapter(chapter, tag=tag)
    except ValueError as e:
        raise UsageError(str(e)) from None


def log(msg: str) -> None:
    """Progress of a long command: on stderr, so that stdout stays what a script reads."""
    print(msg, file=sys.stderr, flush=True)
