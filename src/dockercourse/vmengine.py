"""``dockercourse engine vm up|down|status``: a Docker engine inside a qemu VM.

    dockercourse engine vm up [--memory MB] [--images busybox:1.35.0,...|all] [--accel auto|kvm|tcg]
                              [--name NAME] [--rebuild] [--export] [--flavor docker|podman]
    dockercourse engine vm down [--name NAME]
    dockercourse engine vm status [--name NAME] [--json]   (also the forwarded published ports)
    dockercourse engine vm build [--images ...] [--rebuild] [--flavor ...]  (artifacts only, no VM left running)

The ``docker`` flavour (default) runs Docker 28.5 from the course's Debian packages (cgroup v2,
containerd image store); ``podman`` runs Podman 5's Docker-compatible API on a Debian trixie guest.

``up`` prints ``DOCKER_HOST=tcp://127.0.0.1:PORT``; with ``--export`` it prints
``export DOCKER_HOST=...`` so that ``eval "$(dockercourse engine vm up --export)"`` sets it
in the shell. Ports that containers in the VM publish are reachable on the host's
127.0.0.1 at the same port (a forwarder process follows the engine's events; ``status``
lists the forwards). Progress goes to stderr. Works as an ordinary user (no root, no /dev/kvm
needed). See docs/vm-engine.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from dockercourse.errors import CourseError


def _images(text: str | None):
    from dockercourse.core.images import COURSE_IMAGES
    from dockercourse.vm.engine import DEFAULT_IMAGES

    if not text:
        return DEFAULT_IMAGES
    if text == "all":
        return tuple(COURSE_IMAGES.values())
    if text == "none":
        return ()
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        out.append(COURSE_IMAGES.get(item, item))  # a role name (busybox) or a reference
    return tuple(out)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    from dockercourse.vm.engine import DEFAULT_MEMORY_MB

    p = argparse.ArgumentParser(prog="dockercourse engine", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    vm = sub.add_parser("vm", help="a Docker engine in a qemu VM")
    acts = vm.add_subparsers(dest="action", required=True)
    for act in ("up", "down", "status", "build"):
        a = acts.add_parser(act)
        a.add_argument("--name", default="default", help="which VM engine (default: default)")
        if act in ("up", "build"):
            a.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="guest RAM in MB")
            a.add_argument("--images", help="comma-separated references or roles, 'all' or 'none'")
            a.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
            a.add_argument("--rebuild", action="store_true", help="rebuild the initramfs and system disk")
            a.add_argument("--flavor", default="docker", choices=("docker", "podman"),
                           help="docker: Docker 28.5 (default); podman: Podman 5's Docker API (Debian trixie guest)")
        if act == "up":
            a.add_argument("--cpus", type=int, default=None, help="vCPUs (default: host's, at most 2)")
            a.add_argument("--port", type=int, help="loopback port for the API (default: a free one)")
            a.add_argument("--export", action="store_true", help="print `export DOCKER_HOST=...`")
        if act == "status":
            a.add_argument("--json", action="store_true")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    from dockercourse.vm import engine as vme

    if args.action == "up":
        eng = vme.up(memory_mb=args.memory, images=_images(args.images), name=args.name,
                     accel=args.accel, cpus=args.cpus, rebuild=args.rebuild, log=_log, port=args.port,
                     flavor=args.flavor)
        mode = "KVM" if eng.accel == "kvm" else "TCG, emulated"
        _log(f"vm: engine {eng.name!r} pid {eng.pid} ({mode}): {eng.engine or eng.flavor}; "
             f"images: {', '.join(eng.images) or 'none'}")
        print(f"export DOCKER_HOST={eng.docker_host}" if args.export else f"DOCKER_HOST={eng.docker_host}")
        return 0
    if args.action == "down":
        vme.down(name=args.name, log=_log)
        return 0
    if args.action == "build":
        art = vme.build(_images(args.images), rebuild=args.rebuild, log=_log, accel=args.accel,
                        memory_mb=args.memory, flavor=args.flavor)
        print(f"kernel {art.kernel}\ninitrd {art.initrd}\ndisk   {art.disk}\nengine {art.engine.get('title', '?')}"
              f"\nimages {', '.join(art.images)}")
        return 0
    st = vme.status(name=args.name)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0 if st and st.get("answers") else 3
    if st is None:
        print(f"vm engine {args.name!r}: not running")
        return 3
    mode = "KVM" if st.get("accel") == "kvm" else "TCG, emulated"
    state = "answers" if st["answers"] else ("running, API not answering" if st["running"] else "stopped (stale state)")
    print(f"vm engine {args.name!r}: {state}; DOCKER_HOST={st['docker_host']}; pid {st['pid']}; {mode}; "
          f"{st.get('memory_mb')} MB guest, qemu RSS {st['rss_bytes'] / 2**20:.0f} MB; "
          f"booted in {st.get('boot_seconds')} s")
    print(f"engine: {st.get('engine') or st.get('flavor', 'docker')}")
    if st["running"]:
        print(_forwards_text(st))
    return 0 if st["answers"] else 3


def _forwards_text(st: dict) -> str:
    """The published ports forwarded to the host (``status``)."""
    if not st.get("monitor"):
        return "published ports: not forwarded to the host (VM started without the forwarder)"
    if not st.get("portfwd_running"):
        return "published ports: forwarder not running (`engine vm up` again restarts it)"
    lines = [f"published ports forwarded to the host (forwarder pid {st.get('portfwd_pid')}):"
             + ("" if st.get("forwards") else " none")]
    for f in st.get("forwards", []):
        who = f"container {f['container']} ({f['container_port']})" if f.get("container") else "(adopted)"
        lines.append(f"  127.0.0.1:{f['port']}/{f['proto']} -> {who}")
    for f in st.get("forwards_failed", []):
        lines.append(f"  not forwarded: {f['port']}/{f['proto']} of container {f['container']}: {f['reason']}")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CourseError as e:
        print(f"dockercourse engine: {e}", file=sys.stderr)
        sys.exit(1)
