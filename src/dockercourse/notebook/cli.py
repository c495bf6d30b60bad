"""``%docker``: the real ``docker`` command, run from a cell against the chapter's engine.

A cell that teaches with docker-py can show the same thing as a learner will see it in a terminal::

    %docker ps -a --filter label=io.dockercourse.chapter=02 --format 'table {{.Names}}\\t{{.Status}}'

    %%docker
    docker volume ls --filter label=io.dockercourse.chapter=06 --format '{{.Name}} {{.Driver}}'
    docker volume inspect --format '{{.Mountpoint}}' dc06-data

What a cell runs is a shell line, as in a terminal (quotes, ``$PWD``, ``| head``), where ``docker``
is the command this module found (:func:`find_cli`) and reaches the engine the course talks to
(``DOCKER_HOST``). ``{expr}`` is replaced by the value of a Python expression of the notebook
(``-p 127.0.0.1:{port}:80``); Go templates (``{{.Names}}``) are left as they are. What the
command creates carries the chapter's labels, as what the course's client creates does, so that
``course.cleanup()`` finds it; in a grading run the course's names are mapped to the run's, as for
``!docker`` (:func:`dockercourse.notebook.course._map_shell_names`).

The command's output (stdout and stderr, in the order a terminal shows them) is printed as it comes;
a failing command prints the CLI's own message and one line with its exit status; the cell does
not raise, as ``!docker`` does not. Without a ``docker`` command the cell says so in one line and
the notebook runs on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from dockercourse.core.dockercli import DockerCLI, config_dir, find_cli, stop_process_group
from dockercourse.i18n.messages import tr

__all__ = ["DockerCLI", "Runner", "banner", "expand", "find_cli", "register"]

# Subcommands whose objects carry the chapter's labels: `run`, `create`, `build`, and these two-word
# forms ("$1 $2" as the shell function sees them).
_LABELLED_2 = (
    "container run",
    "container create",
    "volume create",
    "network create",
    "image build",
    "buildx build",
)

_SHELL_FN = (
    "docker() {\n"
    '  case "$1" in run|create|build) _s=$1; shift; set -- "$_s" $_DC_LABELS "$@";; esac\n'
    '  case "$1 $2" in ' + "|".join(f'"{s}"' for s in _LABELLED_2) + ")"
    ' _a=$1; _b=$2; shift 2; set -- "$_a" "$_b" $_DC_LABELS "$@";; esac\n'
    '  command "$_DC_DOCKER" "$@"\n'
    "}\n"
)


_EXPR = re.compile(r"(?<!\{)\{(?![{.])([^{}\n]+)\}(?!\})")


def expand(text: str, namespace: dict) -> str:
    """Replace ``{expr}`` by the value of the Python expression in the notebook's namespace; leave
    Go templates (``{{.Names}}``) and anything that is not a valid expression as they are."""

    def one(m: re.Match) -> str:
        try:
            return str(eval(m.group(1), namespace))  # noqa: S307 - the learner's own notebook
        except Exception:
            return m.group(0)

    return _EXPR.sub(one, text)


class Runner:
    """Runs ``%docker`` lines and ``%%docker`` cells for one chapter's course."""

    def __init__(self, cli: DockerCLI | None, ns, base_url: str | None = None):
        self.cli = cli
        self.ns = ns
        self.base_url = base_url

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            _DC_DOCKER=self.cli.path,
            _DC_LABELS=" ".join(f"--label {k}={v}" for k, v in self.ns.labels.items()),
            BUILDKIT_PROGRESS="plain",  # step output, not the terminal's redrawn progress
            DOCKER_CLI_HINTS="false",  # no "What's next" advertising after commands
        )
        if self.base_url and self.base_url.startswith(("unix://", "tcp://")):
            env.setdefault("DOCKER_HOST", self.base_url)
        cfg = config_dir(self.cli)
        if cfg:
            env["DOCKER_CONFIG"] = cfg
        return env

    def script(self, text: str, namespace: dict, *, line: bool) -> str:
        text = expand(text, namespace)
        if line:
            text = "docker " + text.strip()
        if self.ns.tag:  # a grading run: the course's names are the run's
            text = self.ns.map_names(text)
        return _SHELL_FN + text

    def run(self, text: str, namespace: dict | None = None, *, line: bool = True) -> int:
        """Run, print the output as it comes, and return the exit status (127: no ``docker``)."""
        if not text.strip():
            print(tr("%docker: give a docker command, e.g. `%docker ps -a`."), file=sys.stderr)
            return 2
        if self.cli is None:
            print(
                tr(
                    "No `docker` command on this machine: this cell shows what it prints in a terminal. "
                    "The cells above show the same through docker-py. To run it: install Docker's CLI "
                    "(`./course setup` installs one), then run the cell again."
                ),
                file=sys.stderr,
            )
            return 127
        return self._spawn(self.script(text, namespace or {}, line=line))

    def _spawn(self, script: str) -> int:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        tty_hint = False
        try:
            for raw in proc.stdout:
                text = raw.decode("utf-8", "replace")
                tty_hint |= "the input device is not a TTY" in text
                print(text, end="")
            rc = proc.wait()
        except KeyboardInterrupt:
            stop_process_group(proc)
            print("\n" + tr("%docker: interrupted; the command was stopped."), file=sys.stderr)
            return 130
        finally:
            proc.stdout.close()
        if rc:
            msg = tr(f"(the docker command exited with status {rc})")
            if tty_hint:
                msg += tr(
                    "; a notebook cell has no terminal: run `-it` commands in a terminal, or leave out "
                    "`-t` here"
                )
            print(msg, file=sys.stderr)
        return rc


def register(runner: Runner) -> bool:
    """Make ``%docker``/``%%docker`` run through ``runner`` in the current IPython kernel."""
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return False

    def docker(line: str, cell: str | None = None):
        if cell is None:
            runner.run(line, ip.user_ns, line=True)
        else:
            text = cell if not line.strip() else f"docker {line.strip()}\n{cell}"
            runner.run(text, ip.user_ns, line=False)

    from IPython.core.magic import no_var_expand

    no_var_expand(docker)  # {{.Names}} is Go's, not IPython's; {expr} is expanded by expand()
    ip.register_magic_function(docker, "line_cell", "docker")
    return True


def banner(cli: DockerCLI | None) -> str:
    """The setup cell's line on which ``docker`` the ``%docker`` cells run."""
    if cli is None:
        return tr(
            "docker command: none found; the %docker cells say so and the notebook runs on "
            "(install Docker's CLI to run them)."
        )
    return tr(f"docker command: {cli.describe()}; %docker cells run it against this engine.")
