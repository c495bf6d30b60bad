"""Start qemu, watch its serial console, measure it, clean up.

``boot(...)`` returns a :class:`Boot` handle (a context manager). Its ``close()`` kills
qemu and removes the handle's temporary directory, so nothing is left behind even when
the caller fails half-way.

Whether KVM or TCG (emulation) runs the guest, and the qemu process itself, are
:mod:`.qemu`'s.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from dockercourse.errors import BootError
from dockercourse.vm.qemu import kill, kvm_usable, pdeathsig_fn, popen, qemu_binary, require_qemu

__all__ = ["qemu_binary", "kvm_usable", "boot", "Boot", "BootError", "free_port"]

logger = logging.getLogger(__name__)

#: qemu's human monitor socket in a VM's workdir (see ``boot(monitor=True)``)
MONITOR_SOCKET = "monitor.sock"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Boot:
    """A running qemu: ``.proc``, ``.accel`` ("kvm"|"tcg"), ``.t_start`` (monotonic),
    ``.console`` (serial output so far), ``.wait_for()``, ``.rss_bytes()``, ``.close()``."""

    def __init__(
        self,
        proc: subprocess.Popen,
        accel: str,
        t_start: float,
        tmpdir: Path | None,
        cmd: list[str],
        console_path: Path | None = None,
    ):
        self.proc = proc
        self.console_path = console_path
        self.accel = accel
        self.t_start = t_start
        self.tmpdir = tmpdir
        self.cmd = cmd
        self._buf = bytearray()
        self._marks: list[tuple[int, float]] = []  # (end offset, arrival time)
        self._cond = threading.Condition()
        self._eof = False
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def console(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace")

    def _read(self) -> None:
        if self.console_path is not None:
            # serial console written to a file by qemu (a VM that outlives this process)
            while not self.console_path.exists() and self.proc.poll() is None:
                time.sleep(0.02)
            try:
                f = open(self.console_path, "rb")
            except OSError as e:
                logger.debug("qemu's console %s cannot be read (%s): no console output", self.console_path, e)
                f = None
            read = (lambda: f.read(65536)) if f else (lambda: b"")
        else:
            fd = self.proc.stdout.fileno()

            def read():
                try:
                    return os.read(fd, 65536)
                except OSError:  # the pipe is gone: the end of the console
                    return b""

        while True:
            chunk = read()
            if not chunk and self.console_path is not None:
                if self.proc.poll() is None and not self._stop:
                    time.sleep(0.02)
                    continue
                chunk = read()
            now = time.monotonic()
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._marks.append((len(self._buf), now))
                if len(self._buf) > 8 << 20:  # keep the last 4 MB
                    cut = len(self._buf) - (4 << 20)
                    del self._buf[:cut]
                    self._marks = [(o - cut, t) for o, t in self._marks if o > cut]
                self._cond.notify_all()

    def _time_at(self, end: int) -> float:
        for off, t in self._marks:
            if off >= end:
                return t
        return time.monotonic()

    def wait_for(self, pattern: bytes | str, timeout: float = 60) -> float:
        """Wait for ``pattern`` (bytes/str, or a regex if it is a ``re.Pattern``) on the
        serial console; return the seconds from qemu's start to when it appeared.

        Raises:
            BootError: qemu exited, or ``timeout`` passed (with the console's tail).
        """
        if isinstance(pattern, str):
            pattern = pattern.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if isinstance(pattern, re.Pattern):
                    m = pattern.search(self._buf)
                    end = m.end() if m else -1
                else:
                    i = self._buf.find(pattern)
                    end = i + len(pattern) if i >= 0 else -1
                if end >= 0:
                    return self._time_at(end) - self.t_start
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        why = "qemu exited" if self._eof else f"not seen within {timeout:.0f} s"
        raise BootError(f"{pattern!r} {why} ({self.accel}); console tail:\n{self.tail()}")

    def tail(self, n: int = 15) -> str:
        text = self.console
        err = ""
        if self.proc.poll() is not None and self.proc.stderr and not self.proc.stderr.closed:
            try:
                err = self.proc.stderr.read().decode(errors="replace")
            except (OSError, ValueError) as e:  # closed meanwhile: the console alone
                logger.debug("qemu's stderr not read (%s)", e)
        lines = [ln for ln in text.splitlines() if ln.strip()][-n:]
        if err.strip():
            lines.append("qemu: " + err.strip()[-500:])
        return "\n".join(lines)

    def rss_bytes(self) -> int:
        """Resident memory of the qemu process (0 when it has exited)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:  # exited: no memory
            return 0
        return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, grace: float = 0) -> None:
        """Kill qemu (after ``grace`` seconds of SIGTERM if given) and remove temp files."""
        kill(self.proc, grace)
        self._stop = True
        self._reader.join(2)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> Boot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _hostfwd_arg(item) -> str:
    if isinstance(item, str):
        return item if item.startswith(("tcp:", "udp:")) else "tcp:" + item
    host_port, guest_port = item[0], item[1]
    proto = item[2] if len(item) > 2 else "tcp"
    return f"{proto}:127.0.0.1:{host_port}-:{guest_port}"


def qemu_command(
    kernel,
    initrd,
    append: str,
    memory_mb: int,
    *,
    accel: str,
    hostfwd=(),
    net: bool | None = None,
    drives=(),
    cpus: int = 1,
    tb_size_mb: int = 128,
    extra_args=(),
    console_path=None,
    monitor=None,
) -> list[str]:
    q = require_qemu()
    if "console=" not in append:
        append = "console=ttyS0 " + append
    if "panic=" not in append:
        append += " panic=-1"
    cmd = [
        q,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "pc" if accel == "tcg" else "pc,accel=kvm",
        "-m",
        str(int(memory_mb)),
        "-smp",
        str(int(cpus)),
        "-kernel",
        str(kernel),
        "-append",
        append.strip(),
        "-chardev",
        (f"file,id=con0,path={console_path}" if console_path else "stdio,id=con0,signal=off"),
        "-serial",
        "chardev:con0",
    ]
    if accel == "tcg":
        cmd += ["-accel", f"tcg,tb-size={int(tb_size_mb)}", "-cpu", "max"]
    else:
        cmd += ["-cpu", "host"]
    if initrd:
        cmd += ["-initrd", str(initrd)]
    if net is None:
        net = bool(hostfwd)
    if net:
        fwd = "".join(",hostfwd=" + _hostfwd_arg(h) for h in hostfwd)
        cmd += ["-netdev", f"user,id=n0{fwd}", "-device", "virtio-net-pci,netdev=n0"]
    for d in drives:
        if isinstance(d, dict):
            opts = ",".join(f"{k}={v}" for k, v in d.items())
        else:
            opts = f"file={d},format=raw,if=virtio"
        cmd += ["-drive", opts]
    if monitor is not None:
        # qemu's human monitor on a unix socket (hostfwd_add/hostfwd_remove at run time)
        cmd += ["-monitor", f"unix:{monitor},server=on,wait=off"]
    cmd += list(extra_args)
    return cmd


def boot(
    kernel,
    initrd,
    append: str,
    memory_mb: int,
    *,
    accel: str = "auto",
    hostfwd=(),
    wait_for: bytes | None = None,
    timeout: float = 60,
    net: bool | None = None,
    drives=(),
    cpus: int = 1,
    tb_size_mb: int = 128,
    extra_args=(),
    env=None,
    workdir: Path | None = None,
    die_with_parent: bool = False,
    monitor: bool = False,
) -> Boot:
    """Start qemu with ``kernel``/``initrd``/``append`` and ``memory_mb`` of guest RAM.

    Args:
        accel: "auto" (KVM when :func:`kvm_usable`, else TCG), "kvm" or "tcg".
        hostfwd: ``(host_port, guest_port)`` pairs (or qemu ``hostfwd`` strings) for
            qemu's user network, bound to 127.0.0.1; any hostfwd turns the network on.
        wait_for: when given, wait up to ``timeout`` s for these bytes on the serial
            console (the handle is closed and :class:`BootError` raised if they don't come).
        drives: disk image paths (virtio, raw) or dicts of qemu ``-drive`` options.
        tb_size_mb: TCG translation cache (qemu's default, 1 GB, inflates RSS).
        workdir: for a VM meant to outlive this process: the serial console goes to
            ``workdir/console.log``, qemu's own messages to ``workdir/qemu.log``, its
            temporary files to ``workdir/tmp``; ``close()`` then leaves ``workdir`` alone
            (its owner removes it). Without it, all goes to a private temporary directory
            that ``close()`` removes.
        die_with_parent: qemu gets SIGKILL when the thread that started it dies (Linux
            ``PR_SET_PDEATHSIG``): a crashed grading worker leaves no VM behind.
        monitor: with ``workdir``: qemu's human monitor listens on
            ``workdir/monitor.sock`` (the user network's netdev id is ``n0``); qemu runs
            in ``workdir``, so the socket is named relative to it when its absolute path
            is too long for a unix socket.

    Returns:
        A :class:`Boot`; the serial console (ttyS0) is read in the background.
    """
    if accel == "auto":
        accel = "kvm" if kvm_usable() else "tcg"
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"accel must be auto, kvm or tcg, not {accel!r}")
    workdir = Path(workdir) if workdir is not None else None
    console_path, tmp_for_qemu, own_tmp = _dirs(workdir)
    mon = _monitor_path(workdir) if monitor else None
    cmd = qemu_command(
        kernel,
        initrd,
        append,
        memory_mb,
        accel=accel,
        hostfwd=hostfwd,
        net=net,
        drives=drives,
        cpus=cpus,
        tb_size_mb=tb_size_mb,
        extra_args=extra_args,
        console_path=console_path,
        monitor=mon,
    )
    t0 = time.monotonic()
    proc = _start(cmd, workdir, env, tmp_for_qemu, own_tmp, die_with_parent)
    handle = Boot(proc, accel, t0, own_tmp, cmd, console_path)
    if wait_for is not None:
        try:
            handle.wait_for(wait_for, timeout)
        except BaseException:
            handle.close()
            raise
    return handle


def _start(cmd, workdir, env, tmp_for_qemu: Path, own_tmp: Path | None, die_with_parent: bool):
    """Start qemu (:func:`.qemu.popen`) with ``TMPDIR`` in ``tmp_for_qemu``: its snapshot=on
    overlays go there (deleted when qemu closes them, kept if qemu is killed), a directory
    removed afterwards."""
    penv = dict(os.environ if env is None else env)
    penv["TMPDIR"] = str(tmp_for_qemu)
    pre = pdeathsig_fn() if die_with_parent else None
    try:
        return popen(cmd, workdir, penv, pre)
    except OSError as e:
        if own_tmp:
            shutil.rmtree(own_tmp, ignore_errors=True)
        raise BootError(f"cannot start qemu: {e}") from None


def _dirs(workdir: Path | None) -> tuple[Path | None, Path, Path | None]:
    """(the console log or None, qemu's TMPDIR, a private temporary directory to remove or None)."""
    if workdir is None:
        own_tmp = Path(tempfile.mkdtemp(prefix="dockercourse-qemu-"))
        return None, own_tmp, own_tmp
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    console_path = workdir / "console.log"
    console_path.write_bytes(b"")
    return console_path, workdir / "tmp", None


def _monitor_path(workdir: Path | None) -> Path:
    """qemu's monitor socket in ``workdir`` (relative to it, qemu's cwd, when the absolute
    path is too long for a unix socket)."""
    if workdir is None:
        raise ValueError("monitor=True needs a workdir")
    mon = workdir / MONITOR_SOCKET
    if len(str(mon).encode()) > 100:  # sun_path holds 108 bytes
        mon = Path(MONITOR_SOCKET)  # relative to qemu's cwd (workdir)
    return mon
