"""Drive a real JupyterLab 4 with Debian's Chromium through Playwright (the ``browser`` test tier).

Two halves:

* the server: :func:`lab_server` starts JupyterLab the way ``./course lab`` does, on a free port
  of 127.0.0.1 with a random token and throw-away settings/workspaces, and stops it (and the
  kernels it started) at the end, by PID;
* the page: helpers that act through the UI as a learner would (menus, keyboard, clicks) and
  read what the page shows, written against the real DOM of JupyterLab 4.6. The app object is
  exposed (``--LabApp.expose_app_in_browser``) but only *read*: which panel is which notebook,
  the kernel's state, the type of each output (in the DOM an error and a stderr stream are the
  same ``data-mime-type="application/vnd.jupyter.stderr"``).

The page helpers (``page`` is a Playwright sync Page; timeouts in seconds):

    open_notebook(page, lab, relpath, timeout=120)      open in a fresh workspace; kernel idle
    run_all(page, timeout=600)                          Run → Run All Cells; wait for the end
    wait_idle(page, timeout=300)                        kernel idle, no cell shows [*]
    cell_outputs(page) -> list[CellOutput]              per code cell: prompt, outputs, .error
    figures(page, timeout=10) -> int                    rendered images, each loaded (width > 0)
    set_cell_source(page, index, text)                  replace a cell's source in its editor
    run_cell(page, index, timeout=120) -> str           run one cell (Ctrl+Enter); its output text
    add_cell_and_run(page, source, timeout=60)          append a cell, run it -> (text, seconds)
    click_widget_button(page, label, timeout=10)        click an ipywidgets button by its text
    wait_for_text(page, text, timeout=30)               wait for a text in the outputs
    expect_download(page, click, timeout=30)            click -> (saved path, suggested filename)
    run_command(page, command_id, timeout=10)           a command from the command palette
    screenshot(page, name, show=None) -> Path           tests/artifacts/browser/<test>/NN-name.png
    dialog_text(page) -> str                            JupyterLab's open dialog, as one line

Cell indexes count every cell (markdown too), from 0. Every helper that gives up raises
:class:`LabError`, an ``AssertionError`` with one line that says what was expected (and names
the notebook, the cell or the text).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Screenshots go to tests/artifacts/browser/<test name>/NN-name.png (git-ignored).
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
#: The Chromium of Debian's ``chromium`` package; DOCKERCOURSE_CHROMIUM overrides it.
CHROMIUM = Path(os.environ.get("DOCKERCOURSE_CHROMIUM", "/usr/bin/chromium"))
JUPYTER = Path(sys.prefix) / "bin" / "jupyter"

#: User settings every test lab gets. JupyterLab 4 virtualises long notebooks ("windowing": cells
#: out of view are not in the DOM), so it is turned off; news and update checks would reach the
#: web and pop up notifications over the cells.
DEFAULT_SETTINGS: dict[str, dict] = {
    # all outputs of a cell shown: no "Show more outputs" trimming after 50 (the documented 0 for
    # "no limit" shows none at all in JupyterLab 4.6, hence a large number)
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "maxNumberOutputs": 100000},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # a test reads what the page shows; the served files change only when a test saves
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class LabError(AssertionError):
    """A browser-tier step failed; the message is one line naming what was expected."""


def _one_line(text: str, limit: int = 600) -> str:
    text = " | ".join(s.strip() for s in text.splitlines() if s.strip())
    return text if len(text) <= limit else "…" + text[-limit:]


# --------------------------------------------------------------------------- availability


def skip_reason() -> str | None:
    """Why the browser tier cannot run here (Chromium or Playwright missing), or None."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return (
            f"browser tier: no Chromium at {CHROMIUM}; install it with "
            "`apt-get install --no-install-recommends chromium` (or run `./course setup`)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "browser tier: Playwright is not importable; "
            "`.venv/bin/pip install playwright` (or `pip install -e '.[test]'`)"
        )
    if not JUPYTER.exists():
        return (
            f"browser tier: no JupyterLab at {JUPYTER}; `pip install -e '.[lab]'` (or run `./course setup`)"
        )
    return None


# --------------------------------------------------------------------------- the server


@dataclass
class Lab:
    """A running JupyterLab: where it listens, its token, the folder it serves, its log."""

    root: Path
    port: int
    token: str
    pid: int
    log: Path
    home: Path  # the temporary folder of its settings, workspaces and runtime files
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        """The server's base address, ``http://127.0.0.1:PORT/``."""
        return f"http://127.0.0.1:{self.port}/"

    def tree_url(self, relpath: str | Path, *, reset: bool = True) -> str:
        """The address that opens ``relpath`` (relative to :attr:`root`) in the lab, token included."""
        path = urllib.parse.quote(Path(relpath).as_posix())
        query = ("reset&" if reset else "") + f"token={self.token}"
        return f"{self.url}lab/tree/{path}?{query}"

    def api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 10):
        """Call the server's REST API (``path`` like ``api/status``); returns the decoded JSON."""
        return _request(self.url + path.lstrip("/"), self.token, method, body, timeout)

    def sessions(self) -> list[dict]:
        """The server's sessions (one per open notebook with a kernel)."""
        return self.api("api/sessions") or []

    def shutdown_sessions(self, paths: set[str] | None = None) -> None:
        """Shut down the kernels of the notebooks at ``paths`` (all when None), through the API."""
        for s in self.sessions():
            if paths is None or s.get("path") in paths:
                with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                    self.api(f"api/sessions/{s['id']}", method="DELETE", timeout=30)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log, as one line."""
        try:
            return _one_line("\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]))
        except OSError:
            return "(no log)"


def _request(url: str, token: str, method: str = "GET", body: dict | None = None, timeout: float = 10):
    # no proxy: an http_proxy of the environment must not see the lab's token (nor the traffic)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"token {token}"})
    with opener.open(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path, settings: Mapping[str, dict]) -> None:
    for plugin, values in settings.items():
        target = settings_dir / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))


def _descendants(pid: int) -> list[int]:
    """PIDs of the processes started (directly or not) by ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    return False


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Terminate the lab by its PID, then kill it after ``grace`` seconds; then its leftover kernels.

    Kernels run in sessions of their own, so they are found (before stopping) as descendants of
    the lab's PID; a lab that stops normally shuts them down itself, and any still alive after
    the grace period are killed by their PIDs.
    """
    kids = _descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for k in kids:
        if _alive(k):
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)


@contextlib.contextmanager
def lab_server(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    settings: Mapping[str, dict] | None = None,
    timeout: float = 90.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Lab]:
    """Run JupyterLab on ``root`` for the duration of the ``with`` block.

    Started as ``./course lab`` starts it (``jupyter lab --notebook-dir=ROOT
    --ServerApp.ip=127.0.0.1 [--allow-root] --no-browser``) with: a port of its own (free when
    picked; a lost race is retried on another), a random token, a temporary
    JUPYTERLAB_SETTINGS_DIR holding :data:`DEFAULT_SETTINGS` updated key by key by ``settings``
    (``{"@jupyterlab/…-extension/plugin": {...}}``; checked through the settings API once the lab
    runs), temporary workspaces, runtime and user config dirs. The environment is this process's
    updated by ``env`` (so DOCKER_HOST etc. reach the kernels). Waits until ``/api/status``
    answers with the token; if the lab exits or does not answer within ``timeout`` seconds,
    raises :class:`LabError` with the last lines of its log. Stopped at the end (also on
    failure): SIGTERM, SIGKILL after a grace period, by PID; its kernels too.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise LabError(f"JupyterLab root {root} is not a folder")
    home = Path(tempfile.mkdtemp(prefix="dockercourse-browser-lab-"))
    try:
        settings_dir, workspaces = home / "settings", home / "workspaces"
        workspaces.mkdir()
        wanted = {
            plugin: {**DEFAULT_SETTINGS.get(plugin, {}), **(settings or {}).get(plugin, {})}
            for plugin in {**DEFAULT_SETTINGS, **(settings or {})}
        }
        _write_settings(settings_dir, wanted)
        token = secrets.token_hex(24)
        full_env = {
            **os.environ,
            **(env or {}),
            "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_CONFIG_DIR": str(home / "config"),  # no user's ~/.jupyter config
            "PYTHONUNBUFFERED": "1",
        }
        full_env.pop("JUPYTER_TOKEN", None)
        for attempt in range(3):
            port = free_port()
            log = home / f"lab-{attempt}.log"
            args = [
                str(JUPYTER),
                "lab",
                f"--notebook-dir={root}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",  # the port picked, or fail (never another one)
                f"--IdentityProvider.token={token}",
                "--no-browser",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                # read-only use by the helpers: the type of each output (an error and a stderr
                # stream look the same in the DOM) and the kernel's connection state
                "--LabApp.expose_app_in_browser=True",
                *(["--allow-root"] if os.geteuid() == 0 else []),
                *extra_args,
            ]
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    args,
                    cwd=root,
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            lab = Lab(root=root, port=port, token=token, pid=proc.pid, log=log, home=home, env=full_env)
            try:
                if _wait_ready(lab, proc, timeout):
                    _check_settings(lab, wanted)
                    yield lab
                    return
            finally:
                _stop(proc)
                _keep_log(lab)
            # exited before answering: another process took the port meanwhile? then retry
            if "already in use" not in log.read_text(errors="replace"):
                break
        raise LabError(
            f"JupyterLab did not start on 127.0.0.1:{lab.port} (exit code {proc.returncode}); "
            f"the end of its log ({_keep_log(lab)}): {lab.log_tail(6)}"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check_settings(lab: Lab, settings: Mapping[str, dict]) -> None:
    """The lab reads the settings written for it (else e.g. windowing would hide cells)."""
    for plugin, values in settings.items():
        plugin_id = plugin.replace("/", ":").replace(":", "/", plugin.count("/") - 1)
        got = (lab.api(f"lab/api/settings/{plugin_id}") or {}).get("settings") or {}
        wrong = {k: got.get(k) for k, v in values.items() if got.get(k) != v}
        if wrong:
            raise LabError(f"JupyterLab ignored the test settings of {plugin_id}: {wrong} (wanted {values})")


def _keep_log(lab: Lab) -> Path:
    """The server's log, kept as tests/artifacts/browser/lab-<root folder>.log after it stopped."""
    kept = ARTIFACTS / f"lab-{lab.root.name}.log"
    with contextlib.suppress(OSError):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab.log, kept)
    return kept


def _wait_ready(lab: Lab, proc: subprocess.Popen, timeout: float) -> bool:
    """True once /api/status answers with the token; False if the lab exited; LabError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            lab.api("api/status", timeout=2)
            return True
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.25)
    raise LabError(
        f"JupyterLab on 127.0.0.1:{lab.port} did not answer /api/status within {timeout:.0f} s; "
        f"last lines of its log: {lab.log_tail()}"
    )


# --------------------------------------------------------------------------- the page

#: JavaScript prelude: ``nbPanel(path)`` is the notebook panel of ``path``, or (path null) the
#: current notebook panel; ``cellsOf(panel)`` describes its cells as the page shows them.
_JS = """
const app = window.jupyterapp;
function nbPanel(path) {
  if (!app || !app.shell) return null;
  const nbs = Array.from(app.shell.widgets('main')).filter(
    w => w.content && w.content.model && w.content.model.cells && w.sessionContext);
  if (path) return nbs.find(w => w.context.path === path) || null;
  const cur = app.shell.currentWidget;
  if (nbs.includes(cur)) return cur;
  return nbs.find(w => w.isVisible) || null;
}
function kernelOf(panel) {
  const sc = panel.sessionContext;
  const k = sc && sc.session && sc.session.kernel;
  return {ready: !!(sc && sc.isReady), status: k ? k.status : 'none',
          connection: k ? k.connectionStatus : 'none'};
}
function cellsOf(panel) {
  return panel.content.widgets.map((cell, index) => {
    const prompt = cell.node.querySelector(':scope .jp-InputPrompt');
    const out = {index, type: cell.model.type, prompt: prompt ? prompt.textContent.trim() : '',
                 source: cell.model.sharedModel.getSource(), outputs: []};
    if (cell.model.type !== 'code' || !cell.outputArea) return out;
    const shown = Array.from(cell.outputArea.node.querySelectorAll(':scope > .jp-OutputArea-child'));
    for (let j = 0; j < cell.model.outputs.length; j++) {
      const json = cell.model.outputs.get(j).toJSON();
      const node = shown[j] ? shown[j].querySelector(':scope > .jp-OutputArea-output') : null;
      out.outputs.push({output_type: json.output_type, name: json.name || null,
                        mime_type: node ? node.getAttribute('data-mime-type') : null,
                        text: node ? node.innerText : null});
    }
    return out;
  });
}
"""


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _js(body: str) -> str:
    """A page function ``(arg) => {...}`` with the prelude's helpers in scope."""
    return f"(arg) => {{ {_JS}\n{body} }}"


def _timeout_error() -> type[Exception]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    return PlaywrightTimeout


def dialog_text(page) -> str:
    """The text of JupyterLab's open dialog(s) as one line, or "" (an error dialog explains a lot)."""
    try:
        texts = page.locator(".jp-Dialog-content").evaluate_all(
            """(ds) => ds.map(d => Array.from(d.querySelectorAll('.jp-Dialog-header, .jp-Dialog-body'))
                                 .map(e => e.innerText).join(': '))"""
        )
    except Exception:  # noqa: BLE001 - a closed page has no dialog
        return ""
    return _one_line(" / ".join(texts), 300)


def _panel(page):
    """The notebook panel on screen (the helpers work with one open notebook at a time)."""
    return page.locator(".jp-NotebookPanel:visible").first


def _cells(page):
    return _panel(page).locator(".jp-Notebook .jp-Cell")


def _notebook_path(page) -> str:
    return page.evaluate(_js("const p = nbPanel(null); return p ? p.context.path : '';"))


def open_notebook(page, lab: Lab, relpath: str | Path, timeout: float = 120.0) -> None:
    """Open ``relpath`` (relative to the lab's root) in a fresh workspace and wait until it can run.

    Goes to ``/lab/tree/<relpath>?reset&token=…``, then waits until the notebook panel shows all its
    cells and its kernel is connected and idle (the toolbar's indicator too). Raises
    :class:`LabError` naming the notebook if it does not exist or does not open in ``timeout`` s
    (with the text of JupyterLab's error dialog, if any).
    """
    rel = Path(relpath).as_posix()
    if not (lab.root / rel).is_file():
        raise LabError(f"notebook {rel} does not exist under {lab.root}")
    page.goto(lab.tree_url(rel), wait_until="domcontentloaded", timeout=_ms(timeout))
    ready = _js(
        """
        const p = nbPanel(arg);
        if (!p || !p.context.isReady || !p.isVisible) return false;
        const k = kernelOf(p);
        const shown = p.node.querySelectorAll('.jp-Notebook .jp-Cell').length;
        const ind = p.node.querySelector('.jp-Notebook-ExecutionIndicator');
        return k.ready && k.status === 'idle' && k.connection === 'connected'
          && shown === p.content.model.cells.length
          && (!ind || ind.getAttribute('data-status') === 'idle');
        """
    )
    deadline = time.monotonic() + timeout
    dialog = ""
    while True:
        try:
            page.wait_for_function(ready, arg=rel, timeout=1000, polling=100)
            break
        except _timeout_error():
            # a dialog still open a second later (File Load Error, Select Kernel…) ends the wait
            seen, dialog = dialog, dialog_text(page)
            if seen and dialog:
                raise LabError(f"notebook {rel} did not open: JupyterLab says: {dialog}") from None
            if time.monotonic() > deadline:
                raise LabError(
                    f"notebook {rel} did not open with an idle kernel within {timeout:.0f} s"
                    f" (server log: {lab.log_tail(3)})"
                ) from None
    _opened.setdefault(id(page), (lab, set()))[1].add(rel)


#: page id -> (lab, notebook paths it opened): their kernels are shut down by close_page.
_opened: dict[int, tuple[Lab, set[str]]] = {}


def close_page(page) -> None:
    """Close the page and shut down the kernels of the notebooks it opened (the page fixture's end)."""
    lab, paths = _opened.pop(id(page), (None, set()))
    with contextlib.suppress(Exception):
        page.context.close()
    if lab is not None and paths:
        lab.shutdown_sessions(paths)


def _state(page) -> dict:
    return page.evaluate(
        _js(
            """
            const p = nbPanel(null);
            if (!p) return null;
            const ind = p.node.querySelector('.jp-Notebook-ExecutionIndicator');
            return {path: p.context.path, kernel: kernelOf(p), cells: cellsOf(p),
                    indicator: ind ? ind.getAttribute('data-status') : null};
            """
        )
    )


def wait_idle(page, timeout: float = 300.0) -> None:
    """Wait until the kernel is idle and no cell shows ``[*]`` (queued or running)."""
    idle = _js(
        """
        const p = nbPanel(null);
        if (!p) return false;
        const k = kernelOf(p);
        const prompts = Array.from(p.node.querySelectorAll('.jp-Notebook .jp-InputPrompt'));
        return k.status === 'idle' && k.connection === 'connected'
          && !prompts.some(e => e.textContent.includes('[*]'));
        """
    )
    try:
        page.wait_for_function(idle, timeout=_ms(timeout), polling=100)
    except _timeout_error():
        st = _state(page) or {}
        running = [c["index"] for c in st.get("cells", []) if "*" in c["prompt"]]
        raise LabError(
            f"notebook {st.get('path')}: still running after {timeout:.0f} s "
            f"(kernel {st.get('kernel', {}).get('status')}, cells showing [*]: {running})"
        ) from None


def _menu(page, menu: str, command: str) -> None:
    """Click menu ``menu`` of the menu bar, then its item of command ``command``."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^\s*{re.escape(menu)}\s*$")).click()
    item = page.locator(f'.lm-Menu-item[data-command="{command}"]').first
    try:
        item.wait_for(state="visible", timeout=5000)
    except _timeout_error():
        page.keyboard.press("Escape")
        raise LabError(f"menu {menu} has no item for command {command}") from None
    if "lm-mod-disabled" in (item.get_attribute("class") or ""):
        page.keyboard.press("Escape")
        raise LabError(f"menu {menu}: the item of {command} is disabled (is a notebook the current tab?)")
    item.click()


def run_command(page, command: str, timeout: float = 10.0) -> None:
    """Run a JupyterLab command by its id (e.g. ``notebook:run-all-cells``) from the command palette."""
    page.keyboard.press("Control+Shift+C")
    item = page.locator(f'#command-palette .lm-CommandPalette-item[data-command="{command}"]').first
    try:
        item.wait_for(state="attached", timeout=_ms(timeout))
    except _timeout_error():
        page.keyboard.press("Escape")
        raise LabError(f"the command palette has no command {command}") from None
    if "lm-mod-disabled" in (item.get_attribute("class") or ""):
        page.keyboard.press("Escape")
        raise LabError(f"command {command} is disabled here (is a notebook the current tab?)")
    item.click()


def run_all(page, timeout: float = 600.0) -> None:
    """Run → Run All Cells, then wait until the kernel is idle and no cell shows ``[*]``.

    As in JupyterLab, the run stops at the first cell that raises; the cells after it keep their
    prompt. Raises :class:`LabError` if the run has not ended within ``timeout`` seconds.
    """
    before = [c["prompt"] for c in (_state(page) or {}).get("cells", [])]
    _menu(page, "Run", "runmenu:run-all")
    started = _js(
        """
        const p = nbPanel(null);
        if (!p) return false;
        const now = cellsOf(p).map(c => c.prompt);
        return kernelOf(p).status !== 'idle' || JSON.stringify(now) !== JSON.stringify(arg);
        """
    )
    if any(c.get("type") == "code" for c in (_state(page) or {}).get("cells", [])):
        with contextlib.suppress(_timeout_error()):  # a very short run may be over already
            page.wait_for_function(started, arg=before, timeout=10000, polling=50)
    wait_idle(page, timeout)


@dataclass
class Output:
    """One output of a cell: its type (from the notebook model) and the text the page shows."""

    output_type: str  # "stream", "display_data", "execute_result" or "error"
    name: str | None  # "stdout" / "stderr" for a stream
    mime_type: str | None  # the renderer the page used (data-mime-type), None for widgets
    text: str | None  # innerText as shown (None if the page does not show it)


@dataclass
class CellOutput:
    """The outputs of one code cell as the page shows them."""

    index: int  # the cell's index in the notebook (markdown cells count)
    prompt: str  # "[3]:", "[*]:", "[ ]:" as shown ("" while the cell's input is hidden)
    source: str
    outputs: list[Output]

    @property
    def texts(self) -> list[str]:
        return [o.text or "" for o in self.outputs]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def error(self) -> bool:
        """An error output (the cell raised); in the DOM it looks like stderr, the model tells."""
        return any(o.output_type == "error" for o in self.outputs)

    @property
    def stderr(self) -> bool:
        return any(o.output_type == "stream" and o.name == "stderr" for o in self.outputs)


def cell_outputs(page) -> list[CellOutput]:
    """One :class:`CellOutput` per code cell of the current notebook, in order."""
    st = _state(page)
    if st is None:
        raise LabError("no notebook is open")
    return [
        CellOutput(c["index"], c["prompt"], c["source"], [Output(**o) for o in c["outputs"]])
        for c in st["cells"]
        if c["type"] == "code"
    ]


def figures(page, timeout: float = 10.0) -> int:
    """The number of rendered images (``.jp-RenderedImage img``); each must load with a width > 0."""
    imgs = _panel(page).locator(".jp-RenderedImage img")
    check = """(imgs) => imgs.map(i => ({complete: i.complete, w: i.naturalWidth,
                                       src: (i.getAttribute('src') || '').slice(0, 40)}))"""
    deadline = time.monotonic() + timeout
    while True:
        info = imgs.evaluate_all(check)
        broken = [i for i in info if not (i["complete"] and i["w"] > 0)]
        if not broken:
            return len(info)
        if time.monotonic() > deadline:
            raise LabError(f"{len(broken)} of {len(info)} images did not render: {broken[:3]}")
        time.sleep(0.1)


def _select_cell(page, index: int):
    """Make cell ``index`` the active one, in command mode; returns its locator.

    A cell whose input is hidden (``source_hidden``) shows a placeholder: the click expands it,
    as it does for a learner.
    """
    cells = _cells(page)
    n = cells.count()
    if not 0 <= index < n:
        raise LabError(f"notebook {_notebook_path(page)} has {n} cells, no cell {index}")
    cell = cells.nth(index)
    cell.scroll_into_view_if_needed()
    # the prompt area: a click there selects without editing (a click on a rendered markdown
    # link would follow it); the top-left corner avoids the heading's collapse button
    cell.locator(".jp-InputPrompt").first.click(position={"x": 2, "y": 2})
    page.keyboard.press("Escape")
    _wait_active(page, index, f"could not select cell {index} of {_notebook_path(page)}")
    return cell


def _wait_active(page, index: int, failure: str) -> None:
    """Wait until cell ``index`` is the notebook's active cell; :class:`LabError` ``failure`` if not."""
    try:
        page.wait_for_function(
            _js("const p = nbPanel(null); return !!p && p.content.activeCellIndex === arg;"),
            arg=index,
            timeout=5000,
        )
    except _timeout_error():
        raise LabError(failure) from None


def set_cell_source(page, index: int, text: str) -> None:
    """Replace the source of cell ``index`` by ``text``, typed into its editor as a learner would.

    The text is inserted in one go (no auto-indent, no auto-closed brackets). Leaves the cell
    selected in command mode; raises :class:`LabError` if the notebook's model does not then hold
    exactly ``text``.
    """
    _select_cell(page, index)
    page.keyboard.press("Enter")  # edit mode (a rendered markdown cell opens its editor)
    editor = _cells(page).nth(index).locator(".jp-InputArea-editor .cm-content")
    editor.wait_for(state="visible", timeout=5000)
    page.keyboard.press("Control+A")
    if text:
        page.keyboard.insert_text(text)
    else:
        page.keyboard.press("Delete")
    page.keyboard.press("Escape")
    try:
        page.wait_for_function(
            _js("const p = nbPanel(null); return !!p && cellsOf(p)[arg.i].source === arg.text;"),
            arg={"i": index, "text": text},
            timeout=5000,
        )
    except _timeout_error():
        got = (_state(page) or {}).get("cells", [{}] * (index + 1))[index].get("source")
        raise LabError(f"cell {index}: the editor holds {got!r}, not {text!r}") from None


def _run_selected(page, index: int, timeout: float) -> float:
    """Run the selected cell ``index`` (Ctrl+Enter); seconds until its prompt shows a new count.

    A copy opened with its recorded outputs may show ``[1]:`` already, the count its first run in a
    fresh kernel gets too: the cell's recorded count is blanked first (the prompt shows ``[ ]:``, as
    after "Clear Outputs"), so that the count of this run is told from the recorded one."""
    page.evaluate(
        _js(
            "const p = nbPanel(null); const c = p && p.content.widgets[arg.i];"
            " if (c) c.model.executionCount = null;"
        ),
        {"i": index},
    )
    before = _cells(page).nth(index).locator(".jp-InputPrompt").first.inner_text().strip()
    done = _js(
        """
        const p = nbPanel(null);
        if (!p) return false;
        const c = cellsOf(p)[arg.i];
        return /^\\[\\d+\\]:$/.test(c.prompt) && c.prompt !== arg.before;
        """
    )
    t0 = time.monotonic()
    page.keyboard.press("Control+Enter")
    try:
        page.wait_for_function(done, arg={"i": index, "before": before}, timeout=_ms(timeout), polling="raf")
    except _timeout_error():
        raise LabError(
            f"cell {index} of {_notebook_path(page)} did not finish within {timeout:.0f} s"
        ) from None
    return time.monotonic() - t0


def _show_outputs(page, index: int) -> None:
    """Scroll the end of cell ``index`` into view (for the screenshots that follow)."""
    with contextlib.suppress(Exception):
        _cells(page).nth(index).locator(".jp-Cell-footer").scroll_into_view_if_needed(timeout=2000)


def run_cell(page, index: int, timeout: float = 120.0) -> str:
    """Run cell ``index`` (select it, Ctrl+Enter), wait for its new execution count; its output text."""
    cell = _select_cell(page, index)
    if "jp-CodeCell" not in (cell.get_attribute("class") or ""):
        raise LabError(f"cell {index} of {_notebook_path(page)} is not a code cell")
    _run_selected(page, index, timeout)
    _show_outputs(page, index)
    return next(c for c in cell_outputs(page) if c.index == index).text


def add_cell_and_run(page, source: str, timeout: float = 60.0) -> tuple[str, float]:
    """Append a code cell holding ``source`` at the end and run it: (its output text, seconds).

    The seconds run from the key press that runs it until its prompt shows its execution count
    (outputs arrive before that), so a busy kernel shows as a long time.
    """
    last = _cells(page).count() - 1
    _select_cell(page, last)
    page.keyboard.press("b")  # insert a cell below (command mode); the new cell is active
    index = last + 1
    _wait_active(page, index, f"could not add a cell after cell {last} of {_notebook_path(page)}")
    set_cell_source(page, index, source)
    seconds = _run_selected(page, index, timeout)
    _show_outputs(page, index)
    return next(c for c in cell_outputs(page) if c.index == index).text, seconds


def _outputs(page):
    return _panel(page).locator(".jp-OutputArea")


def click_widget_button(page, label: str, timeout: float = 10.0) -> None:
    """Click the ipywidgets button whose text is ``label`` (exactly, spaces aside) in the outputs."""
    buttons = _outputs(page).locator(".jupyter-widgets.widget-button")
    button = buttons.filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).first
    try:
        button.wait_for(state="visible", timeout=_ms(timeout))
    except _timeout_error():
        shown = [t.strip() for t in buttons.all_inner_texts()]
        raise LabError(f"no widget button {label!r} in the outputs (buttons shown: {shown})") from None
    if button.is_disabled():
        raise LabError(f"the widget button {label!r} is disabled")
    button.click()


def wait_for_text(page, text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` is shown in the notebook's outputs (not its sources), else :class:`LabError`."""
    try:
        _outputs(page).get_by_text(text).first.wait_for(state="visible", timeout=_ms(timeout))
    except _timeout_error():
        raise LabError(f"{text!r} did not appear in the outputs within {timeout:.0f} s") from None


def artifact_dir() -> Path:
    """tests/artifacts/browser/<test name>/ of the running test (from PYTEST_CURRENT_TEST)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "outside-a-test (call)")
    name = current.rsplit(" (", 1)[0].split("::")[-1]
    return ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "test")


_shots: dict[Path, int] = {}


def reset_artifacts() -> Path:
    """Empty the running test's artifact folder (what an earlier run left); the page fixture does it."""
    folder = artifact_dir()
    shutil.rmtree(folder, ignore_errors=True)
    _shots[folder] = 0
    return folder


def screenshot(page, name: str, show=None) -> Path:
    """Save the page as tests/artifacts/browser/<test name>/NN-<name>.png (NN counts up per test).

    ``show``: a locator scrolled into view first (the notebook scrolls inside the page, so a
    screenshot shows only what is in its viewport).
    """
    folder = artifact_dir()
    if folder not in _shots:
        reset_artifacts()
    folder.mkdir(parents=True, exist_ok=True)
    _shots[folder] += 1
    path = folder / f"{_shots[folder]:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    if show is not None:
        with contextlib.suppress(Exception):
            show.scroll_into_view_if_needed(timeout=2000)
    page.screenshot(path=path)
    return path


def expect_download(page, click, timeout: float = 30.0) -> tuple[Path, str]:
    """Do ``click`` and take the download it starts: (the saved file, its suggested filename).

    ``click`` is a function doing the click, a Playwright locator, or the text of a link or
    button in the outputs. The file is saved under tests/artifacts/browser/<test name>/downloads/.
    """
    if isinstance(click, str):
        target = _outputs(page).get_by_text(click, exact=True).first
        action: Callable[[], object] = target.click
    elif callable(click):
        action = click
    else:
        action = click.click
    try:
        with page.expect_download(timeout=_ms(timeout)) as info:
            action()
        download = info.value
    except _timeout_error():
        raise LabError(f"no download started within {timeout:.0f} s after clicking {click!r}") from None
    if download.failure():
        raise LabError(f"the download of {download.suggested_filename} failed: {download.failure()}")
    folder = artifact_dir() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / download.suggested_filename
    download.save_as(path)
    return path, download.suggested_filename
