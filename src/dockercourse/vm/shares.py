"""Host folders shared into the VM engine's guest, so that a bind mount of a host folder works there.

A bind mount names a folder of the engine's host. With the VM engine that host is the VM, which has
its own file system: a folder the notebook made on the machine (``tempfile.mkdtemp()``) does not exist
there, and ``-v "$HOST/site":/site`` would give the container an empty folder of the VM's. Docker
Desktop solves this by sharing folders of the Mac or PC into its VM at the same paths (``/Users``,
``/tmp``, ...); the course's VM engine does the same with virtio-9p: each shared folder is mounted in
the guest at the path it has on the host, so bind mounts of it (and of anything below it) work as on
a native engine, in both directions.

qemu serves the files as the user who runs it (``security_model=none``: the guest cannot change their
owners), so a container reaches what that user can, and no more. Shared by default: the temporary
folder (where the chapters make their host folders). ``DOCKERCOURSE_VM_SHARES`` names others
(separated by ``:``) or ``none``. The grading workers' VMs share nothing (a student's notebook must not
reach the grader's files).

The guest's kernel needs the 9p modules: Debian's generic kernel has them (the course fetches it);
its cloud kernel has none, and then the folders are not shared (the console says so).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dockercourse import config


def configured() -> list[Path]:
    """The folders to share: ``DOCKERCOURSE_VM_SHARES`` (``none``: none), else the temporary folder."""
    v = (config.get("DOCKERCOURSE_VM_SHARES") or "").strip()
    if v.lower() == "none":
        return []
    if not v:
        return [Path(tempfile.gettempdir()).resolve()]
    return [Path(p).expanduser().resolve() for p in v.split(":") if p.strip()]


def why_not(path: Path) -> str | None:
    """Why ``path`` cannot be shared (None: it can): it must be an absolute folder whose path the
    kernel's command line and qemu's options can carry (no spaces, commas or colons)."""
    if not path.is_absolute() or not path.is_dir():
        return "not a folder"
    if str(path) == "/":
        return "the root folder is never shared"
    if any(c in str(path) for c in " ,:\t\n\"'"):
        return "its path holds a space, comma, colon or quote"
    return None


def usable(paths, log=print) -> list[Path]:
    """``paths`` that can be shared, each once, a folder inside another shared one left out (it is
    shared already); one line for each left out for another reason."""
    out: list[Path] = []
    for p in sorted({Path(p) for p in paths}, key=lambda p: len(p.parts)):
        reason = why_not(p)
        if reason:
            log(f"vm: {p} is not shared into the VM: {reason}")
        elif not any(p == q or q in p.parents for q in out):
            out.append(p)
    return out


def qemu_args(paths: list[Path]) -> list[str]:
    """qemu options: one virtio-9p device per folder, tagged ``dcshareN``."""
    args: list[str] = []
    for i, p in enumerate(paths):
        args += [
            "-fsdev",
            f"local,id=dcshare{i},path={p},security_model=none",
            "-device",
            f"virtio-9p-pci,fsdev=dcshare{i},mount_tag=dcshare{i}",
        ]
    return args


def tls_args(guest_dir: Path) -> tuple[list[str], str]:
    """qemu options and the kernel command line's part for the folder of the engine's TLS files
    (:mod:`.tls`): shared read-only, tagged ``dctls``, mounted at the path it has on the host."""
    return (
        ["-fsdev", f"local,id=dctls,path={guest_dir},security_model=none,readonly=on",
         "-device", "virtio-9p-pci,fsdev=dctls,mount_tag=dctls"],
        f" dc.tls=dctls:{guest_dir}",
    )  # fmt: skip


def cmdline(paths: list[Path]) -> str:
    """The kernel command line's part that tells the guest where to mount each tag."""
    return "".join(f" dc.share=dcshare{i}:{p}" for i, p in enumerate(paths))
