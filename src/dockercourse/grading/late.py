"""Late submissions: when a submission came in, how many days late it is, and what that costs.

A :class:`Policy` is parsed from the text an instructor gives (``--late-policy``):

* ``none`` — lateness is recorded, never penalised (the default);
* ``N%/day`` (also ``N%``, ``N% per day``) — ``N`` percent of the points per day *started*
  after the deadline, capped at 100 % (``10%/day``: 1 minute late costs 10 %, 24 h 1 min 20 %);
* ``zero`` — any lateness costs every point (penalty 1.0).

Times are ISO 8601 (``2025-03-01T23:59``, ``2025-03-01T23:59:00+01:00``, ``...Z``); a time
without a zone is UTC. A deadline must give a time of day: a bare date is refused rather
than read as midnight at its start. A grace period (``grace_minutes``) moves the deadline:
a submission within it is on time, and the days of a later one count from the moved deadline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockercourse.errors import UsageError

FORMS = "none, zero, or a percentage per day started such as 10%/day"
_PER_DAY = re.compile(r"^(\d+(?:\.\d+)?)\s*%\s*(?:(?:/|per)\s*day)?$", re.IGNORECASE)
_DAY = timedelta(days=1)


def parse_time(text: str, what: str = "time") -> datetime:
    """``text`` (ISO 8601; no zone means UTC) as an aware UTC datetime, else UsageError naming ``what``."""
    s = str(text).strip()
    example = "give ISO 8601 with a time, e.g. 2025-03-01T23:59 (UTC) or 2025-03-01T23:59+01:00"
    if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", s):
        raise UsageError(f"{what} {s!r} has no time of day; {example}")
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise UsageError(f"{what} {s!r} is not a date and time; {example}") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def iso_utc(t: datetime) -> str:
    """``t`` as ``YYYY-MM-DDTHH:MM:SSZ`` (a naive ``t`` is taken as UTC)."""
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Policy:
    """How lateness costs points: ``per_day`` share of the points per day started (1.0 for ``zero``)."""

    kind: str = "none"  # "none" | "per_day" | "zero"
    per_day: float = 0.0
    grace_minutes: float = 0.0

    @classmethod
    def parse(cls, text: str, *, grace_minutes: float = 0.0) -> Policy:
        """The policy ``text`` names (see the module docstring), else UsageError listing the forms."""
        s = " ".join(str(text).split()).lower()
        if grace_minutes < 0:
            raise UsageError(f"the grace period must be 0 minutes or more, not {grace_minutes}")
        if s == "none":
            return cls("none", 0.0, grace_minutes)
        if s == "zero":
            return cls("zero", 1.0, grace_minutes)
        m = _PER_DAY.match(s)
        if m and float(m.group(1)) <= 100:
            return cls("per_day", float(m.group(1)) / 100, grace_minutes)
        raise UsageError(f"unknown late policy {str(text).strip()!r}: give {FORMS} (at most 100%)")

    def describe(self) -> str:
        """The policy in words, for a report."""
        grace = f", {self.grace_minutes:g} minutes' grace" if self.grace_minutes else ""
        if self.kind == "per_day":
            return f"{self.per_day * 100:g}% of the points per day started{grace}"
        if self.kind == "zero":
            return f"no points when late{grace}"
        return "no late penalty"

    def days_late(self, submitted_at: str, deadline: str) -> int:
        """Days started after the deadline (plus grace); 0 when on time."""
        late = (
            parse_time(submitted_at, "submission time")
            - parse_time(deadline, "deadline")
            - timedelta(minutes=self.grace_minutes)
        )
        return math.ceil(late / _DAY) if late > timedelta(0) else 0

    def apply(self, submitted_at: str, deadline: str) -> tuple[int, float]:
        """``(days late, penalty)``: days started after the deadline (0 when on time) and the share
        of the points taken away (0..1)."""
        days = self.days_late(submitted_at, deadline)
        return days, self.penalty(days)

    def penalty(self, days: int) -> float:
        """The share of the points taken away for ``days`` days late (0 when on time)."""
        if days <= 0 or self.kind == "none":
            return 0.0
        return round(min(1.0, days * self.per_day), 4)
