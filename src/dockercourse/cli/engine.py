"""``dockercourse engine``: the course's Docker engines.

    dockercourse engine up [--engine NAME] [--data-root DIR]   make an engine answer (idempotent)
    dockercourse engine down                                    stop the engine the course started
    dockercourse engine status [--json]                         which engine answers, who started it
    dockercourse engine remove [--engine NAME]                  delete the course's engines' data
    dockercourse engine list                                    the engines the course knows

    dockercourse engine vm up [--memory MB] [--images busybox:1.35.0,...|all|none] [--accel auto|kvm|tcg]
                              [--name NAME] [--rebuild] [--export] [--flavor docker|podman]
                              [--cpus N] [--port P] [--share DIR|--no-share] [--tls]
    dockercourse engine vm down [--name NAME]
    dockercourse engine vm status [--name NAME] [--json]   (also the forwarded published ports)
    dockercourse engine vm build [--images ...] [--rebuild] [--flavor ...]
                                                                (artifacts only, no VM left running)

The engines on this machine are :mod:`dockercourse.engines.local`'s (the same functions as
``scripts/engine-up``; see docs/engines.md). The VM engine's ``docker`` flavour (default) runs
Docker 28.5 from the course's Debian packages (cgroup v2, containerd image store); ``podman``
runs Podman 5's Docker-compatible API on a Debian trixie guest. ``vm up`` prints
``DOCKER_HOST=tcp://127.0.0.1:PORT``; with ``--export`` it prints ``export DOCKER_HOST=...`` so
that ``eval "$(dockercourse engine vm up --export)"`` sets it in the shell. Ports that
containers in the VM publish are reachable on the host's 127.0.0.1 at the same port
(``vm status`` lists the forwards). With ``--tls`` the API answers only the certificate made for this
user (``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH`` are printed too): for machines others log in to.
Progress goes to stderr. The VM works as an ordinary user
(no root, no /dev/kvm needed). See docs/vm-engine.md.

``status`` exits 0 when the engine answers; ``vm status`` exits 3 when its VM does not answer.
"""

from __future__ import annotations

import json
import os

from dockercourse import config
from dockercourse.cli._args import log
from dockercourse.errors import EngineError


def register(sub) -> None:
    p = sub.add_parser(
        "engine",
        help="the course's engines: on this machine, or in a qemu VM (engine vm ...)",
        description="The course's Docker engines: on this machine (up, down, status, remove, "
        "list: what scripts/engine-up does), or inside a qemu VM (engine vm ...). "
        "See docs/engines.md and docs/vm-engine.md.",
    )
    acts = p.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    _register_local(acts)
    _register_vm(acts)


# --------------------------------------------------------------------------- this machine's engines


def _engine_option(p, default, what: str) -> None:
    from dockercourse.engines.specs import ENGINES

    p.add_argument(
        "--engine",
        metavar="NAME",
        default=default,
        help=f"{what}; the names: {', '.join(ENGINES)} (and the aliases `dockercourse engine list` shows)",
    )


def _register_local(acts) -> None:
    from dockercourse import config

    up = acts.add_parser(
        "up",
        help="make an engine answer: one that answers, the system's, or the course's own",
        description="Bring up a Docker engine for the course (idempotent): one that already "
        "answers is used as it is; otherwise the distribution's docker.io when "
        "current enough, else the course's own Docker 28.5 from Debian's packages. "
        "Starting one needs root. The same as scripts/engine-up.",
    )
    _engine_option(
        up, config.get("DOCKERCOURSE_ENGINE"), "which engine: auto (default; env DOCKERCOURSE_ENGINE)"
    )
    up.add_argument(
        "--data-root", metavar="DIR", help="start with this data root instead of the engine's own"
    )
    up.set_defaults(run=run_up)
    down = acts.add_parser(
        "down",
        help="stop the engine the course started (never another one)",
        description="Stop the engine the course started (only that one; a system service, "
        "Docker Desktop or an engine you started are never touched).",
    )
    down.set_defaults(run=run_down)
    st = acts.add_parser(
        "status",
        help="which engine answers, and how it was started",
        description="Which engine answers and, when the course started it, how. Exits 1 "
        "with what to do when none answers.",
    )
    st.add_argument("--json", action="store_true", help="print the state as JSON (exit 3 when none answers)")
    st.set_defaults(run=run_status)
    rm = acts.add_parser(
        "remove",
        help="stop and delete the course's own engines (data, logs, packages)",
        description="Stop and delete the course's own engines: data roots, exec roots, logs "
        "and (without --engine) the fetched packages. The distribution's engine "
        "and /var/lib/docker are never touched. Needs root.",
    )
    _engine_option(
        rm, None, "only this engine's data and log (default: every engine's, and the fetched packages)"
    )
    rm.set_defaults(run=run_remove)
    ls = acts.add_parser(
        "list",
        help="the engines the course knows",
        description="The engines `--engine` names (`auto` chooses one).",
    )
    ls.set_defaults(run=run_list)


def run_up(args) -> int:
    from dockercourse.engines import local
    from dockercourse.engines.specs import resolve

    if args.engine not in ("", "auto"):
        resolve(args.engine)  # an unknown name fails (UsageError) before anything starts
    res = local.up(args.engine, args.data_root)
    print(f"DOCKER_HOST={res['docker_host']}")
    return 0


def run_down(args) -> int:
    from dockercourse.engines import local

    try:
        local.stop()
    except PermissionError:
        raise EngineError("stopping the course's engine needs root: sudo dockercourse engine down") from None
    return 0


def run_remove(args) -> int:
    from dockercourse.engines import local
    from dockercourse.engines.specs import resolve

    name = None if args.engine is None else resolve(args.engine).name
    if os.geteuid() != 0:
        raise EngineError("removing the course's engines needs root: sudo dockercourse engine remove")
    for d in local.remove(name):
        log(f"removed {d}")
    return 0


def run_list(args) -> int:
    from dockercourse.engines.specs import ENGINES

    print(f"{'auto':14} the one that answers; else the system's docker.io when current, else the primary one")
    for s in ENGINES.values():
        print(f"{s.name:14} {s.title}" + (f"  (also: {', '.join(s.aliases)})" if s.aliases else ""))
    return 0


def run_status(args) -> int:
    from dockercourse.engines import local

    st = local.status()
    if args.json:
        return _json(st)
    if st["answers"]:
        print(f"engine: {st['engine']} at {st['docker_host']} ({st['where']})")
    rec = st.get("course_engine")
    if rec:
        state = (
            "answers"
            if st.get("started_by_course")
            else (
                f"supervised (pid {rec.get('supervisor_pid')}) at {rec.get('docker_host')}, "
                "but not the engine that answers here"
            )
        )
        print(
            f"the course's engine {rec['name']!r} ({rec['title']}): {state}; started {rec.get('started')} by "
            f"{rec.get('how')}; log {rec.get('log')}"
        )
    elif st["answers"]:
        print("started by: not the course (a system service, Docker Desktop, or an engine you started)")
    if not st["answers"]:
        from dockercourse.core.engine import connect

        client = connect()  # every place the course looks; NoEngineError says what to do when none answers
        print(f"engine: answers at {client.api.base_url} (not one the course starts)")
    return 0


def _json(st: dict | None) -> int:
    """``status --json``: the state as JSON; exit 0 when the engine answers, else 3."""
    print(json.dumps(st, indent=1))
    return 0 if st and st.get("answers") else 3


# --------------------------------------------------------------------------- the VM engine


def _register_vm(acts) -> None:
    from dockercourse.vm.engine import DEFAULT_MEMORY_MB

    vm = acts.add_parser(
        "vm",
        help="a Docker engine in a qemu VM (up|down|status|build)",
        description="A Docker engine (or Podman's Docker API) inside a qemu VM, as an ordinary "
        "user (no root, no /dev/kvm needed). See docs/vm-engine.md.",
    )
    vacts = vm.add_subparsers(title="actions", dest="vm_action", metavar="ACTION", required=True)
    helps = {
        "up": ("boot a VM engine (building it on first use); print DOCKER_HOST", vm_up),
        "down": ("stop a VM engine and remove its state", vm_down),
        "status": (
            "the VM engine's state, boot time, memory and forwarded ports (exit 3: not up)",
            vm_status,
        ),
        "build": ("build the kernel, initramfs and seeded disk only (no VM left running)", vm_build),
    }
    for act, (text, fn) in helps.items():
        a = vacts.add_parser(act, help=text, description=text[0].upper() + text[1:] + ".")
        a.set_defaults(run=fn)
        a.add_argument("--name", default="default", help="which VM engine (default: default)")
        if act in ("up", "build"):
            a.add_argument(
                "--memory",
                type=int,
                default=int(config.number("DOCKERCOURSE_VM_MEMORY") or DEFAULT_MEMORY_MB),
                help="guest RAM in MB (default %(default)s; DOCKERCOURSE_VM_MEMORY)",
            )
            a.add_argument("--images", help="comma-separated references or roles, 'all' or 'none'")
            a.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
            a.add_argument("--rebuild", action="store_true", help="rebuild the initramfs and system disk")
            a.add_argument(
                "--flavor",
                default="docker",
                choices=("docker", "podman"),
                help="docker: Docker 28.5 (default); podman: Podman 5's Docker API (Debian trixie guest)",
            )
        if act == "up":
            a.add_argument("--cpus", type=int, default=None, help="vCPUs (default: host's, at most 2)")
            a.add_argument("--port", type=int, help="loopback port for the API (default: a free one)")
            a.add_argument("--export", action="store_true", help="print `export DOCKER_HOST=...`")
            a.add_argument(
                "--share",
                action="append",
                metavar="FOLDER",
                help="a host folder to mount in the VM at the same path, for bind mounts (repeatable; "
                "default: the temporary folder, or DOCKERCOURSE_VM_SHARES)",
            )
            a.add_argument("--no-share", action="store_true", help="share no host folder with the VM")
            a.add_argument(
                "--tls",
                action="store_true",
                help="the API on mutual TLS: only this user's certificate is let in (machines others use)",
            )
        if act == "status":
            a.add_argument("--json", action="store_true", help="print the state as JSON")


def _images(text: str | None):
    from dockercourse.core.images import COURSE_IMAGES
    from dockercourse.vm.engine import DEFAULT_IMAGES

    if not text:
        return DEFAULT_IMAGES
    if text == "all":
        return tuple(COURSE_IMAGES.values())
    if text == "none":
        return ()
    # each item a role name (busybox) or a reference
    return tuple(COURSE_IMAGES.get(i.strip(), i.strip()) for i in text.split(",") if i.strip())


def _mode(accel: str | None) -> str:
    return "KVM" if accel == "kvm" else "TCG, emulated"


def vm_up(args) -> int:
    from dockercourse.vm import engine as vme

    eng = vme.up(
        memory_mb=args.memory,
        images=_images(args.images),
        name=args.name,
        accel=args.accel,
        cpus=args.cpus,
        rebuild=args.rebuild,
        log=log,
        port=args.port,
        flavor=args.flavor,
        shares=_shares(args),
        tls=args.tls,
    )
    log(
        f"vm: engine {eng.name!r} pid {eng.pid} ({_mode(eng.accel)}): {eng.engine or eng.flavor}; "
        f"images: {', '.join(eng.images) or 'none'}; host folders shared: {', '.join(eng.shares) or 'none'}"
    )
    for k, v in eng.env().items():
        print(f"export {k}={v}" if args.export else f"{k}={v}")
    return 0


def _shares(args):
    from pathlib import Path

    from dockercourse.vm import shares

    if args.no_share:
        return []
    return [Path(p).expanduser().resolve() for p in args.share] if args.share else shares.configured()


def vm_down(args) -> int:
    from dockercourse.vm import engine as vme

    vme.down(name=args.name, log=log)
    return 0


def vm_build(args) -> int:
    from dockercourse.vm import engine as vme

    art = vme.build(
        _images(args.images),
        rebuild=args.rebuild,
        log=log,
        accel=args.accel,
        memory_mb=args.memory,
        flavor=args.flavor,
    )
    print(
        f"kernel {art.kernel}\ninitrd {art.initrd}\ndisk   {art.disk}\nengine {art.engine.get('title', '?')}"
        f"\nimages {', '.join(art.images)}"
    )
    return 0


def vm_status(args) -> int:
    from dockercourse.vm import engine as vme

    st = vme.status(name=args.name)
    if args.json:
        return _json(st)
    if st is None:
        print(f"vm engine {args.name!r}: not running")
        return 3
    state = (
        "answers"
        if st["answers"]
        else ("running, API not answering" if st["running"] else "stopped (stale state)")
    )
    print(
        f"vm engine {args.name!r}: {state}; DOCKER_HOST={st['docker_host']}; pid {st['pid']}; "
        f"{_mode(st.get('accel'))}; {st.get('memory_mb')} MB guest, "
        f"qemu RSS {st['rss_bytes'] / 2**20:.0f} MB; "
        f"booted in {st.get('boot_seconds')} s"
    )
    print(f"engine: {st.get('engine') or st.get('flavor', 'docker')}")
    print(f"host folders shared (bind mounts of them work): {', '.join(st.get('shares') or []) or 'none'}")
    if st.get("tls_dir"):
        print(f"API on mutual TLS: DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={st['tls_dir']}")
    if st["running"]:
        print(_forwards_text(st))
    return 0 if st["answers"] else 3


def _forwards_text(st: dict) -> str:
    """The published ports forwarded to the host (``vm status``)."""
    if not st.get("monitor"):
        return "published ports: not forwarded to the host (VM started without the forwarder)"
    if not st.get("portfwd_running"):
        return "published ports: forwarder not running (`engine vm up` again restarts it)"
    lines = [
        f"published ports forwarded to the host (forwarder pid {st.get('portfwd_pid')}):"
        + ("" if st.get("forwards") else " none")
    ]
    for f in st.get("forwards", []):
        who = f"container {f['container']} ({f['container_port']})" if f.get("container") else "(adopted)"
        lines.append(f"  127.0.0.1:{f['port']}/{f['proto']} -> {who}")
    for f in st.get("forwards_failed", []):
        lines.append(
            f"  not forwarded: {f['port']}/{f['proto']} of container {f['container']}: {f['reason']}"
        )
    return "\n".join(lines)
