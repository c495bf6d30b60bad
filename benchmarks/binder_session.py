"""A Binder session, simulated on this machine as faithfully as it allows, with its figures.

    sudo .venv/bin/python benchmarks/binder_session.py                # guests of 768 and 512 MB
    sudo .venv/bin/python benchmarks/binder_session.py --memory 768 --keep

What mybinder.org does, and what this script does in its place:

- repo2docker copies the repository into the user's home: a copy of this checkout in a new user's home;
- `binder/apt.txt` is installed as root: the same packages, with `apt-get install`, as root;
- `binder/environment.yml` (conda) for the user: a venv with the toolkit's dependencies from PyPI;
- `binder/postBuild` as the user (no root, no Docker): the same script, as that user;
- `binder/start`, then JupyterLab, in 2 GB, ~1 CPU, no KVM: the same script, then chapters 02 and 07
  under strict nbval, qemu forced to TCG.

The user is an ordinary one made for this run (`dcbinder`): no sudo, no `docker` group, no subordinate
ids, so it reaches no engine of this machine. No course mirror either (`DOCKERCOURSE_MIRROR_PORT=0`), and
the VM's disk is seeded by the image kit (`binder/postBuild` sets `DOCKERCOURSE_VM_SEED=kit`): nothing
is pulled from any registry. What cannot be simulated: Binder's build runs in a container (here the
user's processes run on the host), and its 2 GB is a cgroup limit (here it is measured, not enforced).

Figures: the build's seconds (postBuild: kernel, disk, the course images built in the VM), the image's
parts (the qcow2 disk, the user's caches), and per guest size: seconds to the engine answering,
each chapter's strict nbval (pass/fail, seconds), qemu's RSS and the user's processes' PSS at their peak
(sampled each second) and after each chapter. The user and everything it made are removed at the end
(`--keep` leaves them, so a second run skips the build: postBuild finds the disk in its cache).
Needs root, network access to PyPI and Debian's archive, about 3 GB of disk and 30-60 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER = "dcbinder"
CHAPTERS = ("02_core_concepts", "07_ports_and_links")


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def make_user() -> pwd.struct_passwd:
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        # no subordinate ids (useradd gives new users a range by default): Binder gives none
        sh(["useradd", "-m", "-s", "/bin/bash", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", USER])
        pw = pwd.getpwnam(USER)
    for f in ("/etc/subuid", "/etc/subgid"):
        if any(line.startswith(f"{USER}:") for line in Path(f).read_text().splitlines()):
            sys.exit(f"{USER} has subordinate ids in {f}: this run must not (Binder gives none)")
    return pw


def remove_user(pw) -> None:
    subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
    time.sleep(1)
    subprocess.run(["userdel", "--remove", USER], capture_output=True)
    shutil.rmtree(pw.pw_dir, ignore_errors=True)


def as_user(pw, script: str, env: dict, log: Path, timeout: float) -> tuple[int, float]:
    """Run ``script`` (bash) as the user, with only ``env``; (exit status, seconds)."""
    t0 = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {script}\n")
        out.flush()
        p = subprocess.run(
            [
                "runuser",
                "-u",
                USER,
                "--",
                "env",
                "-i",
                *[f"{k}={v}" for k, v in env.items()],
                "bash",
                "-c",
                script,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            cwd=pw.pw_dir,
        )
    return p.returncode, time.monotonic() - t0


def copy_checkout(pw) -> Path:
    repo = Path(pw.pw_dir) / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            dst = repo / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    sh(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(repo)])
    return repo


def apt_packages() -> list[str]:
    lines = (ROOT / "binder" / "apt.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


class Sampler:
    """The peak, each second, of qemu's RSS and of the PSS of every process of the user."""

    def __init__(self, uid: int):
        self.uid, self.peak_qemu, self.peak_all, self._stop = uid, 0.0, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def now(self) -> tuple[float, float]:
        qemu = total = 0
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if p.stat().st_uid != self.uid:
                    continue
                roll = (p / "smaps_rollup").read_text()
                total += int(roll.split("Pss:", 1)[1].split()[0])
                if (p / "comm").read_text().startswith("qemu-system"):
                    qemu += int(roll.split("Rss:", 1)[1].split()[0])
            except (OSError, IndexError):
                continue
        return qemu / 1024, total / 1024

    def _run(self) -> None:
        while not self._stop.wait(1):
            q, a = self.now()
            self.peak_qemu, self.peak_all = max(self.peak_qemu, q), max(self.peak_all, a)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def du_mb(path: Path) -> float:
    r = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return float(r.stdout.split()[0]) if r.returncode == 0 and r.stdout else 0.0


def session(pw, repo: Path, env: dict, memory: int, log: Path) -> dict:
    """`binder/start` with a guest of ``memory`` MB, then the chapters under strict nbval."""
    res = {"memory_mb": memory, "chapters": {}}
    senv = {**env, "DOCKERCOURSE_VM_MEMORY": str(memory)}
    # binder/start boots the engine in the background and execs its arguments; the first chapter's
    # setup cell waits for the engine, as a learner's first notebook does
    sampler = Sampler(pw.pw_uid)
    cfg = repo / "tests" / "nbval_sanitize_binder.cfg"
    cfg.write_text(
        (repo / "tests/nbval_sanitize.cfg").read_text() + (repo / "tests/nbval_sanitize_vm.cfg").read_text()
    )
    try:
        wait = (
            "python -c 'import sys; from dockercourse.vm.state import wait_ready; "
            "sys.exit(not wait_ready())' && "
            "python -c 'import docker; docker.from_env().ping()'"
        )
        code, t = as_user(pw, f'cd {repo} && binder/start bash -c "{wait}"', senv, log, 900)
        res["engine_answering_s"] = round(t, 1)
        if code != 0:
            res["error"] = "the VM engine did not answer (see the log)"
            return res
        for ch in CHAPTERS:
            code, t = as_user(
                pw,
                f"cd {repo} && export DOCKERCOURSE_ENGINE=vm "
                "DOCKER_HOST=$(dockercourse engine vm status --json | "
                "python -c 'import json,sys; print(json.load(sys.stdin)[\"docker_host\"])') && "
                f"python -m pytest notebooks/{ch}.ipynb --nbval --nbval-current-env -p no:cacheprovider -q "
                f"--nbval-sanitize-with {cfg} --nbval-cell-timeout 600",
                senv,
                log,
                1800,
            )
            q, a = sampler.now()
            res["chapters"][ch] = {
                "pass": code == 0,
                "s": round(t, 1),
                "qemu_rss_mb": round(q),
                "user_pss_mb": round(a),
            }
    finally:
        as_user(pw, f"cd {repo} && dockercourse engine vm down", env, log, 120)
        sampler.stop()
        res["peak_qemu_rss_mb"], res["peak_user_pss_mb"] = round(sampler.peak_qemu), round(sampler.peak_all)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memory", type=int, action="append", help="guest MB (repeatable; default 768 and 512)")
    ap.add_argument("--keep", action="store_true", help="keep the user and its caches for the next run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit(
            "run as root: it makes a user, installs binder/apt.txt and runs everything else as that user"
        )
    out_dir = Path("/var/lib/dockercourse/binder-session")
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / f"session-{time.strftime('%Y%m%dT%H%M%S')}.log"
    print(f"binder: log in {log}")
    sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt_packages()], capture_output=True)
    pw = make_user()
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count()}
    try:
        repo = copy_checkout(pw)
        home = pw.pw_dir
        env = {
            "HOME": home,
            "USER": USER,
            "PATH": f"{home}/env/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "REPO_DIR": str(repo),
            "DOCKERCOURSE_MIRROR_PORT": "0",  # no course mirror on Binder
            "DOCKERCOURSE_VM_ACCEL": "tcg",  # no KVM on Binder
            "DOCKERCOURSE_PKGS": f"{home}/.cache/dockercourse",  # not root's packages: the user's own
        }
        code, t = as_user(
            pw,
            f"python3 -m venv {home}/env && {home}/env/bin/pip install -q '{repo}[lab,test]'",
            env,
            log,
            1200,
        )
        result["environment_s"] = round(t, 1)
        if code != 0:
            raise SystemExit(f"binder: the Python environment could not be made (see {log})")
        code, t = as_user(pw, f"cd {repo} && bash binder/postBuild", env, log, 3600)
        result["postBuild_s"], result["postBuild_ok"] = round(t, 1), code == 0
        if code != 0:
            raise SystemExit(f"binder: postBuild failed (see {log})")
        vmcache = Path(home) / ".cache/dockercourse/vm/engine"
        disks = sorted(vmcache.glob("system-*.qcow2"), key=lambda p: p.stat().st_mtime)
        result["disk_qcow2_mb"] = round(disks[-1].stat().st_size / 2**20) if disks else None
        result["user_caches_mb"] = du_mb(Path(home) / ".cache")
        result["sessions"] = [session(pw, repo, env, m, log) for m in (args.memory or [768, 512])]
    finally:
        if not args.keep:
            remove_user(pw)
    print(json.dumps(result, indent=1))
    (out_dir / "last.json").write_text(json.dumps(result, indent=1))
    ok = result.get("postBuild_ok") and all(
        c["pass"] for s in result.get("sessions", []) for c in s["chapters"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
