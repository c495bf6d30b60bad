"""Every setting of the course in one place: read from the environment, with its default.

    from dockercourse import config
    config.path("DOCKERCOURSE_STATE")          # Path('/var/lib/dockercourse')
    config.number("DOCKERCOURSE_ENGINE_WAIT")  # 60.0
    config.get("DOCKERCOURSE_ENGINE")          # 'auto'

Code reads a setting only through :func:`get` (or :func:`path`, :func:`number`,
:func:`flag`), never ``os.environ`` directly; a name missing from :data:`SETTINGS` is a
bug (:class:`KeyError`), so every setting is documented here. ``docs/configuration.md``
is generated from this table (``python -m dockercourse.config --markdown``) and a unit
test keeps the two equal. A default of ``None`` means "unset": the code that reads the
setting says what happens then (usually: found automatically).

Standard library only: ``scripts/engine-up`` reads its settings before the course's
Python environment exists.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    area: str


_S = Setting
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        # --- the engine
        _S(
            "DOCKERCOURSE_ENGINE",
            "auto",
            "Which engine `./course` and `scripts/engine-up` use: `auto`, `28` "
            "(= `28-containerd`), `28-classic`, `26`, `20.10` (= `system`), `vm`, `podman`. "
            "`vm` also tells the notebooks that DOCKER_HOST is the course's VM engine (Binder sets it).",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_ENGINE_WAIT",
            "60",
            "Seconds `scripts/engine-up` waits for a starting engine's API.",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_STATE",
            "/var/lib/dockercourse",
            "The course's own engines: data roots, logs, the mirror port, the matrix's runs.",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_RUN_DIR",
            "/run/dockercourse",
            "The course's own engine: its socket, exec roots, pid files "
            "and `engine.json` (what runs and how it was started).",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_PKGS",
            None,
            "Where fetched engine packages live (default: `/var/lib/dockercourse` as root, "
            "`~/.cache/dockercourse` as any other user).",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_DEBIAN_MIRROR",
            "http://deb.debian.org/debian",
            "The Debian archive the course's engine "
            "packages, the VM's kernel and the Podman guest come from.",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_ENGINE_NETNS",
            None,
            "`1`: the course's engine runs in a network namespace of its own (the "
            "test suite starts a second engine beside the first this way).",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_ENGINE_UP",
            "scripts/engine-up",
            "How messages name `scripts/engine-up` (set by the script itself).",
            "engine",
        ),
        _S(
            "DOCKERCOURSE_MIRROR_PORT",
            None,
            "The loopback port of the course's registry mirror (default: the port "
            "`scripts/engine-up` chose, in DOCKERCOURSE_STATE/mirror-port); `0`: no mirror (the VM "
            "engine then uses none).",
            "engine",
        ),
        # --- the course and its notebooks
        _S(
            "DOCKERCOURSE_ROOT",
            None,
            "The course folder holding `checks/` and `notebooks/` (default: found from the "
            "current folder or this checkout).",
            "course",
        ),
        _S(
            "DOCKERCOURSE_LANG",
            None,
            "The language of what the toolkit prints in a notebook (setup lines, check results, hints, "
            "error blocks): `en` or `zh`. Default: the notebook's folder (`notebooks/zh/` is Chinese), "
            "else English; `setup(..., lang=)` overrides it.",
            "course",
        ),
        _S(
            "DOCKERCOURSE_DOCKER_CLI",
            None,
            "The `docker` command the notebooks' `%docker` cells run (a path). Unset: the one of the "
            "course's own engine's packages when that engine is the one in use, else `docker` on PATH.",
            "course",
        ),
        _S(
            "DOCKERCOURSE_NS",
            "",
            "Namespace tag of a run (a grading worker's `g1a2b`): names become "
            "`dc02g1a2b-...`. Empty for learners.",
            "course",
        ),
        _S(
            "DOCKERCOURSE_RUN",
            None,
            "Run id every resource of a run is labelled with (default: random).",
            "course",
        ),
        _S(
            "DOCKERCOURSE_VENV",
            None,
            "The virtual environment `./course` makes and uses (default: `.venv`).",
            "course",
        ),
        _S(
            "DOCKERCOURSE_KIT_CACHE",
            "/var/cache/dockercourse",
            "The image kit's cache of Debian packages and package lists (as root; anyone else: "
            "`~/.cache/dockercourse/kit`).",
            "images",
        ),
        # --- the VM engine
        _S(
            "DOCKERCOURSE_VM_STATE",
            None,
            "State of running VM engines (default: `$XDG_STATE_HOME/dockercourse/vm`).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_CACHE",
            None,
            "The VM engine's kernel, initramfs and disks (default: `~/.cache/dockercourse/vm`).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_MEMORY",
            None,
            "The VM engine's guest memory in MB, when `engine vm up`/`build` get no `--memory` "
            "(default: 768).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_SHARES",
            None,
            "Host folders `engine vm up` mounts in the VM at the same paths, for bind mounts (`:` between "
            "them; `none`: none; default: the temporary folder).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_SEED",
            "auto",
            "Where the VM's disk gets the course images: `auto` (the host's mirror, else its engine, else "
            "built in the VM by the image kit) or `kit` (built in the VM only; Binder).",
            "vm",
        ),
        _S("DOCKERCOURSE_VM_UP_LOG", None, "Where `binder/start` logs the VM engine's boot.", "vm"),
        _S(
            "DOCKERCOURSE_VM_ACCEL",
            None,
            "`kvm` or `tcg` forces qemu's accelerator (default: KVM when it works).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_TIMEOUT",
            None,
            "Seconds to wait for the VM engine's API (default: 60 with KVM, 240 emulated).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_BINARIES",
            None,
            "`host`: build the VM's disk from this machine's dockerd instead of the "
            "course's Docker 28.5 packages.",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_SNAPSHOTTER",
            None,
            "`0`: the VM's engine uses the classic image store (default: the containerd image store).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_KERNEL",
            None,
            "A kernel image for the VM (default: the host's, else Debian's cloud kernel).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_MODULES",
            None,
            "The module folder of DOCKERCOURSE_VM_KERNEL (`/lib/modules/<version>`).",
            "vm",
        ),
        _S(
            "DOCKERCOURSE_VM_KERNEL_PKG",
            None,
            "The Debian kernel package to fetch for the VM (default: the distribution's cloud kernel).",
            "vm",
        ),
        _S("DOCKERCOURSE_QEMU", None, "The qemu binary (default: `qemu-system-x86_64` on the PATH).", "vm"),
    ]
}


def get(name: str) -> str | None:
    """The setting's value: the environment's when set (even empty), else its default."""
    s = SETTINGS[name]
    return os.environ.get(name, s.default)


def is_set(name: str) -> bool:
    """The environment sets ``name`` (even to its default value)."""
    SETTINGS[name]  # a name not declared here is a bug
    return name in os.environ


def path(name: str) -> Path | None:
    value = get(name)
    return Path(value).expanduser() if value else None


def number(name: str) -> float | None:
    value = get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        from dockercourse.errors import UsageError

        raise UsageError(f"{name}={value!r} is not a number") from None


def flag(name: str) -> bool:
    return (get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def markdown() -> str:
    """``docs/configuration.md``: every setting, grouped by what it configures."""
    areas = {
        "engine": "The engine (`scripts/engine-up`, `./course`)",
        "course": "The course and its notebooks",
        "images": "The image kit",
        "vm": "The VM engine",
    }
    out = [
        "# Configuration",
        "",
        "Every setting is an environment variable, read in one place (`src/dockercourse/config.py`); this",
        "page is generated from it "
        "(`python -m dockercourse.config --markdown > docs/configuration.md`) and a",
        "test keeps the two equal. Unset settings take the default.",
        "",
    ]
    for area, title in areas.items():
        out += [f"## {title}", "", "| variable | default | what it does |", "|---|---|---|"]
        for s in SETTINGS.values():
            if s.area == area:
                default = f"`{s.default}`" if s.default else "—"
                out.append(f"| `{s.name}` | {default} | {s.help} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown(), end="")
        sys.exit(0)
    print("usage: python -m dockercourse.config --markdown", file=sys.stderr)
    sys.exit(2)
