"""The supervisor of a course-started dockerd, and the record (``engine.json``) of what runs.

``python -m dockercourse.engines.supervisor --supervise RECORD`` runs :func:`supervise`: it starts
dockerd, restarts it when it dies (at most :data:`MAX_RESTARTS` times in
:data:`RESTART_WINDOW` seconds) and stops it on SIGTERM. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dockercourse.engines.procs import alive, cmdline, read_pid
from dockercourse.engines.specs import MAX_RESTARTS, RESTART_WINDOW, run_dir


def record_path() -> Path:
    return run_dir() / "engine.json"


def read_record() -> dict | None:
    """What ``engine-up`` started and how (``engine.json``), when its supervisor still runs."""
    try:
        rec = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None
    pid = rec.get("supervisor_pid")
    if not pid or not alive(pid) or "--supervise" not in cmdline(pid):
        return None
    return rec


def stale_record() -> dict | None:
    try:
        return json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None


def supervise(record_file: str) -> int:
    """Run dockerd and restart it when it dies; stop it on SIGTERM. The ``--supervise`` mode."""
    rec = json.loads(Path(record_file).read_text())
    stopping = False
    child: subprocess.Popen | None = None

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    restarts: list[float] = []
    with open(rec["log"], "ab", buffering=0) as logf:

        def note(msg: str) -> None:
            logf.write(f"engine-up supervisor {time.strftime('%FT%T')}: {msg}\n".encode())

        while True:
            for pf in (Path(rec["pidfile"]), Path(rec["exec_root"]) / "containerd" / "containerd.pid"):
                if pf.exists():
                    pid = read_pid(pf)
                    if pid is None or not alive(pid):
                        pf.unlink(missing_ok=True)
            child = subprocess.Popen(
                rec["argv"], env=rec["env"], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT
            )
            try:
                cur = json.loads(Path(record_file).read_text())
            except (OSError, ValueError):
                cur = rec
            cur.update(dockerd_pid=child.pid, supervisor_pid=os.getpid())
            tmp = Path(record_file + ".tmp")
            tmp.write_text(json.dumps(cur, indent=1))
            os.replace(tmp, record_file)
            while True:
                try:
                    rc = child.wait()
                    break
                except InterruptedError:
                    continue
            if stopping:
                note(f"dockerd stopped (exit status {rc})")
                break
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            if len(restarts) > MAX_RESTARTS:
                note(
                    f"dockerd exited with status {rc}; {MAX_RESTARTS} restarts in {RESTART_WINDOW:.0f} s, "
                    "giving up (run scripts/engine-up again)"
                )
                break
            note(f"dockerd exited with status {rc}; restarting it")
            time.sleep(1)
            if stopping:
                break
    return 0


def start_supervisor(rec: dict) -> dict:
    """Write the record, start the supervisor (its own session) and return the record with its pids.

    ``rec`` has at least ``argv``, ``env``, ``log``, ``pidfile``, ``exec_root`` and ``title``.
    """
    rd = run_dir()
    rd.mkdir(parents=True, exist_ok=True)
    Path(rec["exec_root"]).mkdir(parents=True, exist_ok=True)
    rec = {**rec, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "how": "scripts/engine-up (supervised)"}
    record_path().write_text(json.dumps(rec, indent=1))
    with open(rec["log"], "ab") as lg:
        lg.write(
            f"\n==== engine-up {time.strftime('%FT%T')}: starting {rec['title']}: "
            f"{' '.join(rec['argv'])}\n".encode()
        )
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the dockercourse package
    env = {
        **os.environ,
        "PYTHONPATH": src + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
    }
    sup = subprocess.Popen(
        [sys.executable, "-m", "dockercourse.engines.supervisor", "--supervise", str(record_path())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
        env=env,
    )
    # the supervisor adds its own pid and dockerd's to the record
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            cur = json.loads(record_path().read_text())
            if cur.get("supervisor_pid") == sup.pid and cur.get("dockerd_pid"):
                rec = cur
                break
        except (OSError, ValueError):
            pass
        if sup.poll() is not None:
            break
        time.sleep(0.05)
    rec["supervisor_pid"] = sup.pid
    (rd / "supervisor.pid").write_text(f"{sup.pid}\n")
    return rec


def update_record(**kw) -> None:
    try:
        cur = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return
    cur.update(kw)
    tmp = record_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(cur, indent=1))
    os.replace(tmp, record_path())


if __name__ == "__main__":
    if sys.argv[1:2] != ["--supervise"] or len(sys.argv) != 3:
        print("usage: python -m dockercourse.engines.supervisor --supervise RECORD", file=sys.stderr)
        sys.exit(2)
    sys.exit(supervise(sys.argv[2]))
