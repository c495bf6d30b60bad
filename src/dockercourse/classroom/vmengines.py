"""The classroom's other engine: a VM per student (``classroom up --engine vm``).

Each student's server starts a VM engine of the student's own (:mod:`dockercourse.vm`): qemu runs as
the student, KVM when the student may open ``/dev/kvm``, TCG (emulated, slower) otherwise. The guest
has its own kernel, so a student's containers share nothing with the host's or another student's
(the rootless engines share the host's kernel, and on a cgroup v1 host enforce no limits).

* **One disk for the class.** ``classroom up`` builds the VM's kernel, initramfs and seeded system disk
  once, as root, into a system folder every student can read (``/var/lib/dockercourse/classroom-vm``);
  each VM opens that disk read-only with a throwaway overlay of its own (``snapshot=on``), so 30
  students do not build 30 disks. The course images are on it already.
* **Only the student reaches their engine.** qemu forwards the guest's API to a port on 127.0.0.1, which
  every local user can open, so the API is on mutual TLS (:mod:`dockercourse.vm.tls`): a fresh authority
  per boot, the client's key in the student's own run folder (mode 0700). Another student's client has no
  certificate the engine accepts.
* **It stops with the server.** The hub starts a keeper process as the student (:func:`main`, with a
  parent-death signal, as for the rootless engines); the keeper boots the VM with qemu tied to itself,
  prints the engine's environment, and waits. The server's stop (``post_stop_hook``) ends every process of
  the student, the keeper, qemu and the port forwarder among them; the keeper stops the VM on SIGTERM, and
  qemu dies with it if it is killed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from dockercourse.errors import CourseError

#: memory a student needs with a VM engine: the guest (768 MB), qemu's own (TCG's translation cache
#: included: about 800 MB in all, measured for Binder), the server and a kernel (docs/classroom.md)
STUDENT_MB = 1200
#: how long a boot may take before the server's start fails: many VMs booting at once under TCG
BOOT_TIMEOUT = 900.0
#: the VM's name in the student's state folder
NAME = "classroom"


def cache_dir() -> Path:
    """The class's shared VM artifacts (root's, readable by every student)."""
    from dockercourse.classroom import state_root

    return state_root().parent / "classroom-vm"


def state_dir(ident) -> Path:
    """The student's VM state (its certificates among it), in their private run folder (mode 700)."""
    return ident.dir / "run" / "vm"


def missing() -> list[str]:
    """What this machine lacks for a VM per student (empty: it can run)."""
    from dockercourse.vm import engine as vme

    return vme.requirements()


def prepare(images: list[str], memory_mb: int, log=print) -> str:
    """Build (once) the class's VM artifacts with ``images`` on the disk, readable by everyone; a line
    saying how the students' VMs will run (KVM, or emulated)."""
    from dockercourse.vm.boot import kvm_usable

    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    build = [sys.executable, "-m", "dockercourse.cli", "engine", "vm", "build", "--images", ",".join(images),
             "--memory", str(memory_mb)]  # fmt: skip
    log(f"classroom: the students' VM (kernel, initramfs, a disk with {len(images)} images; made once) ...")
    env = {**os.environ, "DOCKERCOURSE_VM_CACHE": str(d)}
    r = subprocess.run(build, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise CourseError("the students' VM could not be built: " + (r.stderr or r.stdout).strip()[-600:])
    for top, _dirs, files in os.walk(d):
        os.chmod(top, 0o755)
        for f in files:
            p = Path(top) / f
            if not p.is_symlink():
                p.chmod(0o644)
    if not kvm_usable():
        return "no usable /dev/kvm here: each student's VM is emulated (TCG): containers start in seconds"
    return "KVM here: students who may open /dev/kvm (group kvm) get it; the others' VMs are emulated (TCG)"


def environment(ident, memory_mb: int) -> dict[str, str]:
    """The keeper's environment: the student's, the class's artifacts, the VM's state in the student's
    private run folder."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(ident.home),
        "USER": ident.name,
        "LOGNAME": ident.name,
        "XDG_RUNTIME_DIR": str(ident.dir / "run"),
        "TMPDIR": "/tmp",
        "DOCKERCOURSE_VM_CACHE": str(cache_dir()),
        "DOCKERCOURSE_VM_STATE": str(state_dir(ident)),
        "DOCKERCOURSE_VM_MEMORY": str(memory_mb),
        **{k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "DOCKERCOURSE_MIRROR_PORT")},
    }


def start(ident, images: list[str], memory_mb: int, python: str) -> dict[str, str]:
    """Start student ``ident``'s VM engine (the keeper, as the student); its environment (``DOCKER_HOST``,
    ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) once it answers. Raises with the keeper's last lines."""
    from dockercourse.grading.rootless import _pdeathsig_fn
    from dockercourse.grading.users import _engines

    logf = ident.dir / "engine.log"
    with open(logf, "wb") as err:
        proc = subprocess.Popen(
            [python, "-m", "dockercourse.classroom.vmengines", "--images", ",".join(images)],
            env=environment(ident, memory_mb),
            cwd=str(ident.home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            preexec_fn=_pdeathsig_fn(),  # noqa: PLW1509 (the hub's starter thread: see hooks)
            **ident.popen_kwargs(),
        )
    _engines[ident.name] = proc
    ident.engine_pid = proc.pid
    ident.save()
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line:
                return json.loads(line)
        if proc.poll() is not None:
            break
    tail = logf.read_text(errors="replace").strip().splitlines()[-6:]
    raise CourseError(f"{ident.name}'s VM engine did not start: " + " | ".join(ln[-200:] for ln in tail))


def main(argv=None) -> int:
    """The keeper, run as the student: boot the VM (TLS, qemu tied to this process), print its environment
    as one JSON line, stop it on SIGTERM (or end when qemu does)."""
    import argparse

    from dockercourse import config
    from dockercourse.vm import engine as vme
    from dockercourse.vm import shares
    from dockercourse.vm.artifacts import DEFAULT_MEMORY_MB
    from dockercourse.vm.state import is_our_qemu

    p = argparse.ArgumentParser(prog="python -m dockercourse.classroom.vmengines")
    p.add_argument("--images", default="")
    a = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def stop(*_):
        vme.down(name=NAME, log=log)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    eng = vme.up(
        name=NAME,
        images=[i for i in a.images.split(",") if i],
        memory_mb=int(config.number("DOCKERCOURSE_VM_MEMORY") or DEFAULT_MEMORY_MB),
        die_with_parent=True,
        tls=True,
        shares=shares.configured(),
        log=log,
    )
    print(json.dumps(eng.env()), flush=True)
    while is_our_qemu(eng.pid, Path(eng.state_dir)):
        time.sleep(2)
    log("the VM stopped")
    return 1


if __name__ == "__main__":
    sys.exit(main())
