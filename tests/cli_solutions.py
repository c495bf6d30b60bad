"""Every exercise of chapters 01 to 08 solved with the real ``docker`` command: ``CLI = {exercise id: cell}``.

Each value is the source of a notebook cell that does what the master's solution cell does, but with
IPython's ``!docker ...`` and the chapter's names written out (``dc02-hello``), as a learner would type them.
``tests/test_grade_cli.py`` puts them in place of the master's solution cells and grades that copy like a
submission. What the cells rely on:

* In a grading run the grader maps the names a ``!`` line spells out (``dc05-mybox``) into its namespace
  (``dc05g3-mybox``) before IPython fills in ``{python}`` expressions; so a course name is written literally
  in the ``!`` line itself, never carried in a Python variable (``{ref}`` would keep the learner's name).
  Folders and ports come in through ``{...}`` (``{workdir}``, ``{my_port}``): their values are not mapped.
* IPython reads ``{...}`` in a ``!`` line as Python, and ``{{`` as a literal ``{``: a Go template such as
  ``{{.Created}}`` is put in as a Python string (``-f "{fmt}"``), never written out in the line.
* Python stays where a step has no ``docker`` form: a file or a Dockerfile written into a build folder, a
  bcrypt password hash, a timestamp median, a request to a registry's or a web server's HTTP API.
* Variables the master's solution cell defines that later cells use are defined too (``myreg_port`` and
  ``mybox`` of 05.push).
"""

from __future__ import annotations


def _cell(text: str) -> str:
    return text.strip("\n")


CLI: dict[str, str] = {
    # ------------------------------------------------------------------ 01 virtualization
    "01.isolation": _cell(
        r"""
!docker run -d --name dc01-iso --hostname island busybox:1.35.0 sleep 3600
!docker exec dc01-iso sh -c 'hostname; cat /proc/1/comm'
"""
    ),
    "01.memlimit": _cell(
        r"""
!docker run -d --name dc01-capped --memory 64m busybox:1.35.0 sleep 3600
# the limit in the container's cgroup: memory.limit_in_bytes on cgroup v1, memory.max on cgroup v2
!docker exec dc01-capped sh -c \
    'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
"""
    ),
    "01.latency": _cell(
        r"""
# the engine's timestamps from docker inspect; the median in Python. IPython would read the template's
# double braces in a ! line itself, so the template is a Python string put in as {fmt}
import statistics
from dockercourse.bench.containers import engine_time

fmt = "{{.Created}} {{.State.StartedAt}}"
latencies = []
for i in range(1, 6):
    !docker run --name dc01-lat-{i} busybox:1.35.0 true
    times = !docker inspect --type container -f "{fmt}" dc01-lat-{i}
    created, started = times[-1].split()
    latencies.append(engine_time(started) - engine_time(created))
median_ms = round(statistics.median(latencies) * 1000)
!docker run --name dc01-report busybox:1.35.0 sh -c 'echo {median_ms} > /result.txt'
print("median start latency recorded:", median_ms > 0)
"""
    ),
    # ------------------------------------------------------------------ 02 core concepts
    "02.hello": _cell(
        r"""
!docker run --name dc02-hello busybox:1.35.0 echo hello, docker
"""
    ),
    "02.writable": _cell(
        r"""
!docker run --name dc02-notes busybox:1.35.0 sh -c 'echo layers are neat > /notes.txt'
!docker diff dc02-notes
"""
    ),
    "02.tag": _cell(
        r"""
!docker tag busybox:1.35.0 dc02-mybox:v1
!docker images dc02-mybox
"""
    ),
    # ------------------------------------------------------------------ 03 images
    "03.tag": _cell(
        r"""
!docker tag busybox:1.35.0 dc03-mybox:1.35
!docker tag busybox:1.35.0 dc03-mybox:stable
!docker images dc03-mybox
"""
    ),
    "03.commit": _cell(
        r"""
!docker run --name dc03-diary busybox:1.35.0 sh -c 'echo dear diary > /diary.txt'
!docker commit -a "Student <student@example.com>" -m "first entry" dc03-diary dc03-diary:v1
!docker history dc03-diary:v1
"""
    ),
    "03.import": _cell(
        r"""
# workdir: the chapter's folder for image files (the setup cell made it)
!docker export -o {workdir}/template.tar dc03-work
!docker import -c 'CMD ["sh"]' {workdir}/template.tar dc03-template:v1
!docker history dc03-template:v1
"""
    ),
    "03.load": _cell(
        r"""
!docker load -i {workdir}/gift.tar
"""
    ),
    "03.push": _cell(
        r"""
# registry: the address of dc03-registry from section 10, 127.0.0.1:<its port>
!docker tag busybox:1.35.0 {registry}/dc03-mine:1.35.0
!docker push {registry}/dc03-mine:1.35.0
print(registry_get(f"http://{registry}/v2/{name('mine')}/tags/list"))
"""
    ),
    # ------------------------------------------------------------------ 04 containers
    "04.ticker": _cell(
        r"""
!docker run -d --name dc04-clock --label role=ticker busybox:1.35.0 \
    sh -c 'while true; do echo tick; sleep 1; done'
"""
    ),
    "04.copy": _cell(
        r"""
import tempfile

here = tempfile.mkdtemp()
!echo mode=training > {here}/config.txt
!docker run -d --name dc04-target busybox:1.35.0 sleep 3600
!docker cp {here}/config.txt dc04-target:/tmp/config.txt
!docker exec dc04-target cat /tmp/config.txt
"""
    ),
    "04.capped": _cell(
        r"""
!docker run -d --name dc04-capped -m 64m --memory-swap 64m busybox:1.35.0 sleep 3600
"""
    ),
    "04.renamed": _cell(
        r"""
!docker create --name dc04-draft busybox:1.35.0 sleep 3600
!docker rename dc04-draft dc04-final
!docker update --restart on-failure:3 dc04-final
"""
    ),
    "04.exec": _cell(
        r"""
!docker run -d --name dc04-bench busybox:1.35.0 sleep 3600
!docker exec dc04-bench sh -c 'echo exec was here > /tmp/made-by-exec.txt'
"""
    ),
    "04.killed": _cell(
        r"""
!docker run -d --name dc04-deaf busybox:1.35.0 sleep 3600
!docker stop -t 1 dc04-deaf
!docker wait dc04-deaf
"""
    ),
    # ------------------------------------------------------------------ 05 registries
    "05.registry": _cell(
        r"""
my_port = course.free_port()
!docker volume create dc05-regdata
!docker run -d --name dc05-myreg -p 127.0.0.1:{my_port}:5000 \
    -v dc05-regdata:/var/lib/registry registry:2.8
print("my registry answers:", RegistryAPI(f"http://127.0.0.1:{my_port}").wait())
"""
    ),
    "05.push": _cell(
        r"""
addr = !docker port dc05-myreg 5000
myreg_port = addr[0].rsplit(":", 1)[1]
mybox = f"127.0.0.1:{myreg_port}/{name('mybox')}"  # as the master's cell defines it
!docker tag busybox:1.35.0 127.0.0.1:{myreg_port}/dc05-mybox:v1
!docker push 127.0.0.1:{myreg_port}/dc05-mybox:v1
print(RegistryAPI(f"http://127.0.0.1:{myreg_port}").contents())
"""
    ),
    "05.pull": _cell(
        r"""
addr = !docker port dc05-myreg 5000
myreg_port = addr[0].rsplit(":", 1)[1]
mybox = f"127.0.0.1:{myreg_port}/{name('mybox')}"
!docker pull 127.0.0.1:{myreg_port}/dc05-mybox:v1
!docker tag 127.0.0.1:{myreg_port}/dc05-mybox:v1 dc05-frommyreg:v1
!docker images dc05-frommyreg
"""
    ),
    "05.auth": _cell(
        r"""
# the password made at run time and its bcrypt line written in Python (no course image has htpasswd)
import secrets, tempfile
from pathlib import Path

learner_password = secrets.token_urlsafe(16)
auth_port = course.free_port()
auth_dir = Path(tempfile.mkdtemp())
(auth_dir / "htpasswd").write_text(htpasswd_line("learner", learner_password))
auth_dir.chmod(0o755)
(auth_dir / "htpasswd").chmod(0o644)
!docker create --name dc05-authreg -p 127.0.0.1:{auth_port}:5000 -e REGISTRY_AUTH=htpasswd \
    -e REGISTRY_AUTH_HTPASSWD_REALM=learners -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd registry:2.8
!docker cp {auth_dir} dc05-authreg:/auth
!docker start dc05-authreg
print("anonymous GET /v2/ ->", RegistryAPI(f"http://127.0.0.1:{auth_port}").wait())
"""
    ),
    # ------------------------------------------------------------------ 06 data management
    "06.volume": _cell(
        r"""
!docker volume create -d local dc06-notes
!docker run --name dc06-notes-writer -v dc06-notes:/notes busybox:1.35.0 \
    sh -c 'echo volumes keep data > /notes/todo.txt'
!docker run --rm --name dc06-notes-check -v dc06-notes:/notes:ro busybox:1.35.0 cat /notes/todo.txt
"""
    ),
    "06.readonly": _cell(
        r"""
# host: the chapter's temporary host folder (the setup cell made it)
cfg = host / "config"
!mkdir -p {cfg}
!echo 'mode = production' > {cfg}/app.ini
!docker run -d --name dc06-ro -v {cfg}:/config:ro busybox:1.35.0 sleep 600
!docker exec dc06-ro sh -c 'cat /config/app.ini; touch /config/x 2>&1 || true'
"""
    ),
    "06.restore": _cell(
        r"""
!docker volume create dc06-restored
!docker run --name dc06-restorer -v dc06-restored:/dbdata -v {host}/backup:/backup:ro -w / \
    busybox:1.35.0 tar xvf /backup/backup.tar
"""
    ),
    "06.volumes-from": _cell(
        r"""
!docker create -v /store --name dc06-store busybox:1.35.0
!docker run --name dc06-store-user --volumes-from dc06-store busybox:1.35.0 \
    sh -c 'echo shared > /store/hello.txt'
!docker run --rm --name dc06-store-check --volumes-from dc06-store busybox:1.35.0 cat /store/hello.txt
"""
    ),
    "06.tmpfs": _cell(
        r"""
!docker run -d --name dc06-ram --mount type=tmpfs,destination=/cache,tmpfs-size=8m busybox:1.35.0 sleep 600
!docker exec dc06-ram grep ' /cache ' /proc/mounts
"""
    ),
    # ------------------------------------------------------------------ 07 ports and links
    "07.publish": _cell(
        r"""
site_port = course.free_port()
!docker run -d --name dc07-site -p 127.0.0.1:{site_port}:80 nginx:1.22
!docker exec dc07-site sh -c 'echo "<h1>Ports are open</h1>" > /usr/share/nginx/html/index.html'
print(http_get(site_port))
"""
    ),
    "07.link": _cell(
        r"""
!docker run -d --name dc07-shop nginx:1.22
!docker run -d --name dc07-buyer --link dc07-shop:store busybox:1.35.0 sleep 3600
!docker exec dc07-buyer cat /etc/hosts
"""
    ),
    "07.dns": _cell(
        r"""
!docker network create dc07-lab
!docker run -d --name dc07-lab-web --network dc07-lab nginx:1.22
!docker run -d --name dc07-lab-client --network dc07-lab busybox:1.35.0 sleep 3600
"""
    ),
    "07.udp": _cell(
        r"""
# UDP_ECHO: the echo server of section 2, quoted for the shell
import shlex

udp_ex_port = course.free_port()
prog = shlex.quote(UDP_ECHO)
!docker run -d --name dc07-udp -p 127.0.0.1:{udp_ex_port}:9999/udp python:3.11-slim-bookworm \
    python3 -c {prog}
print(udp_echo(udp_ex_port, b"ping", wait=30))
"""
    ),
    # ------------------------------------------------------------------ 08 Dockerfile
    # The Dockerfiles are written into the build folders with Python (write_files, as the master does);
    # the child's FROM names the parent with name("base"), since a file's text is not mapped by the grader.
    "08.cmd": _cell(
        r"""
ex1 = write_files(work / "ex1", {"Dockerfile": f'FROM {BUSYBOX}\nCMD ["echo", "hello from my Dockerfile"]\n'})
!docker build -t dc08-greeter:1 {ex1}
"""
    ),
    "08.nonroot": _cell(
        r"""
ex2 = write_files(work / "ex2", {"Dockerfile": f'FROM {BUSYBOX}\nUSER nobody\nCMD ["id"]\n'})
!docker build -t dc08-nonroot:1 {ex2}
"""
    ),
    "08.health": _cell(
        r"""
ex3 = write_files(work / "ex3", {
    "index.html": "<h1>ok</h1>\n",
    "Dockerfile": f'''\
FROM {BUSYBOX}
COPY index.html /www/index.html
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
'''})
!docker build -t dc08-web:1 {ex3}
!docker run -d --name dc08-web dc08-web:1
"""
    ),
    "08.onbuild": _cell(
        r"""
ex4p = write_files(work / "ex4-parent",
                   {"Dockerfile": f"FROM {BUSYBOX}\nONBUILD COPY message.txt /message.txt\n"})
!docker build -t dc08-base:1 {ex4p}
ex4c = write_files(work / "ex4-child", {"message.txt": "copied by the trigger\n",
                                        "Dockerfile": f"FROM {name('base')}:1\n"})
!docker build -t dc08-app:1 {ex4c}
"""
    ),
    "08.tiny": _cell(
        r"""
ex5 = write_files(work / "ex5", {
    "tiny.c": '#include <stdio.h>\nint main(void) { puts("tiny and static"); return 0; }\n',
    "Dockerfile": f'''\
FROM {BUILDER} AS build
COPY tiny.c /src/tiny.c
RUN gcc -static -O2 -o /tiny /src/tiny.c && strip /tiny
FROM scratch
COPY --from=build /tiny /tiny
ENTRYPOINT ["/tiny"]
'''})
!docker build -t dc08-tiny:1 {ex5}
"""
    ),
}
