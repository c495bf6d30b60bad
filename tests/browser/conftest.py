"""The browser tier (``pytest -m browser``): real JupyterLab 4, Debian's Chromium, Playwright.

Fixtures:

* ``lab_server`` (session): ``lab_server(root, env=None, settings=None) -> Lab`` starts a
  JupyterLab on ``root`` (or returns the one already serving that root with that env and those
  settings); every lab it started is stopped at the end of the session.
* ``lab`` (session): a lab on a temporary copy of tests/fixtures/browser/ (shared by the tests
  of the session; the fixtures in the repository are never changed).
* ``browser`` (session) / ``page`` (per test): headless Chromium with downloads accepted. The
  test's folder tests/artifacts/browser/<test name>/ is emptied at its start; at a failing
  test's end the page is saved there as ``NN-failure.png`` and its console as console.log. The
  kernels of the notebooks the page opened are shut down at its end.

Every test in this folder is marked ``browser``. The whole tier is skipped, with the command that
installs what is missing, when Chromium or Playwright is absent.

Engine: the root conftest.py treats every test that is not ``unit`` as needing an engine (and
then makes its stand-in resources on it). A test marked ``browser(needs_engine=False)`` needs
none: once ``-m`` selection is over, it is also marked ``unit``, so that a run of such tests
only never connects to an engine (the chapter tests, plain ``browser``, do need one).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from lab import CHROMIUM, REPO, artifact_dir, close_page, reset_artifacts, screenshot, skip_reason
from lab import lab_server as _lab_server

HERE = Path(__file__).resolve().parent
FIXTURES = REPO / "tests" / "fixtures" / "browser"
VIEWPORT = {"width": 1400, "height": 1000}


def _in_tier(item) -> bool:
    return HERE in Path(item.path).resolve().parents


def _needs_no_engine(item) -> bool:
    return any(m.kwargs.get("needs_engine") is False for m in item.iter_markers("browser"))


def pytest_collection_modifyitems(config, items):
    """Before ``-m`` selection: every test of this folder is ``browser``; skipped if it cannot run."""
    reason = None
    for item in items:
        if not _in_tier(item):
            continue
        if item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)
        if reason is None:
            reason = skip_reason() or ""
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    """After selection, before the root conftest's engine guard looks at the selected tests:
    ``browser(needs_engine=False)`` tests are ``unit`` for it (they never touch an engine).
    """
    for item in session.items:
        if _in_tier(item) and _needs_no_engine(item) and item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def lab_server():
    """``lab_server(root, env=None, settings=None) -> Lab``: a JupyterLab serving ``root``.

    One lab per (root, env, settings) for the session: asking again returns the running one.
    ``env`` is added to this process's environment (DOCKER_HOST etc. reach the kernels);
    ``settings`` adds JupyterLab user settings (see lab.DEFAULT_SETTINGS). A lab that does not
    start fails the test with one line holding the end of its log. All are stopped at the end.
    """
    running: dict[tuple, object] = {}
    with contextlib.ExitStack() as stack:

        def start(root: Path, env: dict | None = None, settings: dict | None = None):
            key = (
                str(Path(root).resolve()),
                json.dumps(env or {}, sort_keys=True),
                json.dumps(settings or {}, sort_keys=True),
            )
            if key not in running:
                try:
                    running[key] = stack.enter_context(_lab_server(Path(root), env, settings=settings))
                except AssertionError as e:  # LabError: one line, no traceback
                    pytest.fail(str(e), pytrace=False)
            return running[key]

        yield start


@pytest.fixture(scope="session")
def lab(lab_server, tmp_path_factory):
    """A lab on a temporary copy of tests/fixtures/browser/ (the fixtures' notebooks stay as they are)."""
    root = tmp_path_factory.mktemp("browser-root")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return lab_server(root)


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright; no host but 127.0.0.1/localhost resolves."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh page (own context: cookies, storage) with downloads accepted, 1400x1000."""
    reset_artifacts()
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            with contextlib.suppress(Exception):
                screenshot(pg, "failure")
            with contextlib.suppress(OSError):
                folder = artifact_dir()
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "console.log").write_text("\n".join(console) + "\n")
        close_page(pg)
