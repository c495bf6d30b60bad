"""The image kit against the real engine: every course image does what the lessons need.

CI builds the kit first (`dockercourse images`); these tests make sure of it too
(ensure() is fast when the images are there). Everything a test creates carries
the label ``io.dockercourse.kittest=1`` or a ``dockercourse-kittest`` name and is
removed afterwards; the kit's own images and mirror stay (infrastructure).
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
import uuid

import docker
import docker.errors
import pytest
import requests

from dockercourse import imagekit
from dockercourse.cli import main as cli_main
from dockercourse.core import labels
from dockercourse.core.images import (
    BUILDER,
    BUSYBOX,
    COURSE_IMAGES,
    DEBIAN,
    NGINX,
    PYTHON,
    REGISTRY,
)
from dockercourse.imagekit import build as build_mod
from dockercourse.imagekit import mirror as mirror_mod
from dockercourse.imagekit.naming import BUILD_CONTAINER_PREFIX, TMP_REPO_PREFIX
from dockercourse.imagekit.recipes import RECIPES, Recipe
from dockercourse.lessonkit.registry import MANIFEST_TYPES

TEST_LABEL = "io.dockercourse.kittest"
TL = {TEST_LABEL: "1"}


@pytest.fixture(scope="module")
def client():
    try:
        c = docker.from_env(timeout=300)
        c.ping()
    except Exception as e:  # pragma: no cover - no engine
        pytest.skip(f"no Docker engine: {e}")
    imagekit.ensure(c, progress=False, log=lambda *a, **k: None)
    yield c
    for ct in c.containers.list(all=True, filters={"label": f"{TEST_LABEL}=1"}):
        ct.remove(force=True, v=True)
    for img in c.images.list():
        for t in img.tags:
            if "dockercourse-kittest" in t:
                try:
                    c.api.remove_image(t, noprune=False)
                except docker.errors.APIError:
                    pass
    for img in c.images.list():
        for d in img.attrs.get("RepoDigests") or []:
            if "dockercourse-kittest" in d:
                try:
                    c.api.remove_image(d)
                except docker.errors.APIError:
                    pass


def run(client, image, cmd, **kw):
    ct = client.containers.create(image, cmd, labels=TL, **kw)
    try:
        ct.start()
        code = ct.wait(timeout=60)["StatusCode"]
        out = ct.logs().decode()
        assert code == 0, out
        return out
    finally:
        ct.remove(force=True, v=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_every_image_present_and_described(client):
    st = imagekit.status(client)
    assert [s.role for s in st] == list(COURSE_IMAGES)
    for s in st:
        assert s.present, s.ref
        assert s.source and s.size and s.id.startswith("sha256:")
        if s.kit:
            assert s.source.startswith(("built locally from", "pulled sha256:")), s.source
        else:
            assert s.source == "present, not made by the kit"
    assert st.mirror is not None and st.mirror.ok, st.mirror.message


@pytest.mark.timeout(60)
def test_second_run_only_verifies_fast(client):
    t = time.monotonic()
    st = imagekit.ensure(client, progress=False, log=lambda *a, **k: None)
    assert time.monotonic() - t < 5
    assert {s.action for s in st} <= {"verified", "used as it is"}


@pytest.mark.timeout(60)
def test_busybox_echo(client):
    assert run(client, BUSYBOX, ["echo", "hello from busybox"]).strip() == "hello from busybox"
    assert "sh" in run(client, BUSYBOX, ["sh", "-c", "ls /bin | grep -x sh"])


@pytest.mark.timeout(60)
def test_debian_has_bash_and_apt(client):
    out = run(client, DEBIAN, ["bash", "-c", "cat /etc/debian_version; command -v apt-get"])
    assert out.splitlines()[0].startswith("12.")
    assert client.images.get(DEBIAN).attrs["Config"]["Cmd"] == ["bash"]


@pytest.mark.timeout(60)
def test_python_computes(client):
    assert run(client, PYTHON, ["python", "-c", "print(sum(range(101)))"]).strip() == "5050"
    assert (
        run(client, PYTHON, ["python3", "-c", "import sys; print(sys.version_info[:2])"]).strip() == "(3, 11)"
    )


@pytest.mark.timeout(90)
def test_nginx_serves_default_page_on_loopback(client):
    ct = client.containers.run(NGINX, detach=True, labels=TL, ports={"80/tcp": ("127.0.0.1", None)})
    try:
        ct.reload()
        port = int(ct.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        body, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                if r.status_code == 200:
                    body = r.text
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert body is not None and "Welcome to nginx" in body
        ct.reload()
        assert ct.status == "running"  # foreground: the container lives while nginx does
        # access log on stdout: nginx writes it after the response, and the engine copies it to the
        # container's log a moment later, so the line may not be there yet when the page has arrived
        logged, deadline = "", time.monotonic() + 10
        while "GET / HTTP" not in logged and time.monotonic() < deadline:
            time.sleep(0.1)
            logged = ct.logs(stdout=True, stderr=False).decode()
        assert "GET / HTTP" in logged
    finally:
        ct.remove(force=True, v=True)


@pytest.mark.timeout(120)
def test_registry_accepts_push_and_lists_it(client):
    port = free_port()
    ct = client.containers.run(REGISTRY, detach=True, labels=TL, ports={"5000/tcp": ("127.0.0.1", port)})
    repo = f"127.0.0.1:{port}/dockercourse-kittest/bb"
    try:
        deadline = time.monotonic() + 30
        while not mirror_mod.answers(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mirror_mod.answers(port)
        client.images.get(BUSYBOX).tag(repo, "1")
        for ev in client.api.push(repo, tag="1", stream=True, decode=True):
            assert "error" not in ev, ev
        cat = requests.get(f"http://127.0.0.1:{port}/v2/_catalog", timeout=5).json()
        assert "dockercourse-kittest/bb" in cat["repositories"]
        ct.reload()
        mounts = {m["Destination"] for m in ct.attrs["Mounts"]}
        assert "/var/lib/registry" in mounts  # VOLUME like upstream
    finally:
        img = client.images.get(BUSYBOX)
        for ref in [f"{repo}:1", *[d for d in img.attrs.get("RepoDigests") or [] if d.startswith(repo)]]:
            try:
                client.api.remove_image(ref, noprune=True)
            except docker.errors.APIError:
                pass
        ct.remove(force=True, v=True)


@pytest.mark.timeout(180)
def test_builder_compiles_static_binary_that_runs_in_busybox(client):
    src = (
        "#include <stdio.h>\n"
        'int main(void){int s=0;for(int i=1;i<=10;i++)s+=i*i;printf("sum=%d\\n",s);return 0;}\n'
    )
    script = f"cat > /tmp/h.c <<'EOF'\n{src}EOF\ngcc -static -O2 -o /tmp/hello /tmp/h.c && /tmp/hello"
    ct = client.containers.create(BUILDER, ["sh", "-c", script], labels=TL, network_mode="none")
    try:
        ct.start()
        assert ct.wait(timeout=150)["StatusCode"] == 0, ct.logs().decode()
        stream, _ = ct.get_archive("/tmp/hello")
        data = b"".join(stream)
    finally:
        ct.remove(force=True)
    bb = client.containers.create(BUSYBOX, ["/hello"], labels=TL, network_mode="none")
    try:
        bb.put_archive("/", data)
        bb.start()
        assert bb.wait(timeout=30)["StatusCode"] == 0
        assert bb.logs().decode().strip() == "sum=385"
    finally:
        bb.remove(force=True)


@pytest.mark.timeout(120)
def test_pull_through_the_mirror(client):
    url, port = mirror_mod.configured_port(client)
    if port is None:
        pytest.skip("the engine has no loopback registry mirror")
    tag = uuid.uuid4().hex[:10]
    name = "dockercourse-kittest"
    pushed = f"127.0.0.1:{port}/library/{name}"
    img = client.images.get(BUSYBOX)
    img.tag(pushed, tag)
    try:
        for ev in client.api.push(pushed, tag=tag, stream=True, decode=True):
            assert "error" not in ev, ev
    finally:
        client.api.remove_image(f"{pushed}:{tag}", noprune=True)
    assert img.id in mirror_mod.remote_digests(port, f"{name}:{tag}")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{name}:{tag}")
    # an official-image name: the engine asks the mirror for library/<name>
    pulled = client.images.pull(name, tag=tag)
    try:
        assert pulled.id == img.id
    finally:
        client.api.remove_image(f"{name}:{tag}", noprune=True)
        r = requests.head(
            f"http://127.0.0.1:{port}/v2/library/{name}/manifests/{tag}",
            headers={"Accept": MANIFEST_TYPES},
            timeout=5,
        )
        if r.headers.get("Docker-Content-Digest"):
            requests.delete(
                f"http://127.0.0.1:{port}/v2/library/{name}/manifests/{r.headers['Docker-Content-Digest']}",
                timeout=5,
            )
        # the registry API cannot delete a repository: drop the test's empty one from the catalog
        client.containers.get(imagekit.MIRROR_NAME).exec_run(
            ["rm", "-rf", f"/var/lib/registry/docker/registry/v2/repositories/library/{name}"]
        )


@pytest.mark.timeout(60)
def test_every_pinned_tag_is_served_by_the_mirror(client):
    url, port = mirror_mod.configured_port(client)
    if port is None:
        pytest.skip("the engine has no loopback registry mirror")
    for ref in COURSE_IMAGES.values():
        assert client.images.get(ref).id in mirror_mod.remote_digests(port, ref), ref
    ct = client.containers.get(imagekit.MIRROR_NAME)
    assert ct.labels.get(labels.KIT) == "1" and labels.CHAPTER not in ct.labels
    assert ct.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"


def _learner_image(client, ref):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"learner\n"
        ti = tarfile.TarInfo("learner.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    name, tag = ref.rsplit(":", 1)
    client.api.import_image_from_data(buf.getvalue(), repository=name, tag=tag)
    return client.images.get(ref)


@pytest.mark.timeout(60)
def test_learner_image_under_pinned_name_is_used_and_never_removed(client, monkeypatch):
    ref = f"dockercourse-kittest/busybox:{uuid.uuid4().hex[:8]}"
    img = _learner_image(client, ref)
    monkeypatch.setitem(COURSE_IMAGES, "busybox", ref)
    monkeypatch.setattr(mirror_mod, "configured_port", lambda c: (None, None))
    try:
        st = imagekit.ensure(client, mode="offline", progress=False, log=lambda *a, **k: None)
        bb = [s for s in st if s.role == "busybox"][0]
        assert bb.action == "used as it is" and bb.source == "present, not made by the kit"
        assert "daemon.json" in st.mirror.message
        # remove() takes only labelled kit images: run it with every other role pointing nowhere
        for role in list(COURSE_IMAGES):
            if role != "busybox":
                monkeypatch.setitem(COURSE_IMAGES, role, f"dockercourse-kittest/none-{role}:x")
        monkeypatch.setattr(mirror_mod, "container", lambda c: None)
        monkeypatch.setattr(imagekit.kit, "MIRROR_VOLUME", "dockercourse-kittest-novolume")
        imagekit.remove(client, log=lambda *a, **k: None)
        assert client.images.get(ref).id == img.id
        assert labels.KIT not in (client.images.get(ref).labels or {})
    finally:
        client.api.remove_image(ref)


@pytest.mark.timeout(120)
def test_failed_build_leaves_no_tag_and_no_container(client, monkeypatch):
    monkeypatch.setitem(
        RECIPES,
        "kittest",
        Recipe("kittest", "layer", ("docker-registry",), setup="exit 3", config={"Cmd": ["bash"]}),
    )
    with pytest.raises(imagekit.ImageKitError) as e:
        build_mod.build_layer(client, "kittest", DEBIAN, log=lambda *a, **k: None)
    assert "kittest" in str(e.value) and "\n" not in str(e.value)
    assert not [
        c for c in client.containers.list(all=True) if c.name.startswith(BUILD_CONTAINER_PREFIX + "kittest")
    ]
    assert not [t for i in client.images.list() for t in i.tags if t.startswith(TMP_REPO_PREFIX + "kittest")]


@pytest.mark.timeout(30)
def test_taken_mirror_port_is_one_clear_line(client, monkeypatch):
    monkeypatch.setattr(mirror_mod, "MIRROR_NAME", "dockercourse-kittest-mirror")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(imagekit.ImageKitError) as e:
            mirror_mod.ensure_running(client, port, REGISTRY, log=lambda *a, **k: None)
    assert f"127.0.0.1:{port} is taken" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("dockercourse-kittest-mirror")


@pytest.mark.timeout(60)
def test_cli_check_and_bad_mode(client, capsys):
    assert cli_main(["images", "--check", "--quiet"]) == 0
    out = capsys.readouterr().out
    for ref in COURSE_IMAGES.values():
        assert ref in out
    with pytest.raises(imagekit.ImageKitError):
        imagekit.ensure(client, mode="sideways")


@pytest.mark.timeout(300)
def test_debian_is_bootstrapped_in_a_container_as_mmdebstrap_would(client):
    """The debian image needs no root and no mmdebstrap on the host: its minbase is bootstrapped in a
    busybox container of the engine (as on Binder or Docker Desktop). Every package installed, apt and
    bash working, /usr merged, the slim exclusions applied, and what it was made of on its label."""
    tmp = build_mod.build_debian(client, DEBIAN, log=lambda *a, **k: None)
    try:
        img = client.images.get(tmp)
        source = img.labels[labels.KIT_SOURCE]
        assert source.startswith("built locally from Debian bookworm: minbase, bootstrapped in a container")
        assert "apt 2.6" in source and "libc6 2.36" in source
        out = run(
            client,
            tmp,
            [
                "bash",
                "-c",
                "dpkg-query -W -f '${db:Status-Abbrev}\\n' | sort | uniq -c; apt-get --version | head -1; "
                "readlink /bin; ls /usr/share/man | wc -l; ls /usr/share/doc/bash; cat /etc/debian_version",
            ],
        )
        lines = out.split("\n")
        # every package installed (no other state), about 90 of them
        assert lines[0].split()[1] == "ii" and int(lines[0].split()[0]) >= 80, out
        assert lines[1].startswith("apt 2.6"), out
        assert lines[2:6] == ["usr/bin", "0", "copyright", lines[5]] and lines[5].startswith("12."), out
        assert img.attrs["Config"]["Cmd"] == ["bash"]
        assert not [c for c in client.containers.list(all=True) if c.name.startswith(BUILD_CONTAINER_PREFIX)]
    finally:
        client.api.remove_image(tmp)


@pytest.mark.timeout(30)
def test_the_vm_seed_never_builds_what_is_not_a_course_image(client):
    from dockercourse.imagekit.kit import build_refs

    with pytest.raises(imagekit.ImageKitError, match="not a course image"):
        build_refs(client, ["dockercourse-kittest/other:1"])
