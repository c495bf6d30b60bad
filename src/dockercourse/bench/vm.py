"""A real virtual machine to compare with: a tiny Linux guest booted with qemu.

The guest is the smallest honest VM: a Linux kernel (the host's own when it is readable,
else Debian's cloud kernel, see :mod:`dockercourse.vm.kernel`) and an initramfs holding
only ``/bin/busybox`` - the very binary of the ``busybox`` image - and an ``/init`` script.
The boot time is measured from starting qemu to the line ``/init`` prints on the serial
console ("init reached"): firmware, kernel boot and unpacking the initramfs, nothing more.
Then ``/init`` runs the same CPU-bound workload as the container benchmark and powers off.

qemu uses KVM (hardware-assisted virtualization) when ``/dev/kvm`` really works, otherwise
TCG, which *emulates* every guest instruction: results then say ``emulated``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dockercourse.bench.containers import (
    CPU_SCRIPT,
    LABEL,
    helper_name,
    parse_cpu_output,
)

INIT_MARK = "dockercourse: init reached"
DONE_MARK = "dockercourse: done"
WORK_MARK = "dockercourse: work starts"

INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
echo "{init_mark}"
/bin/busybox --install -s /bin
export PATH=/bin
echo "{work_mark}"
{work}
echo "{done_mark}"
/bin/busybox poweroff -f
"""


@dataclass
class VMResult:
    """What one tiny-VM boot measured (``available`` False: why not, in ``reason``)."""

    available: bool
    reason: str = ""
    accel: str = ""  # "kvm" or "tcg"
    boot_seconds: float | None = None  # qemu start -> "init reached"
    rss_bytes: int | None = None  # the qemu process, just after init was reached
    cpu_seconds: float | None = None  # the workload inside the guest, timed by the host
    cpu_guest_clock_seconds: float | None = None  # the same, by the guest's own clock
    cpu_mb: int = 0
    memory_mb: int = 0
    kernel: str = ""
    kernel_bytes: int = 0
    initramfs_bytes: int = 0
    log_tail: str = field(default="", repr=False)

    @property
    def emulated(self) -> bool:
        return self.accel == "tcg"

    @property
    def label(self) -> str:
        """``VM (KVM)`` or ``VM (TCG, emulated)``."""
        return "VM (KVM)" if self.accel == "kvm" else "VM (TCG, emulated)" if self.accel else "VM"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("log_tail", None)
        d["emulated"] = self.emulated
        return d


def qemu_available() -> tuple[bool, str]:
    """(True, "") when qemu and its helper package are there, else (False, why not)."""
    try:
        from dockercourse.vm import boot as qboot
    except ImportError as e:
        return False, f"the toolkit's qemu support is missing ({e})"
    try:
        if not qboot.qemu_binary():
            return False, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    except Exception as e:  # noqa: BLE001 - the helper says what is missing
        return False, str(e)
    return True, ""


def build_initramfs(busybox: Path, out: Path, cpu_mb: int = 64) -> Path:
    """The guest's initramfs: busybox and an /init that marks, works and powers off."""
    from dockercourse.vm import initramfs

    work = CPU_SCRIPT.format(mb=cpu_mb) if cpu_mb else ""
    init = INIT.format(init_mark=INIT_MARK, work_mark=WORK_MARK, done_mark=DONE_MARK, work=work)
    return initramfs.build(out, {"/bin/busybox": Path(busybox)}, init)


def boot_tiny_vm(
    busybox: Path,
    *,
    cpu_mb: int = 64,
    memory_mb: int = 128,
    accel: str = "auto",
    timeout: float = 180,
    log=print,
) -> VMResult:
    """Boot the tiny guest once: boot time, qemu's memory, the CPU workload inside.

    Never raises for a missing qemu or kernel: the result says ``available=False`` and why.
    """
    ok, why = qemu_available()
    if not ok:
        return VMResult(False, why)
    from dockercourse.vm import boot as qboot
    from dockercourse.vm import kernel as qkernel

    try:
        kern = Path(qkernel.get_kernel(log=log))
    except Exception as e:  # noqa: BLE001 - CourseError or a failed fetch: say so, use reference data
        return VMResult(False, f"no bootable kernel: {e}")
    work = Path(tempfile.mkdtemp(prefix="dockercourse-tinyvm-"))
    try:
        initrd = build_initramfs(busybox, work / "initramfs.gz", cpu_mb)
        res = VMResult(
            True,
            kernel=str(kern),
            kernel_bytes=kern.stat().st_size,
            initramfs_bytes=initrd.stat().st_size,
            cpu_mb=cpu_mb,
            memory_mb=memory_mb,
        )
        append = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init"
        with qboot.boot(kern, initrd, append, memory_mb, accel=accel, timeout=timeout) as vm:
            res.accel = vm.accel
            res.boot_seconds = vm.wait_for(INIT_MARK, timeout=timeout)  # seconds since qemu started
            res.rss_bytes = vm.rss_bytes()
            if cpu_mb:
                # timed from the host by when the console lines arrived: a TCG guest's own clock
                # is not to be trusted for short intervals
                t0 = vm.wait_for(WORK_MARK, timeout=timeout)
                t1 = vm.wait_for(re.compile(rb"cpu-work [\d.]+ [\d.]+\s"), timeout=timeout)
                res.cpu_seconds = t1 - t0
                vm.wait_for(DONE_MARK, timeout=timeout)
                res.cpu_guest_clock_seconds = parse_cpu_output(_console(vm))
            res.log_tail = _console(vm)[-2000:]
        return res
    except Exception as e:  # noqa: BLE001 - a boot that fails is reported, not raised
        return VMResult(False, f"the tiny VM did not boot: {e.__class__.__name__}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _console(vm) -> str:
    return vm.console


# --------------------------------------------------------------------------- sizes


def vm_disk_image(client, image: str, kernel: Path | None = None, workdir: Path | None = None) -> dict:
    """Build a VM disk image holding the same userland as ``image`` (plus a kernel); its sizes.

    The image's file system is exported from a (never started) container, written into an ext4
    file system with ``mkfs.ext4 -d`` (no root, no mount), and converted to qcow2, the usual
    format of VM disks. A bootable VM would also need kernel modules and a boot loader, so the
    figures are a lower bound. Returns the sizes in bytes, or ``{"available": False, ...}``.
    """
    mkfs = shutil.which("mkfs.ext4") or ("/sbin/mkfs.ext4" if Path("/sbin/mkfs.ext4").exists() else None)
    qimg, tar = shutil.which("qemu-img"), shutil.which("tar")
    if not mkfs or not qimg or not tar:
        return {"available": False, "reason": "needs mkfs.ext4 (e2fsprogs), qemu-img (qemu-utils) and tar"}
    work = Path(workdir or tempfile.mkdtemp(prefix="dockercourse-disk-"))
    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    try:
        c = client.containers.create(
            image, ["true"], name=helper_name(client, "export"), labels={LABEL: "export"}, network_mode="none"
        )
        try:
            _export_into(c, tar, root, work)
        finally:
            c.remove(force=True)
        if kernel and Path(kernel).is_file():
            (root / "boot").mkdir(exist_ok=True)
            shutil.copy(kernel, root / "boot" / "vmlinuz")
        used = int(
            subprocess.run(
                ["du", "-sb", str(root)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        raw = work / "disk.raw"
        size_mb = int(used * 1.3 / 2**20) + 16  # room for the file system's own metadata
        subprocess.run(
            [mkfs, "-q", "-F", "-d", str(root), "-L", "userland", str(raw), f"{size_mb}M"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        qcow = work / "disk.qcow2"
        subprocess.run(
            [qimg, "convert", "-O", "qcow2", str(raw), str(qcow)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        return {
            "available": True,
            "image": image,
            "files_bytes": used,
            "raw_bytes": raw.stat().st_size,
            "raw_allocated_bytes": raw.stat().st_blocks * 512,
            "qcow2_bytes": qcow.stat().st_size,
            "with_kernel": bool(kernel),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_into(container, tar: str, root: Path, work: Path) -> None:
    """``docker export CONTAINER | tar -x -C ROOT``: the engine's tar stream unpacked as it arrives, by
    GNU tar (Debian's 77 MB image: 1.5 s, where writing the archive and unpacking it with Python's
    tarfile took 2.5 s)."""
    with open(work / "tar.err", "w+b") as err:  # a file: a pipe could fill up and stop tar
        p = subprocess.Popen([tar, "-x", "-f", "-", "-C", str(root)], stdin=subprocess.PIPE, stderr=err)
        try:
            for chunk in container.export():
                p.stdin.write(chunk)
        except BrokenPipeError:
            pass  # tar ended early: its status and message say why
        finally:
            p.stdin.close()
            p.wait()
        if p.returncode:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip()[:300]
            raise RuntimeError(f"unpacking the image's files with tar failed: {msg}")


def accel_note(accel: str) -> str:
    """One line saying what the accelerator means for the numbers."""
    if accel == "kvm":
        return "KVM: the guest runs on the CPU directly (hardware-assisted virtualization)."
    if accel == "tcg":
        return (
            "TCG: no usable KVM here, so qemu emulated every guest instruction; boot and CPU figures "
            "are for an emulated VM and much slower than a KVM guest would be."
        )
    return "no VM was booted."
