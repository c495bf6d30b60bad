"""The toolkit's shape, measured: small modules and functions, one configuration, narrow excepts.

These need no engine (``pytest -m unit``); each names the offenders it finds.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dockercourse import config

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dockercourse"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80
pytestmark = pytest.mark.unit


def _modules():
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_over_500_lines():
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, "modules over 500 lines:\n" + "\n".join(big)


def test_no_function_over_80_lines():
    long = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_no_silent_catch_all():
    """``except Exception: pass`` (or a bare ``except:``) hides bugs: catch what you expect, log the rest."""
    found = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ExceptHandler):
                broad = node.type is None or (
                    isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException")
                )
                silent = all(isinstance(s, (ast.Pass, ast.Continue)) for s in node.body)
                if broad and silent:
                    found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not found, "broad excepts that drop the error silently:\n" + "\n".join(found)


def test_settings_are_read_through_config_only():
    direct = []
    pat = re.compile(r"os\.environ(?:\.get)?[\[(]\s*['\"](DOCKERCOURSE_\w+)")
    for p in _modules():
        if p.name == "config.py":
            continue
        for m in pat.finditer(p.read_text()):
            direct.append(f"{p.relative_to(ROOT)}: {m.group(1)}")
    assert not direct, "read these through dockercourse.config:\n" + "\n".join(direct)


def test_every_setting_used_is_declared():
    files = [*_modules(), ROOT / "course", *(ROOT / "scripts").iterdir(), *(ROOT / "binder").iterdir()]
    used = {m for f in files if f.is_file() for m in re.findall(r"DOCKERCOURSE_[A-Z_]+[A-Z]", f.read_text())}
    undeclared = sorted(used - set(config.SETTINGS))
    assert not undeclared, f"settings used but not declared in config.SETTINGS: {undeclared}"


def test_configuration_docs_are_current():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == config.markdown(), (
        "docs/configuration.md is stale: run python -m dockercourse.config --markdown > docs/configuration.md"
    )
