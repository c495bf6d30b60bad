"""The ``dockercourse`` command: one parser, one error handler, one module a subcommand.

    dockercourse doctor                       can this machine run the course?
    dockercourse images [...]                 pull or build the course images (offline kit)
    dockercourse clean [--chapter N]          remove course resources (labelled ones only)
    dockercourse check CHAPTER [EXERCISE]     run a chapter's exercise checks
    dockercourse release [...]                write student copies of the notebooks
    dockercourse grade [...]                  grade a folder (or an LMS's zip) of submissions
    dockercourse gradebook record|show|student|export   the course's grades across chapters
    dockercourse bench [...]                  chapter 01 benchmarks
    dockercourse engine up|down|status|remove|list   the course's engines on this machine
    dockercourse engine vm up|down|status|build      a Docker engine inside a qemu VM
    dockercourse classroom up|down|status     JupyterHub for a class, an engine per student
    dockercourse i18n check|build|extract     the translated notebooks (catalogs in i18n/LANG/)

A subcommand is a module ``dockercourse/cli/<name>.py`` with two functions:

* ``register(sub)`` adds its parser to ``sub`` (argparse's subparsers) with a help and a
  description, and ``p.set_defaults(run=run)`` (on each leaf, when it has subcommands);
* ``run(args) -> int`` does the work and returns the exit status.

``register`` imports nothing heavy (docker, nbclient, matplotlib, ...) and touches no
engine, so that ``--help`` is instant and works anywhere; ``run`` imports and connects.
Errors are handled here, once: a :class:`~dockercourse.errors.CourseError` prints
``dockercourse <command>: <message>`` on stderr and exits 1 (2 for a
:class:`~dockercourse.errors.UsageError`); a bad argument prints one usage line and one
error line and exits 2; Ctrl-C exits 130. Anything else keeps its traceback: it is a bug.
A command may ``set_defaults(interrupted="...")`` to say what to do after a Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from dockercourse.errors import CourseError, UsageError

__all__ = ["Parser", "main", "parser"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one usage line and one error line (exit 2)."""

    def error(self, message: str):
        usage = " ".join(self.format_usage().split())
        self.exit(2, f"{usage}\n{self.prog}: error: {message}\n")


class SubParser(Parser):
    """A subcommand's parser: an unknown argument is reported with the subcommand's own usage."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _commands() -> tuple:
    """The subcommand modules, in the order ``--help`` lists them."""
    from dockercourse.cli import (
        bench,
        check,
        classroom,
        clean,
        doctor,
        engine,
        grade,
        gradebook,
        i18n,
        images,
        release,
    )

    return (doctor, images, clean, check, release, grade, gradebook, bench, engine, classroom, i18n)


def parser() -> Parser:
    """The whole command line: ``dockercourse`` and every subcommand."""
    p = Parser(
        prog="dockercourse",
        description="A hands-on Docker course: set up, check and grade from a terminal.",
        epilog="`dockercourse COMMAND --help` tells more about each command. See README.md.",
    )
    sub = p.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True, parser_class=SubParser
    )
    for mod in _commands():
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``dockercourse`` with ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:  # --help (0) or a bad argument (2): argparse has printed it
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    who = f"dockercourse {args.command}"
    try:
        return int(args.run(args) or 0)
    except UsageError as e:
        print(f"{who}: {e}", file=sys.stderr)
        return 2
    except CourseError as e:
        print(f"{who}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = getattr(args, "interrupted", None)
        print(f"{who}: interrupted" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return 130
