"""dockercourse: the toolkit behind the Docker course notebooks.

Notebooks use :func:`setup`; everything else (doctor, clean, images, release,
grade, benchmarks) is reached through the ``dockercourse`` command.
"""

from .course import Course, free_port, setup
from .engine import CourseError, NoEngineError, connect

__all__ = ["setup", "Course", "free_port", "connect", "CourseError", "NoEngineError"]
__version__ = "0.1.0"
