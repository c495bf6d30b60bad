"""dockercourse: the toolkit behind the Docker course notebooks.

Notebooks use :func:`setup` and the pinned image names (``from dockercourse import setup, BUSYBOX``),
and the chapter helpers of :mod:`dockercourse.lessonkit`; everything else (doctor, clean, images, release,
grade, benchmarks, engines) is reached through the ``dockercourse`` command.

The public names are imported on first use, so that the parts that run before the
course's Python environment exists (``dockercourse.engines``, standard library only)
can be imported without docker-py.
"""

from __future__ import annotations

import importlib

__all__ = [
    "setup",
    "Course",
    "free_port",
    "connect",
    "CourseError",
    "NoEngineError",
    "BUSYBOX",
    "DEBIAN",
    "PYTHON",
    "NGINX",
    "REGISTRY",
    "BUILDER",
    "COURSE_IMAGES",
    "familiar",
]
__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first use)
_PUBLIC = {
    "setup": "notebook.course",
    "Course": "notebook.course",
    "free_port": "notebook.course",
    "connect": "core.engine",
    "CourseError": "errors",
    "NoEngineError": "errors",
    **{
        name: "core.images"
        for name in (
            "BUSYBOX",
            "DEBIAN",
            "PYTHON",
            "NGINX",
            "REGISTRY",
            "BUILDER",
            "COURSE_IMAGES",
            "familiar",
        )
    },
}


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])
