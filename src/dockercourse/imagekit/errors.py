"""The one error the image kit raises: a plain sentence, shown without a traceback."""

from __future__ import annotations

from ..engine import CourseError


class ImageKitError(CourseError):
    """The kit could not make, check or remove an image or the mirror (one clear line)."""
