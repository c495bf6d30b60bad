"""What a grade is: one exercise's, one submission's, one batch's; statuses and their meaning.

A :class:`SubmissionGrade` round-trips through a plain dict (``results/<student>.json``),
which is how worker processes hand results back and how a resumed run reuses them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Statuses of a graded submission.
OK = "ok"
TIMEOUT = "timeout"
DIED = "kernel died"
NOT_NOTEBOOK = "not a notebook"
ERROR = "grader error"

STATUS_TEXT = {
    OK: "the notebook ran to its end",
    TIMEOUT: (
        "the notebook ran out of time and was stopped; exercises not reached were checked when it stopped"
    ),
    DIED: "the notebook's kernel died; exercises not reached were checked when it died",
    NOT_NOTEBOOK: "the file could not be read as a Jupyter notebook, so nothing was run",
    ERROR: "the grader itself failed on this submission; ask your instructor",
}

#: Bump when a change makes earlier results/*.json unusable for a resumed run.
GRADER_VERSION = 2

#: ``where`` of an exercise that was never checked.
NOT_CHECKED = "not checked"


@dataclass
class ExerciseGrade:
    """The grade of one exercise of one submission."""

    id: str
    title: str
    passed: bool
    message: str
    hint: str
    where: str  # when it was checked, in words
    error: bool = False  # the check itself could not run
    points: float = 1.0  # what the exercise is worth (its @exercise(points=...))
    credit: float = 0.0  # share of the points awarded: 1 when passed, a check's NotYet(credit=) else

    @property
    def score(self) -> float:
        """Points awarded."""
        return round(self.points * (1.0 if self.passed else self.credit), 4)

    @property
    def partial(self) -> bool:
        return not self.passed and self.credit > 0

    @classmethod
    def unchecked(cls, exercise, message: str = NOT_CHECKED) -> ExerciseGrade:
        """A zero for an exercise (a :class:`dockercourse.checks.Exercise`) that was never checked."""
        return cls(
            exercise.id,
            exercise.title,
            False,
            message,
            exercise.hint,
            NOT_CHECKED,
            points=getattr(exercise, "points", 1.0),
        )


@dataclass
class SubmissionGrade:
    """The grade of one submission."""

    student: str
    file: str
    sha256: str
    chapter: str | None
    status: str
    exercises: list[ExerciseGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    namespace: str = ""
    hidden: bool = True
    version: int = GRADER_VERSION
    #: Late submissions (see :mod:`dockercourse.grading.late`): when it came in (ISO 8601, UTC),
    #: how many days late (0: on time) and the share of the points the late policy takes away.
    submitted_at: str = ""
    late_days: int = 0
    penalty: float = 0.0

    @property
    def points(self) -> float:
        """Points awarded, before any late penalty."""
        return round(sum(e.score for e in self.exercises), 4)

    @property
    def possible(self) -> float:
        return round(sum(e.points for e in self.exercises), 4)

    @property
    def total(self) -> float:
        """Points awarded after the late penalty."""
        return round(self.points * (1.0 - self.penalty), 4)

    @property
    def percent(self) -> float:
        return round(100.0 * self.total / self.possible, 1) if self.possible else 0.0

    def score(self, exercise: str) -> float:
        """Points awarded for one exercise (the best of its grades), before any late penalty."""
        return max((e.score for e in self.exercises if e.id == exercise), default=0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SubmissionGrade:
        d = dict(d)
        d["exercises"] = [ExerciseGrade(**e) for e in d.get("exercises", [])]
        return cls(**d)


@dataclass
class BatchReport:
    """What :func:`dockercourse.grading.batch.grade_folder` did."""

    chapter: str
    exercises: list[str]
    grades: list[SubmissionGrade]
    graded: int  # graded in this run
    reused: int  # results of an earlier run reused
    seconds: float
    batch: str  # the namespace tags of this run start with g<batch>
    out: Path
    engine: str = "host"  # the tier the submissions ran on (batch.ENGINES)
    engine_note: str = ""  # why, when it is not the one asked for

    def status_counts(self) -> dict[str, int]:
        """How many submissions got each status."""
        counts: dict[str, int] = {}
        for g in self.grades:
            counts[g.status] = counts.get(g.status, 0) + 1
        return counts
