"""The ``dockercourse`` command.

    dockercourse doctor                 can this machine run the course?
    dockercourse images [...]           pull or build the course images (offline kit)
    dockercourse clean [--chapter N]    remove course resources (labelled ones only)
    dockercourse check CHAPTER [EX]     run a chapter's exercise checks
    dockercourse release [...]          write student copies of the notebooks
    dockercourse grade [...]            grade a folder of submissions
    dockercourse bench [...]            chapter 01 benchmarks
    dockercourse engine vm ...          a Docker engine inside a qemu VM
"""

from __future__ import annotations

import importlib
import sys

from dockercourse.errors import CourseError

# subcommand -> (module, help). Each module has main(argv) -> int.
COMMANDS = {
    "doctor": ("dockercourse.core.doctor", "check the engine, images and machine; print fixes"),
    "images": ("dockercourse.imagekit", "pull or build the course images and the local mirror"),
    "clean": ("dockercourse.cleancmd", "remove course resources (by label only)"),
    "check": ("dockercourse.checks", "run a chapter's exercise checks against the engine"),
    "release": ("dockercourse.grading.release", "write student copies (solutions removed)"),
    "grade": ("dockercourse.grading.grade", "grade a folder of submitted notebooks"),
    "bench": ("dockercourse.bench", "run the chapter 01 benchmarks and print figures"),
    "engine": ("dockercourse.vmengine", "a Docker engine in a qemu VM (engine vm up|down|status)"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"dockercourse: no command {cmd!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    modname, _ = COMMANDS[cmd]
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        print(f"dockercourse {cmd}: not available in this version ({e.name} missing)", file=sys.stderr)
        return 2
    entry = getattr(mod, "main", None) or getattr(mod, "_main")
    try:
        return int(entry(rest) or 0)
    except CourseError as e:
        print(f"dockercourse {cmd}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dockercourse {cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
