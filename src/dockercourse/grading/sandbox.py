"""Grading behind a boundary: each submission gets a throwaway unprivileged user, and (tier
``rootless``) a rootless Docker engine of that user's own.

Why: a submission is code. Graded with the host's engine it could bind-mount ``/``, start a
privileged container or remove every container on the machine; graded in a kernel that runs
as the grader (root), it could simply ``open("/etc/shadow")``. So, when the grader is root:

* every submission gets a system user ``dcg-<hex>`` with a home under
  ``/var/lib/dockercourse/sandbox/<user>/`` and subordinate ids of its own
  (``/etc/subuid``, ``/etc/subgid``); its notebook kernel runs as that user;
* tier ``rootless`` starts ``dockerd-rootless.sh`` (rootlesskit + slirp4netns, the course's
  Docker 28.5 packages or the system's) as that user, with the data root in its home and
  the socket in its private run folder; the worker's ``DOCKER_HOST`` points at it meanwhile. A
  container's root is the throwaway user on the host: a bind mount of ``/`` reads what any
  unprivileged user may read, and the host's engine socket (``root:docker``, mode 660) is out
  of reach, as are other workers' engines (each socket is in a folder of mode 700);
* tier ``vm`` keeps one qemu engine per worker (:mod:`dockercourse.vm.engine`: a boot costs
  tens of seconds without KVM) and adds the kernel's user per submission.

Images come through the host's course mirror (``10.0.2.2:PORT`` is the host's loopback seen from
slirp4netns, as in the VM), else are copied from the host's engine.

When the submission is graded, everything goes: the engine (and whatever runs as the user or
in its subordinate ids), its data, the files the user left in /tmp, the ``/dev/net/tun`` ACL
entry (only where that device is not open to all users, as it is on a stock Debian), the user.
A worker that was killed leaves the folder with its pid: the end of the batch, or the next
grading run (:func:`reap_stale`), removes what it left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from dockercourse.errors import CourseError
from dockercourse.grading.kernelpy import kernel_python
from dockercourse.grading.rootless import (
    APT_PACKAGES,
    ensure_rootless_binaries,
    rootless_limits,
    rootless_missing,
    start_rootless,
    start_with_images,
)
from dockercourse.grading.users import (
    SUBID_BASE,
    SUBID_COUNT,
    SUBID_SLOTS,
    TUN,
    USER_PREFIX,
    Identity,
    _pids_of,
    create_user,
    free_subid,
    parse_subids,
    reap_stale,
    remove_user,
    state_root,
)

__all__ = [
    "APT_PACKAGES",
    "SUBID_BASE",
    "SUBID_COUNT",
    "SUBID_SLOTS",
    "TUN",
    "USER_PREFIX",
    "BoundaryError",
    "Identity",
    "_pids_of",
    "boundary",
    "create_user",
    "current",
    "ensure_rootless_binaries",
    "free_subid",
    "kernel_manager_class",
    "kernel_python",
    "parse_subids",
    "reap_stale",
    "remove_user",
    "rootless_limits",
    "rootless_missing",
    "start_rootless",
    "state_root",
    "worker_init",
]

log = logging.getLogger(__name__)

#: this worker process's tier, the chapter's images and the Python its kernels run
#: (:func:`worker_init`); what went wrong booting its VM; the user of the submission being graded
_tier: str | None = None
_images: list[str] = []
_python: str | None = None
init_error: str | None = None
_current: Identity | None = None


def current() -> Identity | None:
    return _current


# --------------------------------------------------------------------------- a worker's life


def worker_init(tier: str, images: list[str], vm_args: tuple = (), python: str | None = None) -> None:
    """``ProcessPoolExecutor`` initializer of an isolated tier: remember the tier, the chapter's
    images and the kernels' Python; boot the worker's VM (``vm``). A VM that does not boot is kept in
    :data:`init_error`: every submission this worker takes is then a grader error saying so (never
    graded on another engine). The rootless engine is made per submission, see :func:`boundary`."""
    global _tier, _images, _python, init_error
    _tier, _images, _python = tier, list(images), python
    if tier == "vm":
        try:
            from dockercourse.vm import engine as vm

            vm.worker_init(*vm_args)
        except Exception as e:  # reported with each submission of this worker, see worker_task
            init_error = f"{e.__class__.__name__}: {e}"
            log.warning("grading worker could not start its VM engine: %s", init_error)


class BoundaryError(CourseError):
    """A submission's user or engine could not be made: the submission is not graded (grader error)."""


@contextlib.contextmanager
def boundary():
    """One submission's boundary, in an isolated tier's worker (else nothing): a throwaway user that
    its kernel runs as (when the grader is root) and, tier ``rootless``, a fresh rootless engine of
    that user's with the chapter's images, which ``DOCKER_HOST`` names meanwhile. Everything of it
    is removed afterwards, so nothing one submission did (a container left running, an image
    re-tagged, a process in the background) can reach the next one graded by the same worker."""
    global _current
    if _tier is None:
        yield
        return
    from dockercourse.grading import namespaces

    saved = os.environ.get("DOCKER_HOST")
    ident = None
    try:
        try:
            if os.geteuid() == 0:
                ident = _current = create_user(subids=_tier == "rootless")
            if _tier == "rootless":
                if ident is None:
                    raise CourseError("the rootless tier needs root (a throwaway user per submission)")
                os.environ["DOCKER_HOST"] = _rootless_with_images(ident)
            namespaces.reset_client()
        except Exception as e:
            raise BoundaryError(f"{e.__class__.__name__}: {e}") from e
        yield
    finally:
        _current = None
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved
        namespaces.reset_client()
        if ident is not None:
            problems = remove_user(ident)
            if problems:
                log.warning("cleaning up grading user %s: %s", ident.name, "; ".join(problems))


def _rootless_with_images(ident: Identity) -> str:
    """Start ``ident``'s rootless engine and put the chapter's images in it; its ``DOCKER_HOST``."""
    return start_with_images(ident, _images)


def kernel_manager_class(ident: Identity):
    """A jupyter_client kernel manager whose connection file the user's kernel can read."""
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)
            if _python and cmd and Path(cmd[0]).name.startswith("python"):
                cmd = [_python, *cmd[1:]]  # a Python the user can run (see kernel_python)
            return cmd

        def write_connection_file(self, **kw) -> None:
            if not self.connection_file or Path(self.connection_file).parent != ident.home:
                self.connection_file = str(ident.home / f"kernel-{secrets.token_hex(6)}.json")
            super().write_connection_file(**kw)
            os.chown(self.connection_file, ident.uid, ident.gid)

    return SandboxKernelManager
