"""Chapter 08's BuildKit builds (lessonkit.buildkit): the real ``docker buildx build`` on the engine.

What the learner sees must be the same on every run: the steps in Dockerfile order, ``CACHED`` where
the cache answered, the output of ``RUN``; stages the target does not need are skipped; a secret
never lands in the image; a failing step raises BuildError with BuildKit's message; the chapter's
cleanup removes its cache mounts and the cache records its builds made, and nothing else's.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import time
import uuid

import docker.errors
import pytest

from dockercourse.core import buildcache
from dockercourse.core.buildcache import MOUNT_ID, build_cache
from dockercourse.core.cleanup import Sweep, remove_prefixed
from dockercourse.core.engine import connect
from dockercourse.lessonkit.build import write_files
from dockercourse.lessonkit.buildkit import _buildx_env, _run, _steps, _Stream, build, stage_names

MULTI = """\
FROM {bb} AS unused
RUN echo never needed
FROM {bb} AS builder
RUN echo compiling && echo bin > /app
FROM scratch AS final
COPY --from=builder /app /app
"""


@pytest.mark.unit
def test_stage_names_and_order_follow_the_dockerfile():
    assert stage_names(MULTI.format(bb="busybox")) == ["unused", "builder", "final"]
    assert stage_names("FROM a\nFROM b AS Two\nfrom c\n") == ["stage-0", "two", "stage-2"]
    s = _Stream()  # BuildKit reports parallel stages in any order: the record is in Dockerfile order
    for line in (
        '#0 building with "default" instance using docker driver',
        "#7 [final 1/1] COPY --from=builder /app /app",
        "#6 [builder 2/2] RUN echo compiling",
        "#5 [builder 1/2] FROM docker.io/library/busybox@sha256:" + "a" * 64,
        "#6 0.117 compiling",
        "#7 [final 1/1] COPY --from=builder /app /app",  # its header again: its output resumes
        "#7 CACHED",
        "#6 DONE 0.2s",
        "#8 [internal] load build context",
        "#8 transferring context: 3.15MB 0.1s done",
    ):
        s.feed_plain(line)
    assert s.context_bytes == 3_150_000
    rows, built = _steps(s, ["unused", "builder", "final"])
    assert [r[3].instruction for r in rows] == [
        "FROM docker.io/library/busybox",
        "RUN echo compiling",
        "COPY --from=builder /app /app",
    ]
    assert built == ["builder", "final"] and [r[3].cached for r in rows] == [False, False, True]
    assert rows[1][3].output == ["compiling"]


@pytest.mark.unit
def test_onbuild_triggers_are_named_alike_on_old_and_new_buildkit():
    s = _Stream()  # BuildKit before 0.13 (Engine 20.10) numbers a child's triggers past the total
    for i, name in enumerate(
        ("[1/1] FROM docker.io/library/dc08-base:1", "[2/1] COPY m.txt /m.txt", "[3/1] RUN echo hi")
    ):
        s.feed_plain(f"#{i + 1} {name}")
    rows, _ = _steps(s, ["stage-0"])
    got = [f"[{r[3].number}/{r[2]}] {r[3].instruction}" for r in rows]
    assert got == [
        "[1/3] FROM docker.io/library/dc08-base:1",
        "[2/3] ONBUILD COPY m.txt /m.txt",
        "[3/3] ONBUILD RUN echo hi",
    ]


@pytest.fixture
def client(ns):
    return connect(namespace=ns)


def test_multi_stage_build_cache_and_skipped_stage(client, busybox, tmp_path, capsys):
    uniq = client.api.namespace.tag  # a cold cache: the build cache is shared by every build on the engine
    ctx = write_files(tmp_path / "m", {"Dockerfile": MULTI.format(bb=busybox).replace("compiling", uniq)})
    tag = client.api.namespace.name("bk") + ":1"
    first = build(client, ctx, tag)
    out1 = capsys.readouterr().out
    assert first.skipped == ["unused"] and first.stages == ["builder", "final"]
    assert "never needed" not in out1 and f"    {uniq}" in out1
    assert f"RUN echo {uniq} && echo bin > /app\n" in out1  # ran, not CACHED
    assert out1.index("[builder 2/2]") < out1.index("[final 1/1]")
    labels = first.image.labels
    assert all(labels.get(k) == v for k, v in client.api.namespace.labels.items())
    again = build(client, ctx, tag)
    out2 = capsys.readouterr().out
    assert again.cached == 2 and out2.count("  CACHED") == 2 and f"    {uniq}" not in out2
    target = build(client, ctx, client.api.namespace.name("bk") + ":builder", target="builder", show=False)
    assert target.stages == ["builder"] and "final" in target.skipped


def test_a_secret_is_not_in_the_image_and_a_failing_step_raises(client, busybox, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-9f8e7d6c5b\n")
    ctx = write_files(
        tmp_path / "s",
        {
            "Dockerfile": (
                f"FROM {busybox}\nRUN --mount=type=secret,id=t test -s /run/secrets/t && echo read > /done\n"
            )
        },
    )
    r = build(client, ctx, client.api.namespace.name("sec") + ":1", secrets={"t": str(token)}, show=False)
    blobs = []
    with tarfile.open(fileobj=io.BytesIO(b"".join(r.image.save()))) as t:
        for m in t.getmembers():
            if m.isfile():
                data = t.extractfile(m).read()
                blobs.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    assert any(b"/done" in b or b"done" in b for b in blobs)  # the step's layer is there
    assert not any(b"tok-9f8e7d6c5b" in b for b in blobs)
    bad = write_files(tmp_path / "bad", {"Dockerfile": f"FROM {busybox}\nRUN echo oops && exit 3\n"})
    with pytest.raises(docker.errors.BuildError, match="exit code: 3"):
        build(client, bad, client.api.namespace.name("bad") + ":1")


def test_cleanup_removes_the_chapters_cache_mounts_only(client, busybox, tmp_path):
    ns = client.api.namespace
    df = "FROM {bb}\nRUN --mount=type=cache,id={id},target=/c echo {id} > /c/n\n"
    mine, other = ns.name("cm"), "dctest-other-" + ns.tag
    for i, mid in enumerate((mine, other)):
        ctx = write_files(tmp_path / f"c{i}", {"Dockerfile": df.format(bb=busybox, id=mid)})
        build(client, ctx, ns.name(f"cm{i}") + ":1", show=False)

    def mounts():
        rows = [
            r
            for r in build_cache(client.api)
            if r["Type"] == "exec.cachemount" and f"echo {ns.tag}" not in r["Description"]
        ]
        return {m.group(1) for r in rows if (m := MOUNT_ID.search(r["Description"]))}

    if client.api._version < "1.42":
        pytest.skip("Engine 20.10's BuildKit names no cache mount's id: the course cannot tell its own there")
    assert {mine, other} <= mounts()
    rep = remove_prefixed(client, ns.prefix)
    assert rep.cache_mounts == [mine]
    left = mounts()
    assert mine not in left and other in left
    sweep = Sweep(client)  # the test's own other mount, by its own id
    sweep.build_records("dctest-other-")
    assert other not in mounts()


@pytest.mark.unit
def test_engine_times_and_build_spans(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert buildcache.epoch("2026-12-05T21:31:57.873803332Z") == pytest.approx(1796506317.873803, abs=1e-5)
    assert buildcache.epoch("2026-12-05T22:31:57+01:00") == pytest.approx(1796506317.0)
    with pytest.raises(ValueError):
        buildcache.epoch("yesterday")
    buildcache.note("ID:with:colons", "dc08-", 100.0, 101.5)
    buildcache.note("ID:with:colons", "dc08-", 200.0, 200.4)
    with (tmp_path / "dockercourse/builds/ID_with_colons/dc08.jsonl").open("a") as f:
        f.write("damaged\n")
    assert buildcache.spans("ID:with:colons", "dc08-") == [(100.0, 101.5), (200.0, 200.4)]
    assert buildcache.spans("ID:with:colons", "dc07-") == [] and buildcache.spans("other", "dc08-") == []

    def row(t, **kw):
        return {"Type": "regular", "InUse": False, "CreatedAt": t, **kw}

    spans = buildcache.spans("ID:with:colons", "dc08-")
    inside, before = "1970-01-01T00:01:41.9Z", "1970-01-01T00:01:39.4Z"  # 101.9 s; 99.4 s
    assert buildcache.created_within(row(inside), spans)
    assert not buildcache.created_within(row(before), spans)  # a learner's build a second before
    assert not buildcache.created_within(row(inside, InUse=True), spans)  # a build still running
    assert not buildcache.created_within(row(inside, Type="exec.cachemount"), spans)  # by its id only
    assert not buildcache.created_within(row(inside, Type="internal"), spans)
    assert buildcache.created_within(row(inside, Type="source.local"), spans)
    assert buildcache.noted("dc08-") and not buildcache.noted("dc07-")
    buildcache.forget("ID:with:colons", "dc08-")
    assert buildcache.spans("ID:with:colons", "dc08-") == [] and not buildcache.noted("dc08-")
    buildcache.forget("ID:with:colons", "dc08-")  # twice: nothing to forget


def _records(api, *words):
    return {w: [r["ID"] for r in build_cache(api) if w in (r.get("Description") or "")] for w in words}


def test_cleanup_removes_the_build_cache_records_of_the_courses_builds_only(client, busybox, tmp_path):
    """A learner's own builds just before and after the course's keep their records, also one the
    course's build reused (CACHED); the records the course's build made go with the chapter's clean-up."""
    api, ns, u = client.api, client.api.namespace, uuid.uuid4().hex[:10]
    found = _buildx_env(client)
    if found is None:
        pytest.skip("no docker buildx for this engine")
    learner_tag = f"learner-{u}:1"  # not the course's: no prefix, no label, never noted

    def learners_build(folder, text):
        ctx = write_files(tmp_path / folder, {"Dockerfile": text})
        _, other, rc = _run([*found[0], "--progress=plain", "-t", learner_tag, str(ctx)], found[1])
        assert rc == 0, other
        time.sleep(buildcache.MARGIN_S + 0.3)  # the learner's builds are outside the course's spans

    shared = f"RUN echo learner-{u} > /l\n"
    try:
        learners_build("l1", f"FROM {busybox}\n{shared}")
        course_df = f"FROM {busybox}\n{shared}RUN echo course-{u} > /c\n"
        ctx = write_files(tmp_path / "c", {"Dockerfile": course_df})
        r = build(client, ctx, ns.name("bc") + ":1", show=False)
        assert r.cached == 1  # the learner's step, reused
        time.sleep(buildcache.MARGIN_S + 0.3)
        learners_build("l2", f"FROM {busybox}\nRUN echo later-{u} > /l\n")
        before = _records(api, f"learner-{u}", f"course-{u}", f"later-{u}")
        assert all(before.values()), before
        rep = remove_prefixed(client, ns.prefix)
        after = _records(api, f"learner-{u}", f"course-{u}", f"later-{u}")
        assert after[f"course-{u}"] == [] and rep.build_records >= 1
        assert after[f"learner-{u}"] == before[f"learner-{u}"] and after[f"later-{u}"] == before[f"later-{u}"]
        assert buildcache.spans(buildcache.engine_clock(api)[0], ns.prefix) == []  # forgotten
    finally:  # the test's own "learner" leaves nothing either
        client.images.remove(learner_tag, force=True)
        ids = [i for v in _records(api, f"learner-{u}", f"later-{u}").values() for i in v]
        if ids:
            flt = json.dumps({"id": ["^(" + "|".join(map(re.escape, ids)) + ")$"]})
            api._raise_for_status(api._post(api._url("/build/prune"), params={"filters": flt}))


@pytest.mark.unit
def test_the_buildx_plugin_is_run_directly_only_when_it_is_the_one_docker_runs(tmp_path):
    from dockercourse.core.dockercli import DockerCLI
    from dockercourse.lessonkit.buildkit import _plugin_binary

    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    fake = plugins / "docker-buildx"
    fake.write_text("#!/bin/sh\necho 'github.com/docker/buildx 0.29.1 0.29.1+ds1-4'\n")
    fake.chmod(0o755)
    cli = DockerCLI("/usr/bin/docker", "28.5.2", "PATH")
    line = b"github.com/docker/buildx 0.29.1 0.29.1+ds1-4\n"
    assert _plugin_binary(cli, str(tmp_path), {}, line) == str(fake)
    # another version than `docker buildx version` printed: not the plugin docker runs, so through docker
    assert _plugin_binary(cli, str(tmp_path), {}, b"github.com/docker/buildx 0.13.1\n") is None
    fake.chmod(0o644)  # not runnable: docker would not run it either; the next folder is looked at
    other = DockerCLI("/usr/bin/docker", "28.5.2", "PATH", plugins=str(tmp_path / "none"))
    assert _plugin_binary(other, str(tmp_path), {}, b"no such version\n") is None


RACE = (
    'failed to prepare extraction snapshot "extract-189321429-1kZo sha256:8c4d": '
    "parent snapshot sha256:7e3c does not exist: not found"
)


def _fake_buildx(tmp_path, failures: list[str]):
    """A program that answers like ``docker buildx build --progress=plain``: run N fails with
    ``failures[N]`` (BuildKit's words for that step), a run past the list succeeds."""
    count = tmp_path / "runs"
    script = tmp_path / "buildx"
    lines = {
        i: f"#5 [2/2] RUN echo hi\\n#5 ERROR: {msg}\\nERROR: failed to solve: {msg}\\n"
        for i, msg in enumerate(failures)
    }
    cases = "".join(f"  {i}) printf '{text}' >&2; exit 1;;\n" for i, text in lines.items())
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{count}" 2>/dev/null || echo 0); echo $((n + 1)) > "{count}"\n'
        "printf '#4 [1/2] FROM docker.io/library/busybox:1.35.0\\n' >&2\n"
        f'case "$n" in\n{cases}esac\n'
        "printf '#5 [2/2] RUN echo hi\\n#5 0.101 hi\\n#5 DONE 0.1s\\n' >&2\n"
    )
    script.chmod(0o755)
    return [str(script)], count


@pytest.mark.unit
def test_the_engines_snapshot_race_is_built_again_and_a_dockerfile_error_is_not(tmp_path, monkeypatch):
    """BuildKit on the containerd store can lose a parent snapshot for a moment (moby/buildkit#6521;
    once in CI: chapter 08's cache cell, run in the browser). The same build run again succeeds: it is
    run again, at most RETRIES times. A failing step of the learner's Dockerfile is not run again."""
    from dockercourse.lessonkit import buildkit

    monkeypatch.setattr(buildkit.time, "sleep", lambda s: None)
    (tmp_path / "race").mkdir()
    args, count = _fake_buildx(tmp_path / "race", [RACE])
    stream, other, rc, runs = buildkit._run_retrying(args, {})
    assert (rc, runs, count.read_text().strip()) == (0, 2, "2")
    rows, _ = _steps(stream, ["stage-0"])
    assert [(r[3].instruction, r[3].output) for r in rows] == [
        ("FROM docker.io/library/busybox:1.35.0", []),
        ("RUN echo hi", ["hi"]),
    ]

    (tmp_path / "always").mkdir()
    args, count = _fake_buildx(tmp_path / "always", [RACE] * 5)
    stream, other, rc, runs = buildkit._run_retrying(args, {})
    assert (rc, runs) == (1, 1 + buildkit.RETRIES)  # bounded: then the learner sees BuildKit's error
    assert any("parent snapshot" in line for line in other)

    (tmp_path / "step").mkdir()
    args, count = _fake_buildx(tmp_path / "step", ["process did not complete successfully: exit code: 127"])
    stream, other, rc, runs = buildkit._run_retrying(args, {})
    assert (rc, runs, count.read_text().strip()) == (1, 1, "1")
    assert stream.vertices["5"]["error"] == "process did not complete successfully: exit code: 127"


def test_cleanup_removes_a_multi_stage_builds_records_too(client, busybox, tmp_path):
    """BuildKit marks the records of a multi-stage build's first stage "Shared" and keeps them from a
    plain prune (chapter 08's exercise 5 left 2 on each run): the clean-up removes them as well."""
    api, ns, u = client.api, client.api.namespace, uuid.uuid4().hex[:10]
    if _buildx_env(client) is None:
        pytest.skip("no docker buildx for this engine")
    note = f"note-{u}.txt"
    ctx = write_files(
        tmp_path / "ms",
        {
            note: f"stage-{u}\n",
            "Dockerfile": f"FROM {busybox} AS build\nCOPY {note} /src/{note}\n"
            f"RUN cp /src/{note} /made-{u}\nFROM scratch\nCOPY --from=build /made-{u} /made\n",
        },
    )
    build(client, ctx, ns.name("ms") + ":1", show=False)
    assert _records(api, f"made-{u}")[f"made-{u}"]  # the first stage's RUN (the COPYs name u too)
    remove_prefixed(client, ns.prefix)
    assert _records(api, u) == {u: []}  # every record of this build (descriptions differ by engine)


def test_image_sizes_of_one_named_image_match_the_whole_listing(client, busybox, tmp_path):
    """``image_sizes`` asks the engine for one name's row (the containerd store sizes every image it lists);
    the figures are those of the whole listing, for a named image and for one known only by its ID."""
    from dockercourse.lessonkit.layers import image_sizes

    ctx = write_files(
        tmp_path / "s", {"Dockerfile": f"FROM {busybox}\nRUN head -c 300000 /dev/zero > /blob\n"}
    )
    img = build(client, ctx, client.api.namespace.name("sizes") + ":1", show=False).image
    sizes = image_sizes(client, img)
    if "Descriptor" not in img.attrs:  # the classic store: its own Size, no content kept
        assert sizes == {"unpacked": img.attrs["Size"], "content": None}
        return

    def whole(image):
        rows = client.api._result(
            client.api._get(client.api._url("/images/json"), params={"manifests": "1", "all": "1"}), True
        )
        m = [
            m
            for r in rows
            if r["Id"] == image.id
            for m in r.get("Manifests") or []
            if m.get("Kind") == "image"
        ]
        return {"unpacked": m[0]["ImageData"]["Size"]["Unpacked"], "content": m[0]["Size"]["Content"]}

    assert sizes == whole(img)
    assert sizes["unpacked"] > image_sizes(client, client.images.get(busybox))["unpacked"] + 250_000
    box = client.containers.create(img.id, ["sh", "-c", "head -c 200000 /dev/zero > /more"])
    box.start()
    box.wait()
    nameless = box.commit()  # docker commit without a name: an image known by its ID only
    box.remove()
    assert not nameless.tags and image_sizes(client, nameless) == whole(nameless) != sizes
