"""Labels, names and label-only cleanup, on the real engine."""

import uuid

import docker
import pytest

from dockercourse.core import labels as L
from dockercourse.core.cleanup import clean, leftovers, unlabelled_lookalikes
from dockercourse.core.engine import connect
from dockercourse.core.namespace import Namespace, chapter_number


def test_chapter_number():
    assert chapter_number("02_core_concepts") == "02"
    assert chapter_number("7") == "07"
    with pytest.raises(ValueError):
        chapter_number("intro")


def test_names_and_prefix():
    ns = Namespace(chapter="02")
    assert ns.name("web") == "dc02-web"
    assert ns.name("dc02-web") == "dc02-web"
    assert Namespace(chapter="02", tag="g3").name("web") == "dc02g3-web"
    with pytest.raises(ValueError):
        Namespace.for_chapter("02", tag="Bad Tag")


def test_everything_created_is_labelled(engine, busybox, ns):
    client = connect(namespace=ns)
    c = client.containers.run(
        busybox, ["sh", "-c", "echo x > /f"], name=ns.name("c"), detach=True, labels={"mine": "yes"}
    )
    c.wait()
    v = client.volumes.create(ns.name("v"))
    n = client.networks.create(ns.name("n"))
    img = c.commit(ns.name("img"), "v1", author="a", message="m")
    built, _ = client.images.build(
        fileobj=__import__("io").BytesIO(f"FROM {busybox}\nRUN echo hi > /b\n".encode()),
        tag=ns.name("built") + ":1",
        rm=True,
    )
    for labels in (c.labels, v.attrs["Labels"], n.attrs["Labels"], img.labels, built.labels):
        assert labels[L.CHAPTER] == "97" and labels[L.NAMESPACE] == ns.prefix and labels[L.RUN] == ns.run
    assert c.labels["mine"] == "yes"  # the caller's own labels are kept
    rep = clean(engine, namespace=ns)
    assert (
        rep.containers == [ns.name("c")] and rep.volumes == [ns.name("v")] and rep.networks == [ns.name("n")]
    )
    assert {ns.name("img") + ":v1", ns.name("built") + ":1"} <= set(rep.images)
    assert leftovers(engine, namespace=ns) == {"containers": [], "volumes": [], "networks": [], "images": []}


def test_clean_never_touches_unlabelled_lookalikes(engine, busybox, ns):
    """A learner's own resources, even named with the course prefix, survive cleanup."""
    plain = engine  # an unlabelled client, like the learner's terminal
    mine_c = plain.containers.create(busybox, ["true"], name=ns.name("mine"))
    mine_v = plain.volumes.create(ns.name("minevol"))
    plain.images.get(busybox).tag(ns.name("mytag"), "1")  # a tag on the kit image, by the learner
    learner_img, _ = plain.images.build(
        fileobj=__import__("io").BytesIO(f"FROM {busybox}\nRUN echo mine > /m\n".encode()),
        tag=ns.name("learnerbuilt") + ":1",
        rm=True,
    )
    try:
        ours = connect(namespace=ns).containers.create(busybox, ["true"], name=ns.name("ours"))
        assert sorted(unlabelled_lookalikes(engine, ns)) == sorted(
            [f"container {ns.name('mine')}", f"volume {ns.name('minevol')}"]
        )
        rep = clean(engine, namespace=ns)
        assert rep.containers == [ns.name("ours")]
        plain.containers.get(mine_c.id)
        plain.volumes.get(mine_v.name)
        # the learner's image built FROM a course image inherits the kit label but not a chapter label: kept
        assert plain.images.get(ns.name("learnerbuilt") + ":1").id == learner_img.id
        with pytest.raises(docker.errors.NotFound):
            plain.containers.get(ours.id)
    finally:
        mine_c.remove(force=True)
        mine_v.remove(force=True)
        for ref in (ns.name("mytag") + ":1", ns.name("learnerbuilt") + ":1"):
            try:
                plain.images.remove(ref)
            except docker.errors.ImageNotFound:
                pass


def test_namespaces_are_separate(engine, busybox, ns):
    other = Namespace(chapter=ns.chapter, tag="o" + ns.tag[1:])
    a = connect(namespace=ns).containers.create(busybox, ["true"], name=ns.name("x"))
    b = connect(namespace=other).containers.create(busybox, ["true"], name=other.name("x"))
    try:
        clean(engine, namespace=ns)
        engine.containers.get(b.id)  # the other namespace (another grading worker) is untouched
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(a.id)
    finally:
        clean(engine, namespace=other)


def test_clean_cli_dry_run(engine, busybox, ns):
    import subprocess
    import sys

    connect(namespace=ns).volumes.create(ns.name("cli"))
    out = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "clean", "--chapter", "97", "--ns", ns.tag, "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"would remove volume {ns.name('cli')}" in out
    out = subprocess.run(
        [sys.executable, "-m", "dockercourse.cli", "clean", "--chapter", "97", "--ns", ns.tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"removed volume {ns.name('cli')}" in out


def test_chapter_cleanup_takes_its_names_and_nothing_else(engine, busybox, ns):
    """What a learner made from a terminal with the chapter's names is the chapter's (setup and
    course.cleanup() remove it); another namespace's names and unprefixed names are never touched."""
    from dockercourse.core.cleanup import clean_chapter

    plain = engine
    cli_made = plain.containers.create(busybox, ["true"], name=ns.name("fromterminal"))
    plain.volumes.create(ns.name("termvol"))
    plain.images.get(busybox).tag(ns.name("termtag"), "1")
    other = Namespace(chapter=ns.chapter, tag=ns.tag + "x")
    theirs = plain.containers.create(busybox, ["true"], name=other.name("theirs"))
    own = plain.containers.create(busybox, ["true"], name="not" + ns.name("course"))
    try:
        rep = clean_chapter(engine, ns)
        assert ns.name("fromterminal") in rep.containers and ns.name("termvol") in rep.volumes
        assert ns.name("termtag") + ":1" in rep.images
        for gone in (cli_made.id,):
            with pytest.raises(docker.errors.NotFound):
                plain.containers.get(gone)
        plain.containers.get(theirs.id)
        plain.containers.get(own.id)
        assert plain.images.get(busybox)  # the kit image itself keeps its own name
    finally:
        theirs.remove(force=True)
        own.remove(force=True)
    with pytest.raises(ValueError):
        clean_chapter(engine, Namespace(chapter="97", tag="Bad"))


@pytest.mark.unit
def test_a_grading_run_maps_the_learners_written_out_names():
    run = Namespace(chapter="02", tag="g3")
    assert run.map_names("docker run --name dc02-hello busybox") == "docker run --name dc02g3-hello busybox"
    assert (
        run.map_names("/images/127.0.0.1%3A5000%2Fdc02-mybox/push", url=True)
        == "/images/127.0.0.1%3A5000%2Fdc02g3-mybox/push"
    )
    assert run.map_names("/containers/dc02-web/json", url=True) == "/containers/dc02g3-web/json"
    # a registry's repository is a name; a folder on the host (a bind mount's source) is not
    push = "docker push 127.0.0.1:5000/dc02-mybox:v1"
    assert run.map_names(push) == push.replace("dc02-", "dc02g3-")
    body = '{"Binds": ["dc02-data:/data", "/tmp/dc02-x1y2/backup:/backup:ro"], "Image": "dc02-mine"}'
    assert run.map_names(body) == body.replace('"dc02-', '"dc02g3-')
    line = "docker run -v /tmp/dc02-ab/site:/s --mount type=bind,source=./dc02-cfg,target=/c dc02-img"
    assert run.map_names(line) == line.replace(" dc02-img", " dc02g3-img")
    assert run.map_names("--network container:dc02-web") == "--network container:dc02g3-web"
    assert run.map_names('{"Image": "dc02-mine:1"}') == '{"Image": "dc02g3-mine:1"}'
    for same in ("xdc02-hello", "dc02g3-hello", "dc03-hello", "dc02hello"):
        assert run.map_names(same) == same
    assert Namespace(chapter="02").map_names("dc02-hello") == "dc02-hello"  # a learner's own run: as written


@pytest.mark.unit
def test_shell_lines_in_a_grading_run_expand_where_the_learner_wrote_them(monkeypatch):
    """`!cmd` / `x = !cmd` under grading: {var} and $var come from the learner's cell or function (not
    the grader's wrapper); the course names are mapped, written in the line or held in a variable, but
    a folder such as /tmp/dc02-x1y2 stays what Python made; the rest (docker's own {{...}} templates, $
    of the shell) reaches the shell as IPython would pass it."""
    import builtins

    from IPython.core.interactiveshell import InteractiveShell

    from dockercourse.notebook import course as nbcourse

    ip = InteractiveShell.instance()
    monkeypatch.setattr(builtins, "get_ipython", lambda: ip, raising=False)
    monkeypatch.setattr(ip, "getoutput", ip.getoutput)  # the instance attribute the wrapper replaces
    nbcourse._map_shell_names(Namespace(chapter="02", tag="g3"))
    ip.user_ns["ref"] = "/tmp/dc02-x1y2"
    ip.user_ns["who"] = "dc02-web"

    def learners_function():
        port = 5001  # noqa: F841 - a local: IPython expands it from this frame
        return ip.getoutput("echo {port} {ref} dc02-hello {who} '{{.State.Status}}' $port $$HOME cmd args")

    home = __import__("os").environ["HOME"]  # $$HOME: IPython leaves $HOME, the shell expands it
    expected = f"5001 /tmp/dc02-x1y2 dc02g3-hello dc02g3-web {{.State.Status}} 5001 {home} cmd args"
    assert learners_function() == [expected]


def test_prunes_at_once_wait_for_each_other(engine):
    """The engine refuses a second prune while one runs (409 "a prune operation is already running"):
    several notebooks on one engine (a class, a grading batch) prune at once; the course client waits."""
    import threading

    spaces = [Namespace(chapter="97", tag="p" + uuid.uuid4().hex[:6]) for _ in range(6)]
    clients = [connect(namespace=ns) for ns in spaces]
    for c, ns in zip(clients, spaces, strict=True):
        c.volumes.create(name=ns.name("scratch"))
    errors, start = [], threading.Barrier(len(clients))

    def prune(c, ns):
        start.wait()
        try:
            flt = {"label": [f"io.dockercourse.ns={ns.prefix}"]}
            if docker.utils.version_gte(c.api.api_version, "1.42"):
                flt["all"] = "true"  # Docker 23+: named volumes too
            c.volumes.prune(filters=flt)
        except docker.errors.APIError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=prune, args=pair) for pair in zip(clients, spaces, strict=True)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        for c, ns in zip(clients, spaces, strict=True):
            assert not c.volumes.list(filters={"label": f"io.dockercourse.ns={ns.prefix}"})
    finally:
        for c, ns in zip(clients, spaces, strict=True):
            clean(c, namespace=ns)


def test_cleanup_at_once_leaves_no_anonymous_volume_of_volumes_from(engine, busybox, ns):
    """The sweep removes containers several at once. `rm -v` keeps an anonymous volume another
    container still uses, so a holder and its `--volumes-from` user removed at the same moment could
    each keep it: the sweep then removes what one-after-the-other would have, never forced, so not a
    volume still in use (here by a learner's own container, which the sweep does not touch)."""
    from dockercourse.core.cleanup import _volume_name, clean_chapter

    course = connect(namespace=ns)
    anon = []
    for i in range(4):
        holder = course.containers.create(
            busybox, ["true"], mounts=[docker.types.Mount("/data", None)], name=ns.name(f"holder{i}")
        )
        course.containers.create(busybox, ["true"], volumes_from=[holder.id], name=ns.name(f"user{i}"))
        anon += [_volume_name(m) for m in holder.attrs["Mounts"]]
    kept_holder = course.containers.create(
        busybox, ["true"], mounts=[docker.types.Mount("/kept", None)], name=ns.name("kept")
    )
    shared = _volume_name(kept_holder.attrs["Mounts"][0])
    assert len(anon) == 4 and all(anon) and shared
    learners = engine.containers.create(busybox, ["true"], volumes={shared: {"bind": "/theirs"}})
    try:
        rep = clean_chapter(course, ns)
        assert len(rep.containers) == 9 and not rep.errors, rep
        left = {v.name for v in engine.volumes.list()}
        assert not left & set(anon), "anonymous volumes of volumes-from pairs left behind"
        assert shared in left, "a volume the learner's container still uses was removed"
        engine.containers.get(learners.id)
    finally:
        learners.remove()
        engine.volumes.get(shared).remove()
