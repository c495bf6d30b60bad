"""A container's process seen from the engine's host: the machine whose kernel runs the containers.

With an engine on this machine (Docker Engine on Linux), that host is the notebook's own machine, and
its ``/proc`` lists the container's process next to the notebook's. With Docker Desktop, the course's
VM engine or a remote engine, the host is a VM or another machine: a PID from ``docker top`` means
nothing in this machine's ``/proc`` (or, worse, names an unrelated process). And a user who may use
the engine without being root (the ``docker`` group) cannot read another user's namespace links here.

:func:`process_view` therefore reads this machine's ``/proc`` only when it really holds the container's
process (its root's ``/etc/hostname`` is the container's host name) and can be read; otherwise it asks
the engine for a short-lived helper container that shares the engine host's PID namespace::

    docker run --rm --pid host --cap-add SYS_PTRACE --security-opt apparmor=unconfined \\
        --network none busybox:1.35.0 sh -c 'cat /proc/<pid>/comm; readlink /proc/<pid>/ns/pid'

which is how one looks into Docker Desktop's VM. It asks for no more than it needs: reading another
process's namespace links and memory map takes CAP_SYS_PTRACE (and, where AppArmor confines
containers, leave to read unconfined processes). ``--privileged`` would also do, but Docker 20.10
gives a privileged container every capability the kernel knows, and where the engine itself lacks
one (an engine in a container, a sandbox) runc refuses it: "unable to apply caps: operation not
permitted"; Docker 23 and later give only those the engine has.

Either way the result is the same kind of fact, so a notebook prints the same lines on every engine::

    from dockercourse.lessonkit.enginehost import process_view
    view = process_view(client, name, container)   # {"comm": "sleep", "namespaces": {"pid": True, ...}}

:func:`shim_memory` reads the memory of the engine host's containerd shims the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockercourse.core.images import BUSYBOX

#: The namespaces a notebook compares (each differs for a container's process).
NAMESPACES = ("pid", "uts", "mnt", "net", "ipc")

#: Label of the helper container (removed when it ends, by the engine; a crash leaves it to the
#: chapter's clean-up, which removes every container of the chapter's namespace).
LABEL = "io.dockercourse.enginehost"

# $0: the container's PID on the engine's host. The reference is the host's first process, or, when
# its links cannot be read (a rootless engine's helper), the helper's parent's (the runtime's
# side of the host). Prints: comm, "<ns> <link of pid> <link of the reference>" per namespace, and
# the CPU model the engine host's kernel reports.
_SCRIPT = (
    'p=/proc/$0; cat $p/comm; r=/proc/1; [ -n "$(readlink $r/ns/pid)" ] || r=/proc/$PPID; '
    "for ns in " + " ".join(NAMESPACES) + "; do "
    'echo "$ns $(readlink $p/ns/$ns) $(readlink $r/ns/$ns)"; done; '
    "grep -m1 '^model name' /proc/cpuinfo"
)

# Every containerd shim on the engine's host: "<container id> <PSS kB> <RSS kB>" ("?" where unreadable).
_SHIMS = r"""
for d in /proc/[0-9]*; do
  set -- $(tr '\0' ' ' < $d/cmdline 2>/dev/null)
  case "$1" in *containerd-shim*) ;; *) continue ;; esac
  id=; while [ $# -gt 0 ]; do [ "$1" = -id ] && id=$2; shift; done
  [ -n "$id" ] || continue
  pss=$(awk '/^Pss:/ {print $2}' $d/smaps_rollup 2>/dev/null); rss=$(awk '/^VmRSS:/ {print $2}' $d/status)
  echo "$id ${pss:-?} ${rss:-?}"
done
"""


def cpu_model(text: str) -> str:
    """The first ``model name`` line of a /proc/cpuinfo text ('' when it has none: not every CPU says)."""
    return next((line for line in text.splitlines() if line.startswith("model name")), "")


def _local(pid: int, hostname: str) -> dict | None:
    """The view from this machine's /proc, or None when it does not hold the container's process."""
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "root" / "etc" / "hostname").read_text().strip() != hostname:
            return None  # another machine's PID (a VM engine): this one is some other process
        comm = (proc / "comm").read_text().strip()
        ns = {n: os.readlink(proc / "ns" / n) != os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}
        cpu = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:  # not here, or not ours to read (a docker-group user, a root engine)
        return None
    return {"comm": comm, "namespaces": ns, "cpu_model": cpu, "seen_from": "this machine's /proc"}


def parse(output: str) -> dict:
    """The helper's output as ``{"comm", "namespaces": {ns: differs (None: unreadable)}, "cpu_model"}``."""
    lines = output.strip().splitlines()
    ns = {}
    for line in lines[1:]:
        parts = line.split()
        if parts and parts[0] in NAMESPACES:
            ns[parts[0]] = (parts[1] != parts[2]) if len(parts) == 3 else None
    return {"comm": lines[0].strip() if lines else "", "namespaces": ns, "cpu_model": cpu_model(output)}


def _helper(client, name, script: list[str]) -> str:
    """Run ``script`` in a short-lived helper sharing the engine host's PID namespace; its output."""
    import uuid

    return client.containers.run(
        BUSYBOX,
        script,
        name=name(f"hostview-{uuid.uuid4().hex[:6]}"),
        labels={LABEL: "1"},
        pid_mode="host",
        cap_add=["SYS_PTRACE"],  # another process's /proc/<pid>/ns/* and smaps_rollup
        security_opt=["apparmor=unconfined"],  # docker-default lets a container read only its peers
        network_mode="none",
        remove=True,
    ).decode()


def parse_shims(output: str) -> dict[str, dict]:
    """The shim listing as ``{container id: {"pss": bytes, "rss": bytes}}`` (None where unreadable)."""
    out = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3:
            pss, rss = (int(v) * 1024 if v.isdigit() else None for v in parts[1:])
            out[parts[0]] = {"pss": pss, "rss": rss}
    return out


def shim_memory(client, name) -> dict[str, dict]:
    """PSS and RSS of every containerd shim on the engine's host, read there by a helper container."""
    return parse_shims(_helper(client, name, ["sh", "-c", _SHIMS]))


def process_view(client, name, container) -> dict:
    """The container's main process as its engine's host sees it: command name, namespaces that differ.

    ``name`` is the chapter's naming function (the helper is one of the chapter's containers).
    ``seen_from`` says how it was read: this machine's /proc, or the engine host's through a helper.
    """
    container.reload()
    pid = container.attrs["State"]["Pid"]
    view = _local(pid, container.attrs["Config"]["Hostname"])
    if view is not None:
        return view
    view = parse(_helper(client, name, ["sh", "-c", _SCRIPT, str(pid)]))
    view["seen_from"] = "the engine host's /proc, through a helper container (--pid host)"
    return view
