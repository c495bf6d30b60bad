"""The build cache records the course's own builds made, so that clean-up removes those and only those.

BuildKit keeps each step it ran as a record of its cache (``docker system df``'s "Build Cache",
``docker buildx du``). A record carries no label and no name: only what made it ("mount / from exec
/bin/sh -c …") and when. Chapter 08 makes about 60 of them on each run. Left behind, they piled up
(2,940 records, 670 MB on the maintainers' engine), and the chapter got slower with them: the
containerd image store collects garbage over all of them before it answers an image removal (0.04 s
per image on a fresh engine, 0.12 s on that one; chapter 08 took 50 s there and 38 s on a fresh one).

So each course build (:func:`dockercourse.lessonkit.buildkit.build`) notes when it ran, on the
engine's own clock (a VM engine's is not the host's), in a small file per engine and namespace prefix
(:func:`note`). Clean-up (:meth:`dockercourse.core.cleanup.Sweep.build_records`) prunes the records
that were created inside those spans and are not in use (:func:`created_within`), then forgets the
spans. A record the build reused from before (a ``CACHED`` step) was not created then, and stays.

What could be caught that is not the course's: a learner's own build, in a terminal, in the very
same second as one of the course's builds. It would lose cache records only (never an image, a
container or data); its next build fills them again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import docker.errors

log = logging.getLogger(__name__)

#: Seconds added before and after a build's span: the span's start is read just before the build.
MARGIN_S = 0.5
#: Record types a course build creates (its steps, its context). Cache mounts are selected by their
#: id (``id=dc08-…``) and BuildKit's own records (``internal``, ``frontend``) are never the course's.
TYPES = ("regular", "source.local")


def build_cache(api, attempts: int = 10) -> list[dict]:
    """The builder's cache records (``docker system df -v``'s build cache); ``[]`` when the client
    does not know the API version.

    While an image or a build's snapshots are being removed, listing can fail for a moment with 404
    "snapshot … does not exist" (BuildKit sizes a record whose snapshot just went): that is tried again."""
    m = re.match(r"(\d+)\.(\d+)", str(getattr(api, "_version", "")))
    if not m:
        return []
    # API 1.42 (Engine 23) can list the build cache alone; before, the whole disk usage is listed
    params = {"type": "build-cache"} if (int(m.group(1)), int(m.group(2))) >= (1, 42) else None
    for attempt in range(attempts):
        try:
            return api._result(api._get(api._url("/system/df"), params=params), True).get("BuildCache") or []
        except docker.errors.NotFound as e:
            if "does not exist" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    return []


#: A cache mount's record: ``… with id "/dc08-downloads"``.
MOUNT_ID = re.compile(r'with id "/*([^"]+)"$')


def state_dir() -> Path:
    """``$XDG_STATE_HOME/dockercourse/builds`` (``~/.local/state/…``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dockercourse" / "builds"


def _file(engine_id: str, prefix: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", engine_id) or "engine"
    return state_dir() / safe / (prefix.rstrip("-") + ".jsonl")


def epoch(text: str) -> float:
    """An engine time (RFC 3339 with nanoseconds, ``2026-12-05T21:31:57.873803332Z``) in seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text or "")
    if not m:
        raise ValueError(f"not an engine time: {text!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    t = datetime.fromisoformat(m.group(1) + zone).astimezone(UTC).timestamp()
    return t + float("0." + (m.group(2) or "0"))


def engine_clock(api) -> tuple[str, float] | None:
    """``(engine ID, the engine's time now)``; ``None`` when the engine does not tell."""
    try:
        info = api.info()
        return str(info.get("ID") or ""), epoch(info.get("SystemTime") or "")
    except Exception as e:  # bookkeeping never fails a build
        log.info("no engine clock: %s", e)
        return None


def note(engine_id: str, prefix: str, start: float, end: float) -> None:
    """Note that a build of namespace ``prefix`` ran from ``start`` to ``end`` (engine time)."""
    f = _file(engine_id, prefix)
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        with f.open("a") as out:
            out.write(json.dumps([round(start, 6), round(end, 6)]) + "\n")
    except OSError as e:
        log.info("could not note a build's span in %s: %s", f, e)


def spans(engine_id: str, prefix: str) -> list[tuple[float, float]]:
    """The spans noted for this engine and namespace (a damaged line is skipped)."""
    out = []
    try:
        lines = _file(engine_id, prefix).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            a, b = json.loads(line)
            out.append((float(a), float(b)))
        except (ValueError, TypeError):
            continue
    return out


def noted(prefix: str) -> bool:
    """Whether builds of namespace ``prefix`` were noted on any engine (and not forgotten yet)."""
    return any(state_dir().glob(f"*/{prefix.rstrip('-')}.jsonl"))


def forget(engine_id: str, prefix: str) -> None:
    """Drop the spans (their records are gone)."""
    try:
        _file(engine_id, prefix).unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.info("could not forget the builds' spans: %s", e)


def created_within(row: dict, spans_: list[tuple[float, float]], margin: float = MARGIN_S) -> bool:
    """Whether a build cache record (a ``/system/df`` row) is one a course build made: of a type a
    build makes, not in use, created inside one of the spans."""
    if row.get("Type") not in TYPES or row.get("InUse"):
        return False
    try:
        t = epoch(row.get("CreatedAt") or "")
    except ValueError:
        return False
    return any(a - margin <= t <= b + margin for a, b in spans_)
