"""More rows for the variant table of ``test_check_variants.py``: ``EXTRA = {exercise_id: [(step, right)]}``
for 26 further exercises of chapters 01 to 08, in the same shape as ``VARIANTS``. Each exercise has at least
two right answers (one typed as a learner would in a terminal, through ``r.cli``, one with other valid options
or through docker-py) and at least two wrong answers a learner might plausibly give; every name is the
variant's namespaced one and every host folder lies under ``r.tmp``, so that the test's cleanup finds all of
it. A row noting "once accepted (fixed)" is a wrong answer a check used to pass.
"""

from __future__ import annotations

import secrets
import shlex
import statistics
import time
from pathlib import Path

from docker.types import Mount
from test_check_variants import _context, _free_port, _run_registry, _tar_of, _wait_registry, buildkit

from dockercourse.bench.containers import engine_time
from dockercourse.core.images import BUILDER, BUSYBOX, DEBIAN, NGINX, PYTHON, REGISTRY
from dockercourse.lessonkit.mounts import volume_name
from dockercourse.lessonkit.probe import http_get_bytes, udp_echo
from dockercourse.lessonkit.registry import follow, htpasswd_line, tar_files

MiB = 2**20
AUTHOR = "Student <student@example.com>"
PAGE = "<h1>Ports are open</h1>\n"

# the echo server of chapter 07, section 2
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
while True:
    data, sender = s.recvfrom(2048)
    s.sendto(b"echo: " + data, sender)
"""

# the same server bound to the container's own loopback (and saying when it listens)
UDP_ECHO_LOOPBACK = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 9999))
print("listening", flush=True)
while True:
    data, sender = s.recvfrom(2048)
    s.sendto(b"echo: " + data, sender)
"""

AUTH_ENV = {
    "REGISTRY_AUTH": "htpasswd",
    "REGISTRY_AUTH_HTPASSWD_REALM": "learners",
    "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd",
}
AUTH_ENV_CLI = " ".join(f"-e {k}={v}" for k, v in AUTH_ENV.items())

HEALTHY_HTTPD = f"""\
FROM {BUSYBOX}
COPY index.html /www/index.html
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""

TINY_C = '#include <stdio.h>\nint main(void) { puts("tiny and static"); return 0; }\n'


# --------------------------------------------------------------------------- helpers


def _wait_health(r, short: str, timeout: float = 30.0) -> None:
    """Until the container's health is settled (healthy or unhealthy) or it stopped."""
    c = r.client.containers.get(r.name(short))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.reload()
        health = (c.attrs["State"].get("Health") or {}).get("Status")
        if c.status != "running" or health in ("healthy", "unhealthy"):
            return
        time.sleep(0.5)


def _wait_log(r, short: str, text: str, timeout: float = 30.0) -> None:
    """Until the container's log holds ``text``."""
    c = r.client.containers.get(r.name(short))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text.encode() not in c.logs():
        time.sleep(0.3)


# --------------------------------------------------------------------------- 01.isolation


def isolation_cli(r):
    r.cli("run -d --name {n} --hostname island {img} sleep 3600", n=r.name("iso"), img=BUSYBOX)


def isolation_cli_short_h(r):  # -h and --name=
    r.cli("run -d -h island --name={n} {img} sleep 3600", n=r.name("iso"), img=BUSYBOX)


def isolation_py(r):
    r.client.containers.run(BUSYBOX, ["sleep", "3600"], name=r.name("iso"), hostname="island", detach=True)


def isolation_wrong_no_hostname(r):  # named, but its host name is left as the container ID
    r.cli("run -d --name {n} {img} sleep 3600", n=r.name("iso"), img=BUSYBOX)


def isolation_wrong_pid_host(r):  # the host's PID namespace: PID 1 is the host's init
    r.cli("run -d --name {n} --hostname island --pid host {img} sleep 3600", n=r.name("iso"), img=BUSYBOX)


def isolation_wrong_sh_is_pid1(r):  # sh stays PID 1 when a command follows sleep
    r.cli(
        "run -d --name {n} --hostname island {img} sh -c 'sleep 3600; echo done'",
        n=r.name("iso"),
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 01.memlimit


def memlimit_cli(r):
    r.cli("run -d --name {n} --memory 64m {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def memlimit_cli_bytes(r):  # -m with a plain byte count
    r.cli("run -d --name {n} -m {b} {img} sleep 3600", n=r.name("capped"), b=64 * MiB, img=BUSYBOX)


def memlimit_py(r):
    r.client.containers.run(BUSYBOX, ["sleep", "3600"], name=r.name("capped"), mem_limit="64m", detach=True)


def memlimit_wrong_decimal_mb(r):  # 64 MB, not 64 MiB
    r.cli("run -d --name {n} -m 64000000 {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def memlimit_wrong_reservation(r):  # a soft limit only: the cgroup has no hard limit
    r.cli("run -d --name {n} --memory-reservation 64m {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def memlimit_wrong_exited(r):  # no command: busybox's sh ends at once without a terminal
    r.cli("run -d --name {n} -m 64m {img}", n=r.name("capped"), img=BUSYBOX)


# --------------------------------------------------------------------------- 01.latency


def _lat_runs(r, image=BUSYBOX, cmd=("true",)) -> float:
    """lat-1 … lat-5 run to their end; the engine's median StartedAt - Created, in ms."""
    lats = []
    for i in range(1, 6):
        c = r.client.containers.run(image, list(cmd), name=r.name(f"lat-{i}"), detach=True)
        c.wait()
        c.reload()
        lats.append(engine_time(c.attrs["State"]["StartedAt"]) - engine_time(c.attrs["Created"]))
    return statistics.median(lats) * 1000


def _report(r, text) -> None:
    c = r.client.containers.run(
        BUSYBOX, ["sh", "-c", f"echo {text} > /result.txt"], name=r.name("report"), detach=True
    )
    c.wait()


def latency_cli(r):  # docker run, docker inspect -f, the median by hand
    lats = []
    for i in range(1, 6):
        n = r.name(f"lat-{i}")
        r.cli("run --name {n} {img} true", n=n, img=BUSYBOX)
        fmt = "'{{.Created}} {{.State.StartedAt}}'"
        created, started = r.cli("inspect --type container -f {fmt} {n}", fmt=fmt, n=n).split()
        lats.append(engine_time(started) - engine_time(created))
    ms = round(statistics.median(lats) * 1000)
    r.cli("run --name {n} {img} sh -c 'echo {ms} > /result.txt'", n=r.name("report"), img=BUSYBOX, ms=ms)


def latency_py(r):
    _report(r, round(_lat_runs(r)))


def latency_wrong_seconds(r):  # the median in seconds, not milliseconds
    _report(r, f"{_lat_runs(r) / 1000:.3f}")


def latency_wrong_debian(r):  # the right number, but of containers made from another image
    _report(r, round(_lat_runs(r, image=DEBIAN)))


def latency_wrong_sh_c_true(r):  # `sh -c true` is not the command `true`
    _report(r, round(_lat_runs(r, cmd=("sh", "-c", "true"))))


# --------------------------------------------------------------------------- 02.writable


def writable_cli(r):
    r.cli("run --name {n} {img} sh -c 'echo layers are neat > /notes.txt'", n=r.name("notes"), img=BUSYBOX)


def writable_cli_exec(r):  # written by exec into a running container: the same writable layer
    r.cli("run -d --name {n} {img} sleep 3600", n=r.name("notes"), img=BUSYBOX)
    r.cli("exec {n} sh -c 'echo layers are neat > /notes.txt'", n=r.name("notes"))


def writable_py(r):
    c = r.client.containers.run(
        BUSYBOX, ["sh", "-c", "echo layers are neat > /notes.txt"], name=r.name("notes"), detach=True
    )
    c.wait()


def writable_wrong_text(r):
    r.cli("run --name {n} {img} sh -c 'echo layers are cool > /notes.txt'", n=r.name("notes"), img=BUSYBOX)


def writable_wrong_path(r):  # /tmp/notes.txt, not /notes.txt
    r.cli(
        "run --name {n} {img} sh -c 'echo layers are neat > /tmp/notes.txt'", n=r.name("notes"), img=BUSYBOX
    )


def writable_wrong_baked_into_image(r):  # the file in an image layer, not in the container's own
    d = _context(r, "ctx", {"Dockerfile": f"FROM {BUSYBOX}\nRUN echo layers are neat > /notes.txt\n"})
    r.cli("build -q -t {t} {d}", t=r.name("notesimg") + ":1", d=d)
    r.cli("run --name {n} {t} true", n=r.name("notes"), t=r.name("notesimg") + ":1")


# --------------------------------------------------------------------------- 02.tag


def tag02_cli(r):
    r.cli("tag {img} {n}:v1", img=BUSYBOX, n=r.name("mybox"))


def tag02_cli_by_id(r):  # the image named by its short ID, as docker images shows it
    short_id = r.client.images.get(BUSYBOX).id.split(":", 1)[1][:12]
    r.cli("tag {i} {n}:v1", i=short_id, n=r.name("mybox"))


def tag02_py(r):
    r.client.images.get(BUSYBOX).tag(r.name("mybox"), "v1")


def tag02_wrong_latest(r):  # no tag given: it is :latest
    r.cli("tag {img} {n}", img=BUSYBOX, n=r.name("mybox"))


def tag02_wrong_commit(r):  # a copy with an ID of its own, not a second name
    r.cli("run --name {c} {img} true", c=r.name("box"), img=BUSYBOX)
    r.cli("commit {c} {n}:v1", c=r.name("box"), n=r.name("mybox"))


def tag02_wrong_image(r):
    r.cli("tag {img} {n}:v1", img=DEBIAN, n=r.name("mybox"))


# --------------------------------------------------------------------------- 03.tag


def tag03_cli(r):
    r.cli("tag {img} {n}:1.35", img=BUSYBOX, n=r.name("mybox"))
    r.cli("tag {img} {n}:stable", img=BUSYBOX, n=r.name("mybox"))


def tag03_cli_from_first_tag(r):  # the second name given to the first: still busybox's ID
    r.cli("tag {img} {n}:1.35", img=BUSYBOX, n=r.name("mybox"))
    r.cli("tag {n}:1.35 {n}:stable", n=r.name("mybox"))


def tag03_py(r):
    img = r.client.images.get(BUSYBOX)
    img.tag(r.name("mybox"), "1.35")
    img.tag(r.name("mybox"), "stable")


def tag03_wrong_one_tag(r):
    r.cli("tag {img} {n}:stable", img=BUSYBOX, n=r.name("mybox"))


def tag03_wrong_full_version(r):  # 1.35.0, the busybox tag, instead of 1.35
    r.cli("tag {img} {n}:1.35.0", img=BUSYBOX, n=r.name("mybox"))
    r.cli("tag {img} {n}:stable", img=BUSYBOX, n=r.name("mybox"))


def tag03_wrong_stable_other_image(r):
    r.cli("tag {img} {n}:1.35", img=BUSYBOX, n=r.name("mybox"))
    r.cli("tag {img} {n}:stable", img=DEBIAN, n=r.name("mybox"))


# --------------------------------------------------------------------------- 03.commit


def commit_cli(r):
    n = r.name("diary")
    r.cli("run --name {n} {img} sh -c 'echo dear diary > /diary.txt'", n=n, img=BUSYBOX)
    r.cli("commit -a {a} -m 'first entry' {n} {n}:v1", a=shlex.quote(AUTHOR), n=n)


def commit_cli_long_options_exec(r):  # written by exec into a running container; --author/--message
    n = r.name("diary")
    r.cli("run -d --name {n} {img} sleep 3600", n=n, img=BUSYBOX)
    r.cli("exec {n} sh -c 'echo dear diary > /diary.txt'", n=n)
    r.cli("commit --author {a} --message 'first entry' {n} {n}:v1", a=shlex.quote(AUTHOR), n=n)


def commit_py(r):
    c = r.client.containers.run(
        BUSYBOX, ["sh", "-c", "echo dear diary > /diary.txt"], name=r.name("diary"), detach=True
    )
    c.wait()
    c.commit(repository=r.name("diary"), tag="v1", author=AUTHOR, message="first entry")


def commit_wrong_no_author(r):
    n = r.name("diary")
    r.cli("run --name {n} {img} sh -c 'echo dear diary > /diary.txt'", n=n, img=BUSYBOX)
    r.cli("commit -m 'first entry' {n} {n}:v1", n=n)


def commit_wrong_author_email_only(r):
    n = r.name("diary")
    r.cli("run --name {n} {img} sh -c 'echo dear diary > /diary.txt'", n=n, img=BUSYBOX)
    r.cli("commit -a student@example.com -m 'first entry' {n} {n}:v1", n=n)


def commit_wrong_other_container(r):  # the file written again in a second container, and that one committed
    n, other = r.name("diary"), r.name("diary-2")
    for c in (n, other):
        r.cli("run --name {c} {img} sh -c 'echo dear diary > /diary.txt'", c=c, img=BUSYBOX)
    r.cli("commit -a {a} -m 'first entry' {o} {n}:v1", a=shlex.quote(AUTHOR), o=other, n=n)


# --------------------------------------------------------------------------- 03.load


def _gift_tar(r) -> Path:
    """What section 9 leaves: gift.tar holding dc03…-gift:1.0, and no such image on the engine."""
    work = r.client.containers.run(
        BUSYBOX, ["sh", "-c", "echo thanks > /gift.txt"], name=r.name("work"), detach=True
    )
    work.wait()
    gift = work.commit(repository=r.name("gift"), tag="1.0", message="a gift from a colleague")
    path = r.tmp / "gift.tar"
    with open(path, "wb") as f:
        for chunk in gift.save(named=True):
            f.write(chunk)
    r.client.images.remove(r.name("gift") + ":1.0")
    return path


def load_cli(r):
    r.cli("load -i {p}", p=_gift_tar(r))


def load_cli_long_option(r):
    r.cli("load --input {p}", p=_gift_tar(r))


def load_py(r):
    with open(_gift_tar(r), "rb") as f:
        r.client.images.load(f.read())


def load_wrong_import(r):  # import makes a new image of the tar's files, not the saved image
    r.cli("import {p} {n}:1.0", p=_gift_tar(r), n=r.name("gift"))


def load_wrong_tag_busybox(r):
    _gift_tar(r)
    r.cli("tag {img} {n}:1.0", img=BUSYBOX, n=r.name("gift"))


def load_wrong_recommit(r):
    # the section-9 commit made again: same message, no load (the check once passed it; now it asks
    # the engine for a `load` event of that image)
    _gift_tar(r)
    r.cli("commit -m 'a gift from a colleague' {w} {n}:1.0", w=r.name("work"), n=r.name("gift"))


# --------------------------------------------------------------------------- 03.push


def push03_cli(r):
    port = _free_port()
    r.cli("run -d --name {n} -p 127.0.0.1:{port}:5000 {img}", n=r.name("registry"), port=port, img=REGISTRY)
    _wait_registry(port)
    ref = f"127.0.0.1:{port}/{r.name('mine')}:1.35.0"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


def push03_cli_localhost(r):  # the registry named localhost:PORT
    ref = f"localhost:{_run_registry(r, 'registry')}/{r.name('mine')}:1.35.0"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


def push03_py(r):
    repo = f"127.0.0.1:{_run_registry(r, 'registry')}/{r.name('mine')}"
    r.client.images.get(BUSYBOX).tag(repo, "1.35.0")
    follow(r.client.images.push(repo, "1.35.0", stream=True, decode=True))


def push03_wrong_tag_only(r):  # tagged for the registry, never pushed
    ref = f"127.0.0.1:{_run_registry(r, 'registry')}/{r.name('mine')}:1.35.0"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)


def push03_wrong_latest(r):  # tagged and pushed without a tag: :latest
    ref = f"127.0.0.1:{_run_registry(r, 'registry')}/{r.name('mine')}"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


def push03_wrong_image(r):
    # another image under the right name (the check once read only the tag list; now it compares the
    # registry's manifest with busybox)
    ref = f"127.0.0.1:{_run_registry(r, 'registry')}/{r.name('mine')}:1.35.0"
    r.cli("tag {img} {ref}", img=DEBIAN, ref=ref)
    r.cli("push {ref}", ref=ref)


# --------------------------------------------------------------------------- 04.capped


def capped_cli(r):
    r.cli("run -d --name {n} -m 64m --memory-swap 64m {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def capped_cli_update(r):  # the limits set later, on the running container
    r.cli("run -d --name {n} {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)
    r.cli("update --memory 64m --memory-swap 64m {n}", n=r.name("capped"))


def capped_py(r):
    r.client.containers.run(
        BUSYBOX, ["sleep", "3600"], name=r.name("capped"), detach=True, mem_limit="64m", memswap_limit="64m"
    )


def capped_wrong_no_swap(r):  # memory + swap left to the default (twice the memory)
    r.cli("run -d --name {n} -m 64m {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def capped_wrong_swap_zero(r):  # 0 means "not set", not "no swap"
    r.cli("run -d --name {n} -m 64m --memory-swap 0 {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def capped_wrong_swap_unlimited(r):  # -1: unlimited swap
    r.cli("run -d --name {n} -m 64m --memory-swap -1 {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


def capped_wrong_created_only(r):  # the right limits on a container that never runs
    r.cli("create --name {n} -m 64m --memory-swap 64m {img} sleep 3600", n=r.name("capped"), img=BUSYBOX)


# --------------------------------------------------------------------------- 04.renamed


def renamed_cli(r):
    r.cli("create --name {d} {img} sleep 3600", d=r.name("draft"), img=BUSYBOX)
    r.cli("rename {d} {f}", d=r.name("draft"), f=r.name("final"))
    r.cli("update --restart on-failure:3 {f}", f=r.name("final"))


def renamed_cli_policy_at_run(r):  # the policy given at run time, then renamed
    r.cli("run -d --name {d} --restart on-failure:3 {img} sleep 3600", d=r.name("draft"), img=BUSYBOX)
    r.cli("rename {d} {f}", d=r.name("draft"), f=r.name("final"))


def renamed_py(r):
    draft = r.client.containers.create(BUSYBOX, ["sleep", "3600"], name=r.name("draft"))
    draft.rename(r.name("final"))
    draft.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})


def renamed_wrong_recreated(r):  # draft removed and a new container made as final
    r.cli("create --name {d} {img} sleep 3600", d=r.name("draft"), img=BUSYBOX)
    r.cli("rm {d}", d=r.name("draft"))
    r.cli("create --name {f} --restart on-failure:3 {img} sleep 3600", f=r.name("final"), img=BUSYBOX)


def renamed_wrong_always(r):
    r.cli("create --name {d} {img} sleep 3600", d=r.name("draft"), img=BUSYBOX)
    r.cli("rename {d} {f}", d=r.name("draft"), f=r.name("final"))
    r.cli("update --restart always {f}", f=r.name("final"))


def renamed_wrong_no_retry_limit(r):  # on-failure without :3 retries for ever
    r.cli("create --name {d} {img} sleep 3600", d=r.name("draft"), img=BUSYBOX)
    r.cli("rename {d} {f}", d=r.name("draft"), f=r.name("final"))
    r.cli("update --restart on-failure {f}", f=r.name("final"))


# --------------------------------------------------------------------------- 05.registry

# Not covered (no variant: these tests publish on 127.0.0.1 only): _registry() in checks/05_registries.py
# accepts a registry published on 0.0.0.0 (`-p PORT:5000`, every interface), though the task asks for
# 127.0.0.1 and the check's own message says "publish it on 127.0.0.1"; 05.registry, 05.push and 05.auth
# all pass such a registry.


def registry_cli(r):
    port = _free_port()
    r.cli("volume create {v}", v=r.name("regdata"))
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 -v {v}:/var/lib/registry {img}",
        n=r.name("myreg"),
        port=port,
        v=r.name("regdata"),
        img=REGISTRY,
    )
    _wait_registry(port)


def registry_cli_mount(r):  # --mount, which makes the named volume itself
    port = _free_port()
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 "
        "--mount type=volume,source={v},target=/var/lib/registry {img}",
        n=r.name("myreg"),
        port=port,
        v=r.name("regdata"),
        img=REGISTRY,
    )
    _wait_registry(port)


def registry_py(r):
    r.client.volumes.create(r.name("regdata"))
    _run_registry(r, "myreg", volumes={r.name("regdata"): {"bind": "/var/lib/registry", "mode": "rw"}})


def registry_wrong_anonymous(r):  # the volume made, but an anonymous one mounted
    port = _free_port()
    r.cli("volume create {v}", v=r.name("regdata"))
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 -v /var/lib/registry {img}",
        n=r.name("myreg"),
        port=port,
        img=REGISTRY,
    )
    _wait_registry(port)


def registry_wrong_path(r):  # the named volume at /data: the registry stores elsewhere
    port = _free_port()
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 -v {v}:/data {img}",
        n=r.name("myreg"),
        port=port,
        v=r.name("regdata"),
        img=REGISTRY,
    )
    _wait_registry(port)


#: Wrong answers a check gives part of the points for (NotYet(credit=...)); every other wrong one gets 0.
PARTIAL = {
    "registry_wrong_anonymous": 0.5,  # the registry runs and answers; its storage is not the volume
    "registry_wrong_path": 0.5,
}


def registry_wrong_not_published(r):
    r.cli(
        "run -d --name {n} -v {v}:/var/lib/registry {img}",
        n=r.name("myreg"),
        v=r.name("regdata"),
        img=REGISTRY,
    )


# --------------------------------------------------------------------------- 05.push


def push05_cli(r):
    ref = f"127.0.0.1:{_run_registry(r, 'myreg')}/{r.name('mybox')}:v1"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


def push05_cli_port_lookup(r):  # the port asked of the engine: docker port
    _run_registry(r, "myreg")
    addr = r.cli("port {n} 5000", n=r.name("myreg")).splitlines()[0]  # 127.0.0.1:PORT
    ref = f"{addr}/{r.name('mybox')}:v1"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


def push05_py(r):  # the notebook's way: the port from the container's ports
    _run_registry(r, "myreg")
    port = r.client.containers.get(r.name("myreg")).ports["5000/tcp"][0]["HostPort"]
    repo = f"127.0.0.1:{port}/{r.name('mybox')}"
    r.client.images.get(BUSYBOX).tag(repo, "v1")
    follow(r.client.api.push(repo, "v1", stream=True, decode=True))


def push05_wrong_tag_only(r):
    ref = f"127.0.0.1:{_run_registry(r, 'myreg')}/{r.name('mybox')}:v1"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)


def push05_wrong_image(r):
    ref = f"127.0.0.1:{_run_registry(r, 'myreg')}/{r.name('mybox')}:v1"
    r.cli("tag {img} {ref}", img=DEBIAN, ref=ref)
    r.cli("push {ref}", ref=ref)


def push05_wrong_other_registry(r):  # pushed into another registry (the lesson's), not dc05…-myreg
    _run_registry(r, "myreg")
    ref = f"127.0.0.1:{_run_registry(r, 'registry')}/{r.name('mybox')}:v1"
    r.cli("tag {img} {ref}", img=BUSYBOX, ref=ref)
    r.cli("push {ref}", ref=ref)


# --------------------------------------------------------------------------- 05.auth


def _htpasswd_folder(r, text: str) -> Path:
    d = _context(r, "auth", {"htpasswd": text})
    d.chmod(0o755)
    (d / "htpasswd").chmod(0o644)
    return d


def _learner_line() -> str:
    return htpasswd_line("learner", secrets.token_urlsafe(16))  # a password made at run time


def auth_cli_bind(r):  # the registry docs' way: the htpasswd folder bind-mounted read-only
    port = _free_port()
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 {env} -v {d}:/auth:ro {img}",
        n=r.name("authreg"),
        port=port,
        env=AUTH_ENV_CLI,
        d=_htpasswd_folder(r, _learner_line()),
        img=REGISTRY,
    )
    _wait_registry(port)


def auth_cli_cp(r):  # create, copy the file in, start
    port, n = _free_port(), r.name("authreg")
    r.cli(
        "create --name {n} -p 127.0.0.1:{port}:5000 {env} {img}",
        n=n,
        port=port,
        env=AUTH_ENV_CLI,
        img=REGISTRY,
    )
    r.cli("cp {d} {n}:/auth", d=_htpasswd_folder(r, _learner_line()), n=n)
    r.cli("start {n}", n=n)
    _wait_registry(port)


def auth_py(r):
    port = _free_port()
    reg = r.client.containers.create(
        REGISTRY, name=r.name("authreg"), ports={"5000/tcp": ("127.0.0.1", port)}, environment=AUTH_ENV
    )
    reg.put_archive("/", tar_files({"auth/htpasswd": _learner_line()}))
    reg.start()
    _wait_registry(port)


def auth_wrong_no_auth(r):  # a plain registry: anonymous requests answered
    port = _free_port()
    r.cli("run -d --name {n} -p 127.0.0.1:{port}:5000 {img}", n=r.name("authreg"), port=port, img=REGISTRY)
    _wait_registry(port)


def auth_wrong_user_student(r):  # the lesson's user, not learner
    port = _free_port()
    reg = r.client.containers.create(
        REGISTRY, name=r.name("authreg"), ports={"5000/tcp": ("127.0.0.1", port)}, environment=AUTH_ENV
    )
    reg.put_archive("/", tar_files({"auth/htpasswd": htpasswd_line("student", secrets.token_urlsafe(16))}))
    reg.start()
    _wait_registry(port)


def auth_wrong_plain_password(r):  # the password written as it is, not bcrypt-hashed
    port = _free_port()
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:5000 {env} -v {d}:/auth:ro {img}",
        n=r.name("authreg"),
        port=port,
        env=AUTH_ENV_CLI,
        d=_htpasswd_folder(r, f"learner:{secrets.token_urlsafe(16)}\n"),
        img=REGISTRY,
    )
    _wait_registry(port)


def auth_wrong_not_started(r):  # created and given its file, never started
    n = r.name("authreg")
    r.cli(
        "create --name {n} -p 127.0.0.1:{port}:5000 {env} {img}",
        n=n,
        port=_free_port(),
        env=AUTH_ENV_CLI,
        img=REGISTRY,
    )
    r.cli("cp {d} {n}:/auth", d=_htpasswd_folder(r, _learner_line()), n=n)


# --------------------------------------------------------------------------- 06.volume


def volume_cli(r):
    r.cli("volume create -d local {v}", v=r.name("notes"))
    r.cli(
        "run --name {n} -v {v}:/notes {img} sh -c 'echo volumes keep data > /notes/todo.txt'",
        n=r.name("notes-writer"),
        v=r.name("notes"),
        img=BUSYBOX,
    )


def volume_cli_mount(r):  # no volume create: --mount makes the named (local) volume
    r.cli(
        "run --name {n} --mount source={v},target=/notes {img} "
        "sh -c 'echo volumes keep data > /notes/todo.txt'",
        n=r.name("notes-writer"),
        v=r.name("notes"),
        img=BUSYBOX,
    )


def volume_py(r):
    r.client.volumes.create(name=r.name("notes"), driver="local")
    r.client.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo volumes keep data > /notes/todo.txt"],
        volumes={r.name("notes"): {"bind": "/notes", "mode": "rw"}},
        name=r.name("notes-writer"),
    )


def volume_wrong_not_mounted(r):  # the volume made, the file written into the container's layer
    r.cli("volume create {v}", v=r.name("notes"))
    r.cli(
        "run --name {n} {img} sh -c 'mkdir -p /notes && echo volumes keep data > /notes/todo.txt'",
        n=r.name("notes-writer"),
        img=BUSYBOX,
    )


def volume_wrong_anonymous(r):
    r.cli("volume create {v}", v=r.name("notes"))
    r.cli(
        "run --name {n} -v /notes {img} sh -c 'echo volumes keep data > /notes/todo.txt'",
        n=r.name("notes-writer"),
        img=BUSYBOX,
    )


def volume_wrong_removed(r):  # --rm: the writer is gone
    r.cli(
        "run --rm --name {n} -v {v}:/notes {img} sh -c 'echo volumes keep data > /notes/todo.txt'",
        n=r.name("notes-writer"),
        v=r.name("notes"),
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 06.readonly


def _config_folder(r) -> Path:
    return _context(r, "config", {"app.ini": "mode = production\n"})


def readonly_cli(r):
    r.cli(
        "run -d --name {n} -v {d}:/config:ro {img} sleep 600",
        n=r.name("ro"),
        d=_config_folder(r),
        img=BUSYBOX,
    )


def readonly_cli_mount(r):
    r.cli(
        "run -d --name {n} --mount type=bind,source={d},target=/config,readonly {img} sleep 600",
        n=r.name("ro"),
        d=_config_folder(r),
        img=BUSYBOX,
    )


def readonly_py(r):
    r.client.containers.run(
        BUSYBOX,
        ["sleep", "600"],
        name=r.name("ro"),
        detach=True,
        volumes={str(_config_folder(r)): {"bind": "/config", "mode": "ro"}},
    )


def readonly_wrong_rw(r):  # :ro forgotten
    r.cli(
        "run -d --name {n} -v {d}:/config {img} sleep 600", n=r.name("ro"), d=_config_folder(r), img=BUSYBOX
    )


def readonly_wrong_named_volume(r):  # read-only, but a volume, not a host folder
    r.cli(
        "run -d --name {n} -v {v}:/config:ro {img} sleep 600", n=r.name("ro"), v=r.name("config"), img=BUSYBOX
    )


def readonly_wrong_read_only_rootfs(r):  # --read-only makes the root file system read-only, not the mount
    r.cli(
        "run -d --name {n} --read-only -v {d}:/config {img} sleep 600",
        n=r.name("ro"),
        d=_config_folder(r),
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 06.restore


def _dbdata_and_backup(r) -> Path:
    """Sections 4-5: the volume container dc06…-dbdata holding files, and their backup.tar; its folder."""
    data = tar_files(
        {"dbdata/app/users.csv": "id,name\n1,ada\n2,linus\n3,grace\n", "dbdata/app/notes.txt": "x\n"}
    )
    dbdata = r.client.containers.create(
        BUSYBOX, ["true"], mounts=[Mount("/dbdata", None)], name=r.name("dbdata")
    )
    dbdata.put_archive("/", data)
    folder = r.tmp / "backup"
    folder.mkdir()
    (folder / "backup.tar").write_bytes(data)
    return folder


def restore_cli(r):
    backup = _dbdata_and_backup(r)
    r.cli("volume create {v}", v=r.name("restored"))
    r.cli(
        "run --name {n} -v {v}:/dbdata -v {b}:/backup:ro -w / {img} tar xvf /backup/backup.tar",
        n=r.name("restorer"),
        v=r.name("restored"),
        b=backup,
        img=BUSYBOX,
    )


def restore_cli_mount(r):  # --mount for both, tar -C / instead of a working directory
    backup = _dbdata_and_backup(r)
    r.cli(
        "run --name {n} --mount source={v},target=/dbdata "
        "--mount type=bind,source={b},target=/backup,readonly {img} tar -C / -xvf /backup/backup.tar",
        n=r.name("restorer"),
        v=r.name("restored"),
        b=backup,
        img=BUSYBOX,
    )


def restore_py(r):
    backup = _dbdata_and_backup(r)
    r.client.volumes.create(name=r.name("restored"))
    r.client.containers.run(
        BUSYBOX,
        ["tar", "xvf", "/backup/backup.tar"],
        working_dir="/",
        name=r.name("restorer"),
        volumes={
            r.name("restored"): {"bind": "/dbdata", "mode": "rw"},
            str(backup): {"bind": "/backup", "mode": "ro"},
        },
    )


def restore_wrong_workdir(r):  # unpacked in /dbdata: the files land in /dbdata/dbdata/...
    backup = _dbdata_and_backup(r)
    r.cli("volume create {v}", v=r.name("restored"))
    r.cli(
        "run --name {n} -v {v}:/dbdata -v {b}:/backup:ro -w /dbdata {img} tar xvf /backup/backup.tar",
        n=r.name("restorer"),
        v=r.name("restored"),
        b=backup,
        img=BUSYBOX,
    )


def restore_wrong_volume_container(r):  # section 5's way again: into a new volume container, not the volume
    backup = _dbdata_and_backup(r)
    r.cli("volume create {v}", v=r.name("restored"))
    r.cli("create -v /dbdata --name {c} {img}", c=r.name("dbdata2"), img=BUSYBOX)
    r.cli(
        "run --name {n} --volumes-from {c} -v {b}:/backup:ro -w / {img} tar xvf /backup/backup.tar",
        n=r.name("restorer"),
        c=r.name("dbdata2"),
        b=backup,
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 06.volumes-from


def volumes_from_cli(r):
    r.cli("create -v /store --name {s} {img}", s=r.name("store"), img=BUSYBOX)
    r.cli(
        "run --name {u} --volumes-from {s} {img} sh -c 'echo shared > /store/hello.txt'",
        u=r.name("store-user"),
        s=r.name("store"),
        img=BUSYBOX,
    )


def volumes_from_cli_mount_rw(r):  # the anonymous volume by --mount, volumes-from with an explicit :rw
    r.cli("create --mount type=volume,target=/store --name {s} {img} true", s=r.name("store"), img=BUSYBOX)
    r.cli(
        "run --name {u} --volumes-from {s}:rw {img} sh -c 'echo shared > /store/hello.txt'",
        u=r.name("store-user"),
        s=r.name("store"),
        img=BUSYBOX,
    )


def volumes_from_py(r):
    r.client.containers.create(BUSYBOX, ["true"], mounts=[Mount("/store", None)], name=r.name("store"))
    r.client.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo shared > /store/hello.txt"],
        volumes_from=[r.name("store")],
        name=r.name("store-user"),
    )


def volumes_from_wrong_read_only(r):  # :ro, so the write fails
    r.cli("create -v /store --name {s} {img}", s=r.name("store"), img=BUSYBOX)
    r.cli(
        "run -d --name {u} --volumes-from {s}:ro {img} sh -c 'echo shared > /store/hello.txt'",
        u=r.name("store-user"),
        s=r.name("store"),
        img=BUSYBOX,
    )
    r.client.containers.get(r.name("store-user")).wait()


def volumes_from_wrong_no_volume(r):  # -v /store forgotten: the file lands in store-user's own layer
    r.cli("create --name {s} {img}", s=r.name("store"), img=BUSYBOX)
    r.cli(
        "run --name {u} --volumes-from {s} {img} sh -c 'mkdir -p /store && echo shared > /store/hello.txt'",
        u=r.name("store-user"),
        s=r.name("store"),
        img=BUSYBOX,
    )


def volumes_from_wrong_volume_by_name(r):  # the same volume mounted by its ID, not with --volumes-from
    r.cli("create -v /store --name {s} {img}", s=r.name("store"), img=BUSYBOX)
    vol = volume_name(r.client.containers.get(r.name("store")).attrs["Mounts"][0])
    r.cli(
        "run --name {u} -v {vol}:/store {img} sh -c 'echo shared > /store/hello.txt'",
        u=r.name("store-user"),
        vol=vol,
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 06.tmpfs


def tmpfs_cli(r):
    r.cli(
        "run -d --name {n} --mount type=tmpfs,destination=/cache,tmpfs-size=8m {img} sleep 600",
        n=r.name("ram"),
        img=BUSYBOX,
    )


def tmpfs_cli_tmpfs_flag(r):  # --tmpfs with the size as a mount option
    r.cli("run -d --name {n} --tmpfs /cache:size=8m {img} sleep 600", n=r.name("ram"), img=BUSYBOX)


def tmpfs_py(r):
    r.client.containers.run(
        BUSYBOX,
        ["sleep", "600"],
        name=r.name("ram"),
        detach=True,
        mounts=[Mount("/cache", None, type="tmpfs", tmpfs_size="8m")],
    )


def tmpfs_wrong_no_size(r):  # unlimited: half the memory by default
    r.cli("run -d --name {n} --tmpfs /cache {img} sleep 600", n=r.name("ram"), img=BUSYBOX)


def tmpfs_wrong_decimal_mb(r):  # 8 MB in bytes, not 8 MiB
    r.cli(
        "run -d --name {n} --mount type=tmpfs,destination=/cache,tmpfs-size=8000000 {img} sleep 600",
        n=r.name("ram"),
        img=BUSYBOX,
    )


def tmpfs_wrong_volume(r):  # a volume on disk, not memory
    r.cli("run -d --name {n} -v /cache {img} sleep 600", n=r.name("ram"), img=BUSYBOX)


# --------------------------------------------------------------------------- 07.publish


def publish_cli(r):
    port, n = _free_port(), r.name("site")
    r.cli("run -d --name {n} -p 127.0.0.1:{port}:80 {img}", n=n, port=port, img=NGINX)
    page = "echo '<h1>Ports are open</h1>' > /usr/share/nginx/html/index.html"
    r.cli("exec {n} sh -c {cmd}", n=n, cmd=shlex.quote(page))
    http_get_bytes(port, wait=20)


def publish_cli_bind_page(r):  # the page from a host folder, bind-mounted over nginx's html folder
    port = _free_port()
    html = _context(r, "html", {"index.html": PAGE})
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:80 -v {d}:/usr/share/nginx/html:ro {img}",
        n=r.name("site"),
        port=port,
        d=html,
        img=NGINX,
    )
    http_get_bytes(port, wait=20)


def publish_py(r):  # ports= and put_archive
    port = _free_port()
    site = r.client.containers.run(
        NGINX, name=r.name("site"), ports={"80/tcp": ("127.0.0.1", port)}, detach=True
    )
    site.put_archive("/usr/share/nginx/html", _tar_of("index.html", PAGE.encode()))
    http_get_bytes(port, wait=20)


def publish_wrong_page_elsewhere(r):  # one folder too high: nginx still serves its own page
    port, n = _free_port(), r.name("site")
    r.cli("run -d --name {n} -p 127.0.0.1:{port}:80 {img}", n=n, port=port, img=NGINX)
    r.cli("exec {n} sh -c {cmd}", n=n, cmd=shlex.quote("echo 'Ports are open' > /usr/share/nginx/index.html"))
    http_get_bytes(port, wait=20)


def publish_wrong_container_port(r):  # the host port mapped to 8080, where nginx does not listen
    port, n = _free_port(), r.name("site")
    r.cli("run -d --name {n} -p 127.0.0.1:{port}:8080 {img}", n=n, port=port, img=NGINX)
    r.cli(
        "exec {n} sh -c {cmd}",
        n=n,
        cmd=shlex.quote("echo 'Ports are open' > /usr/share/nginx/html/index.html"),
    )


def publish_wrong_busybox_httpd(r):  # the page served, but by busybox's httpd, not NGINX
    port = _free_port()
    serve = "mkdir -p /www && echo 'Ports are open' > /www/index.html && httpd -f -p 80 -h /www"
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:80 {img} sh -c {cmd}",
        n=r.name("site"),
        port=port,
        img=BUSYBOX,
        cmd=shlex.quote(serve),
    )
    http_get_bytes(port, wait=20)


# --------------------------------------------------------------------------- 07.dns


def dns_cli(r):
    net = r.name("lab")
    r.cli("network create {net}", net=net)
    r.cli("run -d --name {n} --network {net} {img}", n=r.name("lab-web"), net=net, img=NGINX)
    r.cli("run -d --name {n} --network {net} {img} sleep 3600", n=r.name("lab-client"), net=net, img=BUSYBOX)


def dns_cli_net_flags(r):  # -d bridge spelled out, --net instead of --network
    net = r.name("lab")
    r.cli("network create -d bridge {net}", net=net)
    r.cli("run -d --name {n} --net={net} {img}", n=r.name("lab-web"), net=net, img=NGINX)
    r.cli("run -d --name {n} --net {net} {img} sleep 3600", n=r.name("lab-client"), net=net, img=BUSYBOX)


def dns_py(r):
    r.client.networks.create(r.name("lab"), driver="bridge")
    r.client.containers.run(NGINX, name=r.name("lab-web"), network=r.name("lab"), detach=True)
    r.client.containers.run(
        BUSYBOX, ["sleep", "3600"], name=r.name("lab-client"), network=r.name("lab"), detach=True
    )


def dns_wrong_default_bridge(r):  # the network made, both containers left on the default bridge
    r.cli("network create {net}", net=r.name("lab"))
    r.cli("run -d --name {n} {img}", n=r.name("lab-web"), img=NGINX)
    r.cli("run -d --name {n} {img} sleep 3600", n=r.name("lab-client"), img=BUSYBOX)


def dns_wrong_web_elsewhere(r):  # only the client on the network
    net = r.name("lab")
    r.cli("network create {net}", net=net)
    r.cli("run -d --name {n} {img}", n=r.name("lab-web"), img=NGINX)
    r.cli("run -d --name {n} --network {net} {img} sleep 3600", n=r.name("lab-client"), net=net, img=BUSYBOX)


def dns_wrong_link_on_network(r):
    # a --link on the user-defined network (the check once read only the default bridge's links)
    net = r.name("lab")
    r.cli("network create {net}", net=net)
    r.cli("run -d --name {n} --network {net} {img}", n=r.name("lab-web"), net=net, img=NGINX)
    r.cli(
        "run -d --name {n} --network {net} --link {w} {img} sleep 3600",
        n=r.name("lab-client"),
        net=net,
        w=r.name("lab-web"),
        img=BUSYBOX,
    )


# --------------------------------------------------------------------------- 07.udp


def udp_cli(r):
    port = _free_port()
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:9999/udp {img} python3 -c {prog}",
        n=r.name("udp"),
        port=port,
        img=PYTHON,
        prog=shlex.quote(UDP_ECHO),
    )
    udp_echo(port, b"ready?", wait=30)


def udp_py(r):
    port = _free_port()
    r.client.containers.run(
        PYTHON,
        ["python3", "-c", UDP_ECHO],
        name=r.name("udp"),
        detach=True,
        ports={"9999/udp": ("127.0.0.1", port)},
    )
    udp_echo(port, b"ready?", wait=30)


def udp_wrong_tcp(r):  # /udp forgotten: 9999/tcp is published
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:9999 {img} python3 -c {prog}",
        n=r.name("udp"),
        port=_free_port(),
        img=PYTHON,
        prog=shlex.quote(UDP_ECHO),
    )


def udp_wrong_loopback_bind(r):  # the server listens on the container's own 127.0.0.1: nothing reaches it
    r.cli(
        "run -d --name {n} -p 127.0.0.1:{port}:9999/udp {img} python3 -c {prog}",
        n=r.name("udp"),
        port=_free_port(),
        img=PYTHON,
        prog=shlex.quote(UDP_ECHO_LOOPBACK),
    )
    _wait_log(r, "udp", "listening")


# --------------------------------------------------------------------------- 08.nonroot


def nonroot_cli(r):
    d = _context(r, "nonroot", {"Dockerfile": f'FROM {BUSYBOX}\nUSER nobody\nCMD ["id"]\n'})
    r.cli("build -q -t {t} {d}", t=r.name("nonroot") + ":1", d=d)


def nonroot_cli_numeric_uid(r):  # a numeric uid:gid needs no entry in /etc/passwd
    d = _context(r, "nonroot", {"Dockerfile": f"FROM {BUSYBOX}\nUSER 1000:1000\n"})
    r.cli("build -q -t {t} {d}", t=r.name("nonroot") + ":1", d=d)


def nonroot_buildkit(r):
    d = _context(r, "nonroot", {"Dockerfile": f'FROM {BUSYBOX}\nUSER nobody\nCMD ["id"]\n'})
    buildkit(r, d, r.name("nonroot") + ":1")


def nonroot_py(r):
    d = _context(r, "nonroot", {"Dockerfile": f"FROM {BUSYBOX}\nUSER nobody:nogroup\n"})
    r.client.images.build(path=str(d), tag=r.name("nonroot") + ":1", rm=True)


def nonroot_wrong_user_root(r):
    d = _context(r, "nonroot", {"Dockerfile": f"FROM {BUSYBOX}\nUSER root\n"})
    r.cli("build -q -t {t} {d}", t=r.name("nonroot") + ":1", d=d)


def nonroot_wrong_user_only_at_run(r):  # the image still runs as root; only one container did not
    d = _context(r, "nonroot", {"Dockerfile": f'FROM {BUSYBOX}\nCMD ["id", "-u"]\n'})
    r.cli("build -q -t {t} {d}", t=r.name("nonroot") + ":1", d=d)
    r.cli("run --name {n} --user nobody {t}", n=r.name("nonroot"), t=r.name("nonroot") + ":1")


def nonroot_wrong_unknown_user(r):
    # a USER that does not exist: no container of it starts (the check once said "could not check" and
    # left that container behind; now "not yet", and it removes it)
    d = _context(r, "nonroot", {"Dockerfile": f"FROM {BUSYBOX}\nUSER learner\n"})
    r.cli("build -q -t {t} {d}", t=r.name("nonroot") + ":1", d=d)


# --------------------------------------------------------------------------- 08.health


def health_cli(r):
    d = _context(r, "web", {"index.html": "<h1>ok</h1>\n", "Dockerfile": HEALTHY_HTTPD})
    r.cli("build -q -t {t} {d}", t=r.name("web") + ":1", d=d)
    r.cli("run -d --name {n} {t}", n=r.name("web"), t=r.name("web") + ":1")
    _wait_health(r, "web")


def health_buildkit(r):
    d = _context(r, "web", {"index.html": "<h1>ok</h1>\n", "Dockerfile": HEALTHY_HTTPD})
    buildkit(r, d, r.name("web") + ":1")
    r.client.containers.run(r.name("web") + ":1", name=r.name("web"), detach=True)
    _wait_health(r, "web")


def health_py(r):  # the exec form of HEALTHCHECK, built and run with docker-py
    dockerfile = (
        f"FROM {BUSYBOX}\nCOPY index.html /www/index.html\n"
        'HEALTHCHECK --interval=1s --timeout=2s CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]\n'
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    d = _context(r, "web", {"index.html": "<h1>ok</h1>\n", "Dockerfile": dockerfile})
    r.client.images.build(path=str(d), tag=r.name("web") + ":1", rm=True)
    r.client.containers.run(r.name("web") + ":1", name=r.name("web"), detach=True)
    _wait_health(r, "web")


def health_wrong_check_at_run(r):  # healthy, but the check given to docker run: the image has none
    dockerfile = (
        f'FROM {BUSYBOX}\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    d = _context(r, "web", {"index.html": "<h1>ok</h1>\n", "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("web") + ":1", d=d)
    r.cli(
        "run -d --name {n} --health-cmd {cmd} --health-interval 1s {t}",
        n=r.name("web"),
        cmd=shlex.quote("wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"),
        t=r.name("web") + ":1",
    )
    _wait_health(r, "web")


def health_wrong_test_fails(r):  # the test asks port 80, httpd listens on 8080: unhealthy
    dockerfile = HEALTHY_HTTPD.replace("127.0.0.1:8080/", "127.0.0.1:80/")
    d = _context(r, "web", {"index.html": "<h1>ok</h1>\n", "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("web") + ":1", d=d)
    r.cli("run -d --name {n} {t}", n=r.name("web"), t=r.name("web") + ":1")
    _wait_health(r, "web")


def health_wrong_exits(r):  # a HEALTHCHECK but no service: busybox's sh ends at once
    d = _context(r, "web", {"Dockerfile": f"FROM {BUSYBOX}\nHEALTHCHECK --interval=1s CMD true\n"})
    r.cli("build -q -t {t} {d}", t=r.name("web") + ":1", d=d)
    r.cli("run -d --name {n} {t}", n=r.name("web"), t=r.name("web") + ":1")
    r.client.containers.get(r.name("web")).wait(timeout=30)


# --------------------------------------------------------------------------- 08.onbuild


def _child(r, dockerfile: str) -> Path:
    return _context(r, "child", {"message.txt": "copied by the trigger\n", "Dockerfile": dockerfile})


def onbuild_cli(r):
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY message.txt /message.txt\n"})
    r.cli("build -q -t {t} {d}", t=r.name("base") + ":1", d=parent)
    r.cli("build -q -t {t} {d}", t=r.name("app") + ":1", d=_child(r, f"FROM {r.name('base')}:1\n"))


def onbuild_cli_add(r):  # ADD instead of COPY in the trigger
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD ADD message.txt /message.txt\n"})
    r.cli("build -q -t {t} {d}", t=r.name("base") + ":1", d=parent)
    r.cli("build -q -t {t} {d}", t=r.name("app") + ":1", d=_child(r, f"FROM {r.name('base')}:1\n"))


def onbuild_buildkit(r):  # a trigger that copies and one that runs, both fired by BuildKit
    parent = _context(
        r,
        "parent",
        {
            "Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY message.txt /message.txt\n"
            "ONBUILD RUN cat /message.txt\n"
        },
    )
    buildkit(r, parent, r.name("base") + ":1")
    buildkit(r, _child(r, f"FROM {r.name('base')}:1\n"), r.name("app") + ":1")


def onbuild_wrong_trigger_copies_all_buildkit(r):  # BuildKit fires it, but there is no /message.txt
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY . /app/\n"})
    buildkit(r, parent, r.name("base") + ":1")
    buildkit(r, _child(r, f"FROM {r.name('base')}:1\n"), r.name("app") + ":1")


def onbuild_py(r):
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY message.txt /message.txt\n"})
    r.client.images.build(path=str(parent), tag=r.name("base") + ":1", rm=True)
    child = _child(r, f"FROM {r.name('base')}:1\n")
    r.client.images.build(path=str(child), tag=r.name("app") + ":1", rm=True)


def onbuild_wrong_copy_in_parent(r):  # ONBUILD forgotten: the parent copies its own message.txt
    parent = _context(
        r,
        "parent",
        {"message.txt": "mine\n", "Dockerfile": f"FROM {BUSYBOX}\nCOPY message.txt /message.txt\n"},
    )
    r.cli("build -q -t {t} {d}", t=r.name("base") + ":1", d=parent)
    r.cli("build -q -t {t} {d}", t=r.name("app") + ":1", d=_child(r, f"FROM {r.name('base')}:1\n"))


def onbuild_wrong_trigger_copies_all(r):  # the trigger copies the whole context elsewhere: no /message.txt
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY . /app/\n"})
    r.cli("build -q -t {t} {d}", t=r.name("base") + ":1", d=parent)
    r.cli("build -q -t {t} {d}", t=r.name("app") + ":1", d=_child(r, f"FROM {r.name('base')}:1\n"))


def onbuild_wrong_child_from_busybox(r):
    # the child FROM busybox copies the file itself (the check once compared layers only; an ONBUILD-only
    # parent adds none, so now the ONBUILD entry the child inherits in its history is required)
    parent = _context(r, "parent", {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY message.txt /message.txt\n"})
    r.cli("build -q -t {t} {d}", t=r.name("base") + ":1", d=parent)
    child = _child(r, f"FROM {BUSYBOX}\nCOPY message.txt /message.txt\n")
    r.cli("build -q -t {t} {d}", t=r.name("app") + ":1", d=child)


# --------------------------------------------------------------------------- 08.tiny


def tiny_cli(r):
    dockerfile = (
        f"FROM {BUILDER} AS build\nCOPY tiny.c /src/tiny.c\n"
        "RUN gcc -static -O2 -o /tiny /src/tiny.c && strip /tiny\n"
        'FROM scratch\nCOPY --from=build /tiny /tiny\nENTRYPOINT ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("tiny") + ":1", d=d)


def tiny_buildkit(r):  # the notebook's way: BuildKit, which also skips stages the target does not need
    dockerfile = (
        f"FROM {BUSYBOX} AS unused\nRUN echo never built\n"
        f"FROM {BUILDER} AS build\nCOPY tiny.c /src/tiny.c\n"
        "RUN gcc -static -O2 -o /tiny /src/tiny.c && strip /tiny\n"
        'FROM scratch\nCOPY --from=build /tiny /tiny\nENTRYPOINT ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    buildkit(r, d, r.name("tiny") + ":1")


def tiny_py(r):  # stage by number, CMD instead of ENTRYPOINT, built with docker-py
    dockerfile = (
        f"FROM {BUILDER}\nCOPY tiny.c /tiny.c\n"
        "RUN gcc -static -Os -o /tiny /tiny.c && strip /tiny\n"
        'FROM scratch\nCOPY --from=0 /tiny /tiny\nCMD ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    r.client.images.build(path=str(d), tag=r.name("tiny") + ":1", rm=True)


def tiny_wrong_single_stage(r):  # compiled and shipped in the gcc image: far over 1 MB
    dockerfile = (
        f"FROM {BUILDER}\nCOPY tiny.c /tiny.c\n"
        "RUN gcc -static -O2 -o /tiny /tiny.c && strip /tiny\n"
        'ENTRYPOINT ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("tiny") + ":1", d=d)


def tiny_wrong_dynamic(r):  # -static forgotten: scratch has no C library, the binary cannot start
    dockerfile = (
        f"FROM {BUILDER} AS build\nCOPY tiny.c /tiny.c\nRUN gcc -O2 -o /tiny /tiny.c\n"
        'FROM scratch\nCOPY --from=build /tiny /tiny\nENTRYPOINT ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("tiny") + ":1", d=d)


def tiny_wrong_busybox_stage(r):  # the last stage FROM busybox, not scratch: over 1 MB
    dockerfile = (
        f"FROM {BUILDER} AS build\nCOPY tiny.c /tiny.c\n"
        "RUN gcc -static -O2 -o /tiny /tiny.c && strip /tiny\n"
        f'FROM {BUSYBOX}\nCOPY --from=build /tiny /tiny\nENTRYPOINT ["/tiny"]\n'
    )
    d = _context(r, "tiny", {"tiny.c": TINY_C, "Dockerfile": dockerfile})
    r.cli("build -q -t {t} {d}", t=r.name("tiny") + ":1", d=d)


def tiny_cli_compiled_outside(r):
    # not multi-stage: compiled in a gcc container, copied out with docker cp, then a one-stage FROM scratch.
    # An image does not record its build's stages, so this is as right as the multi-stage build the
    # chapter teaches (the task says so).
    cc = r.name("cc")
    r.cli(
        "create --name {n} {img} sh -c 'gcc -static -O2 -o /tiny /tiny.c && strip /tiny'", n=cc, img=BUILDER
    )
    r.cli("cp {f} {n}:/tiny.c", f=r.file("tiny.c", TINY_C), n=cc)
    r.cli("start -a {n}", n=cc)
    d = _context(r, "tiny", {"Dockerfile": 'FROM scratch\nCOPY tiny /tiny\nENTRYPOINT ["/tiny"]\n'})
    r.cli("cp {n}:/tiny {d}", n=cc, d=d / "tiny")
    r.cli("build -q -t {t} {d}", t=r.name("tiny") + ":1", d=d)


# --------------------------------------------------------------------------- the table

EXTRA = {
    "01.isolation": [
        (isolation_cli, True),
        (isolation_cli_short_h, True),
        (isolation_py, True),
        (isolation_wrong_no_hostname, False),
        (isolation_wrong_pid_host, False),
        (isolation_wrong_sh_is_pid1, False),
    ],
    "01.memlimit": [
        (memlimit_cli, True),
        (memlimit_cli_bytes, True),
        (memlimit_py, True),
        (memlimit_wrong_decimal_mb, False),
        (memlimit_wrong_reservation, False),
        (memlimit_wrong_exited, False),
    ],
    "01.latency": [
        (latency_cli, True),
        (latency_py, True),
        (latency_wrong_seconds, False),
        (latency_wrong_debian, False),
        (latency_wrong_sh_c_true, False),
    ],
    "02.writable": [
        (writable_cli, True),
        (writable_cli_exec, True),
        (writable_py, True),
        (writable_wrong_text, False),
        (writable_wrong_path, False),
        (writable_wrong_baked_into_image, False),
    ],
    "02.tag": [
        (tag02_cli, True),
        (tag02_cli_by_id, True),
        (tag02_py, True),
        (tag02_wrong_latest, False),
        (tag02_wrong_commit, False),
        (tag02_wrong_image, False),
    ],
    "03.tag": [
        (tag03_cli, True),
        (tag03_cli_from_first_tag, True),
        (tag03_py, True),
        (tag03_wrong_one_tag, False),
        (tag03_wrong_full_version, False),
        (tag03_wrong_stable_other_image, False),
    ],
    "03.commit": [
        (commit_cli, True),
        (commit_cli_long_options_exec, True),
        (commit_py, True),
        (commit_wrong_no_author, False),
        (commit_wrong_author_email_only, False),
        (commit_wrong_other_container, False),
    ],
    "03.load": [
        (load_cli, True),
        (load_cli_long_option, True),
        (load_py, True),
        (load_wrong_import, False),
        (load_wrong_tag_busybox, False),
        (load_wrong_recommit, False),  # once accepted (fixed)
    ],
    "03.push": [
        (push03_cli, True),
        (push03_cli_localhost, True),
        (push03_py, True),
        (push03_wrong_tag_only, False),
        (push03_wrong_latest, False),
        (push03_wrong_image, False),  # once accepted (fixed)
    ],
    "04.capped": [
        (capped_cli, True),
        (capped_cli_update, True),
        (capped_py, True),
        (capped_wrong_no_swap, False),
        (capped_wrong_swap_zero, False),
        (capped_wrong_swap_unlimited, False),
        (capped_wrong_created_only, False),
    ],
    "04.renamed": [
        (renamed_cli, True),
        (renamed_cli_policy_at_run, True),
        (renamed_py, True),
        (renamed_wrong_recreated, False),
        (renamed_wrong_always, False),
        (renamed_wrong_no_retry_limit, False),
    ],
    "05.registry": [
        (registry_cli, True),
        (registry_cli_mount, True),
        (registry_py, True),
        (registry_wrong_anonymous, False),
        (registry_wrong_path, False),
        (registry_wrong_not_published, False),
    ],
    "05.push": [
        (push05_cli, True),
        (push05_cli_port_lookup, True),
        (push05_py, True),
        (push05_wrong_tag_only, False),
        (push05_wrong_image, False),
        (push05_wrong_other_registry, False),
    ],
    "05.auth": [
        (auth_cli_bind, True),
        (auth_cli_cp, True),
        (auth_py, True),
        (auth_wrong_no_auth, False),
        (auth_wrong_user_student, False),
        (auth_wrong_plain_password, False),
        (auth_wrong_not_started, False),
    ],
    "06.volume": [
        (volume_cli, True),
        (volume_cli_mount, True),
        (volume_py, True),
        (volume_wrong_not_mounted, False),
        (volume_wrong_anonymous, False),
        (volume_wrong_removed, False),
    ],
    "06.readonly": [
        (readonly_cli, True),
        (readonly_cli_mount, True),
        (readonly_py, True),
        (readonly_wrong_rw, False),
        (readonly_wrong_named_volume, False),
        (readonly_wrong_read_only_rootfs, False),
    ],
    "06.restore": [
        (restore_cli, True),
        (restore_cli_mount, True),
        (restore_py, True),
        (restore_wrong_workdir, False),
        (restore_wrong_volume_container, False),
    ],
    "06.volumes-from": [
        (volumes_from_cli, True),
        (volumes_from_cli_mount_rw, True),
        (volumes_from_py, True),
        (volumes_from_wrong_read_only, False),
        (volumes_from_wrong_no_volume, False),
        (volumes_from_wrong_volume_by_name, False),
    ],
    "06.tmpfs": [
        (tmpfs_cli, True),
        (tmpfs_cli_tmpfs_flag, True),
        (tmpfs_py, True),
        (tmpfs_wrong_no_size, False),
        (tmpfs_wrong_decimal_mb, False),
        (tmpfs_wrong_volume, False),
    ],
    "07.publish": [
        (publish_cli, True),
        (publish_cli_bind_page, True),
        (publish_py, True),
        (publish_wrong_page_elsewhere, False),
        (publish_wrong_container_port, False),
        (publish_wrong_busybox_httpd, False),
    ],
    "07.dns": [
        (dns_cli, True),
        (dns_cli_net_flags, True),
        (dns_py, True),
        (dns_wrong_default_bridge, False),
        (dns_wrong_web_elsewhere, False),
        (dns_wrong_link_on_network, False),  # once accepted (fixed)
    ],
    "07.udp": [
        (udp_cli, True),
        (udp_py, True),
        (udp_wrong_tcp, False),
        (udp_wrong_loopback_bind, False),
    ],
    "08.nonroot": [
        (nonroot_cli, True),
        (nonroot_cli_numeric_uid, True),
        (nonroot_py, True),
        (nonroot_buildkit, True),
        (nonroot_wrong_user_root, False),
        (nonroot_wrong_user_only_at_run, False),
        (nonroot_wrong_unknown_user, False),  # once accepted (fixed)
    ],
    "08.health": [
        (health_cli, True),
        (health_py, True),
        (health_buildkit, True),
        (health_wrong_check_at_run, False),
        (health_wrong_test_fails, False),
        (health_wrong_exits, False),
    ],
    "08.onbuild": [
        (onbuild_cli, True),
        (onbuild_cli_add, True),
        (onbuild_py, True),
        (onbuild_buildkit, True),
        (onbuild_wrong_trigger_copies_all_buildkit, False),
        (onbuild_wrong_copy_in_parent, False),
        (onbuild_wrong_trigger_copies_all, False),
        (onbuild_wrong_child_from_busybox, False),  # once accepted (fixed)
    ],
    "08.tiny": [
        (tiny_cli, True),
        (tiny_py, True),
        (tiny_buildkit, True),
        (tiny_wrong_single_stage, False),
        (tiny_wrong_dynamic, False),
        (tiny_wrong_busybox_stage, False),
        (tiny_cli_compiled_outside, True),  # the engine cannot tell it from a multi-stage build
    ],
}
