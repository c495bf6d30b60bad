"""qemu itself: where it is, whether KVM really runs a guest here, and starting, and killing,
its process.

KVM is used only when it really runs a guest: ``/dev/kvm`` may exist yet hang (nested
virtualisation on some clouds), so :func:`kvm_usable` boots the VM kernel with a timeout
and waits for its panic on the serial console. Otherwise TCG (pure emulation) is used,
and every figure measured is an emulated one. :mod:`.boot` builds the command line and
the :class:`~dockercourse.vm.boot.Boot` handle on top of this.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from dockercourse import config
from dockercourse.errors import CourseError

logger = logging.getLogger(__name__)

_KVM_CACHE: dict[str, bool] = {}


def qemu_binary() -> str | None:
    """Path of ``qemu-system-x86_64`` (``DOCKERCOURSE_QEMU`` overrides), or None."""
    env = config.get("DOCKERCOURSE_QEMU")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("qemu-system-x86_64", "/usr/libexec/qemu-kvm"):
        p = shutil.which(name) if not name.startswith("/") else (name if os.access(name, os.X_OK) else None)
        if p:
            return p
    return None


def require_qemu() -> str:
    q = qemu_binary()
    if not q:
        raise CourseError(
            "qemu is not installed; fix: sudo apt-get install -y qemu-system-x86 "
            "(on Binder: add qemu-system-x86 to binder/apt.txt)"
        )
    return q


def _kvm_ioctl_ok() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, 0xAE00) == 12  # KVM_GET_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


def kvm_usable(timeout: float = 5, kernel=None) -> bool:
    """True when KVM really boots a Linux kernel here, within ``timeout`` seconds.

    ``DOCKERCOURSE_VM_ACCEL=tcg`` forces False, ``=kvm`` forces True. Otherwise
    ``/dev/kvm`` must open read-write and answer ``KVM_GET_API_VERSION``, and the VM
    kernel (:func:`dockercourse.vm.kernel.get_kernel`, or ``kernel``) booted with
    ``-accel kvm -cpu host`` and no root disk must reach its "cannot mount root"
    panic in time. (Firmware alone is not enough: nested KVM on some clouds runs the
    BIOS, then hangs or fails in the kernel.) The answer is remembered for the process
    and, per host boot, in the VM cache directory.
    """
    forced = (config.get("DOCKERCOURSE_VM_ACCEL") or "").lower()
    if forced in ("tcg", "kvm"):
        return forced == "kvm"
    if "kvm" in _KVM_CACHE:
        return _KVM_CACHE["kvm"]
    q = qemu_binary()
    if not q or not _kvm_ioctl_ok():
        _KVM_CACHE["kvm"] = False
        return False
    from dockercourse.vm import cache_dir

    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError as e:
        logger.debug("no boot id (%s): the KVM probe's answer is not kept on disk", e)
        boot_id = ""
    marker = cache_dir() / "kvm-probe"
    if boot_id:
        try:
            bid, answer = marker.read_text().split()
            if bid == boot_id:
                _KVM_CACHE["kvm"] = answer == "yes"
                return _KVM_CACHE["kvm"]
        except (OSError, ValueError) as e:
            logger.debug("no KVM probe answer of this boot in %s (%s)", marker, e)
    if kernel is None:
        from dockercourse.vm.kernel import get_kernel

        kernel = get_kernel(log=lambda *_: None)
    ok = _kvm_boots(q, kernel, timeout)
    _KVM_CACHE["kvm"] = ok
    if boot_id:
        try:
            marker.write_text(f"{boot_id} {'yes' if ok else 'no'}\n")
        except OSError as e:
            logger.debug("cannot keep the KVM probe's answer in %s (%s)", marker, e)
    return ok


def _kvm_boots(q: str, kernel, timeout: float) -> bool:
    """Boot ``kernel`` under KVM without a root disk: True when it reaches its panic in time."""
    try:
        proc = subprocess.Popen(
            [
                q,
                "-machine",
                "pc,accel=kvm",
                "-cpu",
                "host",
                "-m",
                "64",
                "-nodefaults",
                "-display",
                "none",
                "-no-user-config",
                "-no-reboot",
                "-kernel",
                str(kernel),
                "-append",
                "console=ttyS0 panic=-1 root=/dev/dockercourse-probe",
                "-chardev",
                "stdio,id=c0,signal=off",
                "-serial",
                "chardev:c0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        logger.debug("the KVM probe's qemu did not start (%s): no KVM", e)
        return False
    ok = False
    buf = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        try:
            chunk = proc.stdout.read(65536)
        except OSError:  # BlockingIOError: nothing to read yet
            chunk = None
        if chunk:
            buf += chunk
            if b"Kernel panic" in buf or b"VFS:" in buf:
                ok = True
                break
        elif proc.poll() is not None:
            break
        time.sleep(0.05)
    kill(proc)
    return ok


def kill(proc: subprocess.Popen, grace: float = 0) -> None:
    if proc.poll() is None:
        try:
            if grace:
                proc.terminate()
                try:
                    proc.wait(grace)
                    return
                except subprocess.TimeoutExpired:
                    logger.debug(
                        "qemu (pid %s) did not stop within %s s of SIGTERM; killing it", proc.pid, grace
                    )
            proc.kill()
        except ProcessLookupError:  # exited meanwhile
            logger.debug("qemu (pid %s) exited before it was killed", proc.pid)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        logger.warning("qemu (pid %s) did not exit within 10 s of SIGKILL", proc.pid)
    for f in (proc.stdout, proc.stderr, proc.stdin):
        try:
            if f:
                f.close()
        except OSError as e:
            logger.debug("closing a pipe of qemu (pid %s): %s", proc.pid, e)


def popen(cmd: list[str], workdir: Path | None, penv: dict, pre) -> subprocess.Popen:
    """Start qemu: with a ``workdir``, in it, its output to ``workdir/qemu.log``; else with pipes."""
    if workdir is not None:
        with open(workdir / "qemu.log", "ab") as qlog:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=qlog,
                stderr=qlog,
                cwd=workdir,
                env=penv,
                start_new_session=True,
                close_fds=True,
                preexec_fn=pre,
            )
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=penv,
        start_new_session=True,
        preexec_fn=pre,
    )


def _load_prctl():
    """libc's ``prctl``, looked up in the parent (the child between fork and exec must not
    log or import); None without it (then qemu does not die with its parent)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError) as e:
        logger.warning(
            "no prctl in this C library (%s): a VM does not die with the process that started it", e
        )
        return None


_PRCTL: list = []


def pdeathsig_fn():
    """The ``preexec_fn`` that gives qemu SIGKILL when its parent thread dies (or None)."""
    if not _PRCTL:
        _PRCTL.append(_load_prctl())
    prctl = _PRCTL[0]
    if prctl is None:
        return None

    def pdeathsig() -> None:  # runs in the child between fork and exec
        prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL; a failure returns -1 and changes nothing

    return pdeathsig
