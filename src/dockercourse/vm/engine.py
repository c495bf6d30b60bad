"""A Docker engine inside a qemu VM, for machines where the course gets no engine and
no privileges (Binder), and for throwaway engines in isolated grading.

How it is made (all as an ordinary user, from the host's own packages):

* the kernel and its modules: :mod:`.kernel` (host's ``/boot`` or Debian's cloud kernel
  unpacked from its ``.deb``);
* a tiny initramfs (busybox + the modules, ``/init`` = ``guest/stage1.sh``) that mounts
  the system disk and ``switch_root``s into it (:mod:`.disk`);
* the system disk, an ext4 image written by ``mke2fs -d`` (no root, no loop device):
  busybox, the engine (Docker 28.5 from the course's Debian packages; the host's own
  binaries only when those cannot be fetched), the host's ``runc`` and
  ``iptables-legacy``, their libraries, and ``/var/lib/docker`` (:mod:`.disk`). The guest
  (``guest/stage2-docker.sh``) mounts cgroup v2 and runs ``dockerd`` with the containerd
  image store. It is *seeded* once (:mod:`.seed`): booted writable, the course images
  loaded into its engine (from the host's registry mirror, else the host's engine, else
  Docker Hub), then shut down cleanly. The disk, not RAM, holds the binaries and images,
  so the guest's memory stays small. :func:`build` (:mod:`.artifacts`) makes and caches it.
* every later boot uses that disk with ``snapshot=on``: writes go to a throwaway
  overlay, the seeded disk never changes, and any number of VMs can share it.

The engine's API is forwarded by qemu's user network to ``tcp://127.0.0.1:<free port>``
(loopback only); ports that containers publish are forwarded to the host's 127.0.0.1 at
the same port by a forwarder process (:mod:`.portfwd`) driving qemu's monitor. Inside
the guest the engine reaches the host's loopback as 10.0.2.2, which is how the host's
registry mirror serves pulls.

A second flavour, ``podman`` (:mod:`.podman`), boots the same kernel and initramfs on a
Debian trixie root file system (``mmdebstrap``) that runs Podman 5's Docker-compatible API.

API (this module; the state files are :mod:`.state`'s): :func:`up`, :func:`down`,
:func:`status`, :func:`vm_engine` (context manager), :func:`worker_init` (grading),
:func:`build` (artifacts only), :func:`reap_stale`, :func:`describe`, :func:`wait_ready`.
CLI: ``dockercourse engine vm up|down|status|build``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dockercourse.errors import BootError, CourseError
from dockercourse.vm import shares as vm_shares
from dockercourse.vm.artifacts import (
    DEFAULT_IMAGES,
    DEFAULT_MEMORY_MB,
    FLAVORS,
    Artifacts,
    build,
)
from dockercourse.vm.binaries import (
    APT_PACKAGES,
    ENGINE_PKGSET,
    PKG_BINARIES,
    daemon_config,
    engine_binaries,
    requirements,
)
from dockercourse.vm.boot import boot, free_port, kvm_usable
from dockercourse.vm.disk import DISK_SIZE_MB
from dockercourse.vm.seed import (
    GUEST_API_PORT,
    api_timeout,
    find_mirror_port,
    load_images,
    wait_api,
)
from dockercourse.vm.state import (
    PORTFWD_MODULE,
    VMEngine,
    cleanup_state,
    describe,
    find_by_docker_host,
    is_our_portfwd,
    is_our_qemu,
    named_dir,
    read_forwards,
    reap_stale,
    saved_pid,
    state_root,
    status,
    wait_ready,
    write_state,
)

#: this module's API: its own functions and the names it re-exports from the modules
#: that hold them now (:mod:`.artifacts`, :mod:`.disk`, :mod:`.seed`, :mod:`.state`)
__all__ = [
    "APT_PACKAGES",
    "DEFAULT_IMAGES",
    "DEFAULT_MEMORY_MB",
    "DISK_SIZE_MB",
    "ENGINE_PKGSET",
    "FLAVORS",
    "GUEST_API_PORT",
    "PKG_BINARIES",
    "PORTFWD_MODULE",
    "Artifacts",
    "VMEngine",
    "build",
    "daemon_config",
    "default_cpus",
    "describe",
    "down",
    "engine_binaries",
    "find_by_docker_host",
    "load_images",
    "read_forwards",
    "reap_stale",
    "requirements",
    "state_root",
    "status",
    "up",
    "vm_engine",
    "wait_ready",
    "worker_init",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- up


def default_cpus() -> int:
    """vCPUs: the host's count up to 2 (so the engine reports what a small host would)."""
    return max(1, min(2, os.cpu_count() or 1))


def _running(cur: dict, sd: Path, name: str, flavor: str, forward_ports: bool, log) -> VMEngine:
    """The VM engine ``name`` that already runs (its port forwarder restarted if it died)."""
    if cur.get("flavor", "docker") != flavor:
        raise CourseError(
            f"VM engine {name!r} runs the {cur.get('flavor', 'docker')} flavour; stop it first "
            f"(dockercourse engine vm down --name {name}) or choose another --name"
        )
    log(f"vm: engine {name!r} already running at {cur['docker_host']}")
    eng = VMEngine(**{k: v for k, v in cur.items() if k in VMEngine.__dataclass_fields__ and k[0] != "_"})
    if forward_ports and cur.get("monitor") and not cur.get("portfwd_running"):
        _start_portfwd(eng, sd, log)
        write_state(eng, sd, monitor=True)
    return eng


def up(
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    images=DEFAULT_IMAGES,
    name: str = "default",
    accel: str = "auto",
    port: int | None = None,
    cpus: int | None = None,
    log=print,
    state_dir: Path | None = None,
    rebuild: bool = False,
    die_with_parent: bool = False,
    forward_ports: bool = True,
    flavor: str = "docker",
    shares=(),
    tls: bool = False,
) -> VMEngine:
    """Boot a VM engine (building its artifacts on first use) and wait for its API.

    The VM outlives this process (``down(name)`` stops it); its state (pid, port) is in
    ``state_root()/name/state.json``. When one named ``name`` already runs, it is returned as it
    is (its port forwarder restarted if it died). ``forward_ports``: a forwarder process
    (:mod:`.portfwd`) makes the ports containers publish answer on the host's 127.0.0.1.
    ``flavor``: "docker" (Docker 28.5, cgroup v2, containerd image store) or "podman" (Podman 5's
    Docker-compatible API on a Debian trixie guest, :mod:`.podman`). ``shares``: host folders
    mounted in the guest at the same paths (:mod:`.shares`; none by default, the command line
    shares the temporary folder). ``tls``: the API answers only this user's client certificate
    (:mod:`.tls`; ``env()`` has what the ``docker`` command and docker-py need), for machines other
    people log in to. Returns a :class:`VMEngine` (``.docker_host``: ``tcp://127.0.0.1:<port>``).
    """
    sd = Path(state_dir) if state_dir else named_dir(name)
    cur = status(name=name, state_dir=sd)
    if cur is not None and cur.get("running"):
        return _running(cur, sd, name, flavor, forward_ports, log)
    cleanup_state(sd)
    reap_stale()
    if accel == "auto":
        accel = "kvm" if kvm_usable() else "tcg"
    art = build(images, rebuild=rebuild, log=log, accel=accel, memory_mb=memory_mb, flavor=flavor)
    sd.mkdir(parents=True, exist_ok=True)
    sd.chmod(0o700)  # the monitor socket and the overlay are this user's only
    port = port or free_port()
    cpus = cpus or default_cpus()
    shared = vm_shares.usable(shares, log)
    tls_dir = _tls_files(sd, flavor) if tls else None
    b, t_api = _boot_engine(
        art, sd, port, cpus, accel, memory_mb, die_with_parent, forward_ports, log, shared, tls_dir
    )
    eng = VMEngine(
        docker_host=f"tcp://127.0.0.1:{port}",
        pid=b.proc.pid,
        port=port,
        state_dir=str(sd),
        accel=accel,
        memory_mb=memory_mb,
        boot_seconds=round(t_api, 2),
        name=name,
        images=list(art.images),
        started=time.time(),
        flavor=flavor,
        engine=art.engine.get("title", ""),
        shares=[str(p) for p in shared if f"dockercourse: shared {p}" in b.console],
        tls_dir=str(tls_dir or ""),
        _boot=b,
    )
    try:
        if forward_ports:
            _start_portfwd(eng, sd, log)
        write_state(eng, sd, monitor=forward_ports)
    except BaseException:
        _stop_portfwd(sd, eng.portfwd_pid, eng._portfwd)
        b.close()
        shutil.rmtree(sd, ignore_errors=True)
        raise
    log(f"vm: engine ready in {t_api:.1f} s at {eng.docker_host}")
    return eng


def _boot_engine(
    art,
    sd: Path,
    port: int,
    cpus: int,
    accel: str,
    memory_mb: int,
    die_with_parent: bool,
    forward_ports: bool,
    log,
    shared=(),
    tls_dir: Path | None = None,
):
    """Boot the VM of ``art`` (its disk behind a throwaway overlay) and wait for its API:
    (the :class:`Boot`, seconds to the API). A failure leaves neither qemu nor ``sd``."""
    mirror = find_mirror_port()
    append = "quiet" + (f" dc.mirror={mirror}" if mirror else "") + vm_shares.cmdline(list(shared))
    extra = vm_shares.qemu_args(list(shared))
    if tls_dir:
        tls_qemu, tls_cmdline = vm_shares.tls_args(sd / "tls-guest")
        extra, append = extra + tls_qemu, append + tls_cmdline
    log(
        f"vm: booting {art.engine.get('title') or art.flavor} "
        f"({accel.upper()}{', emulated' if accel == 'tcg' else ''}, {memory_mb} MB) ..."
    )
    disk = {"file": art.disk, "format": art.disk_format, "if": "virtio", "snapshot": "on", "cache": "unsafe"}
    for attempt in (1, 2):
        b = boot(
            art.kernel, art.initrd, append, memory_mb, accel=accel, hostfwd=[(port, GUEST_API_PORT)],
            drives=[disk], cpus=cpus, workdir=sd, die_with_parent=die_with_parent, monitor=forward_ports,
            extra_args=extra,
        )  # fmt: skip
        try:
            t_api = wait_api(b, port, timeout=api_timeout(accel), tls_dir=tls_dir)
            for line in b.console.splitlines():
                if line.startswith("dockercourse: cannot share "):
                    log("vm: " + line[len("dockercourse: ") :])
            return b, t_api
        except BootError:
            b.close()
            # under TCG with two vCPUs the guest's kernel now and then panics early in its boot (a fault
            # in sched_clock_cpu; once in about 45 boots here on 2026-12-06): boot once more
            if attempt == 1 and "Kernel panic" in b.console and accel == "tcg":
                log("vm: the guest's kernel panicked while booting (emulated CPUs); booting it again")
                continue
            shutil.rmtree(sd, ignore_errors=True)
            raise
        except BaseException:
            b.close()
            shutil.rmtree(sd, ignore_errors=True)
            raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _tls_files(sd: Path, flavor: str) -> Path:
    """Fresh certificates for the engine of ``sd`` (:mod:`.tls`); the client's folder."""
    if flavor != "docker":
        raise CourseError(f"the {flavor} flavour has no TLS on its API: use the docker flavour")
    from dockercourse.vm import tls as vm_tls

    return vm_tls.make(sd)[0]


# --------------------------------------------------------------------------- published ports


def _start_portfwd(eng: VMEngine, sd: Path, log) -> None:
    """Start the forwarder of published ports (a process of its own: it outlives ``up``
    run from the CLI, and exits when qemu does)."""
    src = str(Path(__file__).resolve().parents[2])  # where the dockercourse package is
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(sd / "portfwd.log", "ab") as flog:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                PORTFWD_MODULE,
                "--state-dir",
                str(sd),
                "--qemu-pid",
                str(eng.pid),
                "--api-port",
                str(eng.port),
                *(["--tls-dir", eng.tls_dir] if eng.tls_dir else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=flog,
            stderr=flog,
            env=env,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    eng.portfwd_pid = proc.pid
    eng._portfwd = proc
    log(f"vm: published ports of containers are forwarded to 127.0.0.1 (forwarder pid {proc.pid})")


def _reaped(pid: int) -> bool:
    """Reap ``pid`` when it is our child and has exited; True then."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # not our child: the caller watches /proc instead
        return False


def _stop_portfwd(sd: Path, pid: int = 0, proc: subprocess.Popen | None = None) -> None:
    """Stop the forwarder of ``sd`` (its pid from state.json unless given)."""
    pid = pid or saved_pid(sd, "portfwd_pid")
    if pid and is_our_portfwd(pid, sd):
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and is_our_portfwd(pid, sd):
            if proc is not None and proc.poll() is not None:
                break
            if _reaped(pid):
                break
            time.sleep(0.05)
        else:
            if is_our_portfwd(pid, sd):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    if proc is not None:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            logger.warning("the port forwarder (pid %s) did not exit within 5 s of SIGKILL", proc.pid)


# --------------------------------------------------------------------------- down


def down(*, name: str = "default", state_dir: Path | None = None, log=print) -> bool:
    """Stop VM engine ``name`` (kill qemu, remove its state and overlay). True if one ran."""
    sd = Path(state_dir) if state_dir else named_dir(name)
    st = status(name=name, state_dir=sd)
    ran = False
    if st is not None and st["running"]:
        pid = int(st["pid"])
        ran = True
        _stop_portfwd(sd)
        _stop_pid(pid, sd)
        log(f"vm: engine {name!r} stopped (pid {pid})")
    elif st is None and not sd.exists():
        log(f"vm: no engine {name!r} runs")
    cleanup_state(sd)
    return ran


def _stop_pid(pid: int, sd: Path) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not is_our_qemu(pid, sd):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # reap it when it is our child (vm_engine); else just watch it go away
            if _reaped(pid):
                return
            if not Path(f"/proc/{pid}").exists() or not is_our_qemu(pid, sd):
                return
            time.sleep(0.05)


# --------------------------------------------------------------------------- throwaway engines


@contextlib.contextmanager
def vm_engine(
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    images=DEFAULT_IMAGES,
    accel: str = "auto",
    cpus: int | None = None,
    log=print,
    forward_ports: bool = True,
    flavor: str = "docker",
    tls: bool = False,
    shares=(),
):
    """A throwaway VM engine: booted on entry, destroyed (qemu, overlay, state) on exit.

    Yields a :class:`VMEngine`; use ``env.docker_host`` (for ``DOCKER_HOST``) or
    ``env.client()``. Each call gets its own VM and port, so parallel grading workers are
    isolated from each other and from the host's engine. The seeded system disk is
    shared read-only (built once, on first use). Ports its containers publish answer on
    the host's 127.0.0.1 (``forward_ports``; see :mod:`.portfwd`)::

        with vm_engine(images=["busybox:1.35.0"]) as env:
            subprocess.run([...], env={**os.environ, "DOCKER_HOST": env.docker_host})
    """
    name = f"w-{uuid.uuid4().hex[:10]}"
    sd = state_root() / name
    eng = up(
        memory_mb=memory_mb,
        images=images,
        name=name,
        accel=accel,
        cpus=cpus,
        log=log,
        state_dir=sd,
        die_with_parent=True,
        forward_ports=forward_ports,
        flavor=flavor,
        tls=tls,
        shares=shares,
    )
    try:
        yield eng
    finally:
        _stop_portfwd(sd, eng.portfwd_pid, eng._portfwd)
        if eng._boot is not None:
            eng._boot.close(grace=2)
        _stop_pid(eng.pid, sd)
        cleanup_state(sd)


def worker_init(
    images=DEFAULT_IMAGES, memory_mb: int = DEFAULT_MEMORY_MB, accel: str = "auto", log=None
) -> VMEngine:
    """Give this process its own throwaway VM engine until it exits.

    For a ``ProcessPoolExecutor(initializer=worker_init, initargs=(...))``: boots a VM,
    sets ``os.environ["DOCKER_HOST"]`` (so ``connect()`` and the notebook kernels this
    worker starts use it), and stops the VM when the worker process ends normally
    (a ``multiprocessing`` finalizer; atexit does not run in pool workers). If the worker
    is killed, qemu dies with it (``PR_SET_PDEATHSIG``) and the next ``up``/``reap_stale``
    removes its state directory.
    """
    import multiprocessing.util

    name = f"w-{uuid.uuid4().hex[:10]}"
    sd = state_root() / name
    eng = up(
        memory_mb=memory_mb,
        images=images,
        name=name,
        accel=accel,
        state_dir=sd,
        log=log or (lambda *_: None),
        die_with_parent=True,
    )
    os.environ["DOCKER_HOST"] = eng.docker_host
    multiprocessing.util.Finalize(
        None, _finish_worker, args=(eng.pid, str(sd), eng.portfwd_pid), exitpriority=100
    )
    return eng


def _finish_worker(pid: int, sd: str, portfwd_pid: int = 0) -> None:
    _stop_portfwd(Path(sd), portfwd_pid)
    _stop_pid(pid, Path(sd))
    cleanup_state(Path(sd))
