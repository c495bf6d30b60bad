"""Offline builders: the course images made from the host's Debian packages.

Every image is made under a temporary tag (``dockercourse-kit-tmp/<role>:<id>``)
and given its pinned name only once it is complete, so a failure never leaves a
half-made image under a course name. Build containers get no network: packages
are downloaded on the host (see :mod:`.debian`) and copied in.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import docker.errors
import requests.exceptions

from dockercourse.core.labels import KIT as KIT_LABEL
from dockercourse.errors import ImageKitError
from dockercourse.imagekit import debian
from dockercourse.imagekit.naming import (
    BUILD_CONTAINER_PREFIX,
    kit_labels,
    split_ref,
    tmp_ref,
)
from dockercourse.imagekit.recipes import RECIPES, Recipe

#: Host-side apt work (resolve, download) runs one at a time; container work in parallel.
_APT_LOCK = threading.Lock()
STAGE = "/tmp/dockercourse-kit"


def _label_change(source: str) -> list[str]:
    return [f'LABEL {k}="{v}"' for k, v in kit_labels(source).items()]


def finish(client, tmp: str, ref: str, replace: bool = False) -> None:
    """Give the image built under ``tmp`` its pinned name, then drop ``tmp``.

    Refuses (and cleans up) when ``ref`` appeared meanwhile and ``replace`` is
    False: an image someone else put under the pinned name is never replaced.
    """
    name, tag = split_ref(ref)
    old = None
    try:
        try:
            old = client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        if old is not None and not replace:
            return
        client.images.get(tmp).tag(name, tag)
    finally:
        discard(client, tmp)
    if old is not None:
        _drop_replaced(client, old)


def _drop_replaced(client, old) -> None:
    """The kit's image a rebuild replaced, once nothing names it (else every cold rebuild would
    leave a dangling copy of, e.g., the 380 MB gcc image behind). Only the kit's own (its label),
    and never one a container still uses (no force: the engine refuses, and it stays)."""
    try:
        old.reload()
    except docker.errors.ImageNotFound:
        return
    if old.tags or (old.labels or {}).get(KIT_LABEL) != "1":
        return
    try:
        client.images.remove(old.id)
    except docker.errors.APIError:
        pass


def discard(client, tmp: str) -> None:
    """Remove a temporary tag (and the image if nothing else names it)."""
    try:
        client.images.remove(tmp)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError:
        pass


def _import(client, data_or_path, tmp: str, config: dict, source: str) -> None:
    name, tag = split_ref(tmp)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"CMD {_json(config['Cmd'])}",
    ] + _label_change(source)
    if isinstance(data_or_path, (bytes, bytearray)):
        resp = client.api.import_image_from_data(data_or_path, repository=name, tag=tag, changes=changes)
    else:
        resp = client.api.import_image_from_file(str(data_or_path), repository=name, tag=tag, changes=changes)
    if "error" in str(resp).lower():
        raise ImageKitError(f"the engine refused to import the image: {str(resp)[:200]}")


def _json(v) -> str:
    import json

    return json.dumps(v)


def build_busybox(client, ref: str, log) -> str:
    """FROM scratch + Debian's busybox-static, every applet linked in /bin like upstream."""
    with tempfile.TemporaryDirectory(prefix="dc-kit-") as td:
        binary, version = debian.busybox_binary(Path(td))
        applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True).stdout.split()
        if "sh" not in applets:
            raise ImageKitError(f"{binary} does not look like busybox-static (no sh applet)")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:

            def add_dir(path, mode=0o755):
                ti = tarfile.TarInfo(path)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, int(time.time())
                tf.addfile(ti)

            def add_file(path, data: bytes, mode=0o644):
                ti = tarfile.TarInfo(path)
                ti.size, ti.mode, ti.mtime = len(data), mode, int(time.time())
                tf.addfile(ti, io.BytesIO(data))

            for d in (
                "bin",
                "dev",
                "etc",
                "home",
                "proc",
                "root",
                "sys",
                "usr",
                "usr/sbin",
                "var",
                "var/spool",
                "var/spool/mail",
                "var/www",
            ):
                add_dir(d, 0o700 if d == "root" else 0o755)
            add_dir("tmp", 0o1777)
            add_file("bin/busybox", binary.read_bytes(), 0o755)
            for a in applets:
                if a == "busybox":
                    continue
                ti = tarfile.TarInfo(f"bin/{a}")
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, "bin/busybox", 0o755
                tf.addfile(ti)
            add_file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                b"bin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\n"
                b"www-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            )
            add_file(
                "etc/group",
                b"root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nwww-data:x:33:\ntty:x:5:\nnogroup:x:65534:\n",
            )
            add_file("etc/shadow", b"root:*:10933:0:99999:7:::\nnobody:*:10933:0:99999:7:::\n", 0o600)
        tmp = tmp_ref("busybox")
        source = f"built locally from Debian bookworm: busybox-static {version}"
        _import(client, buf.getvalue(), tmp, RECIPES["busybox"].config, source)
    return tmp


#: Debian's minbase bootstrapped in a busybox container (root there, no network), as mmdebstrap
#: does: unpack every package, then let dpkg install them all; merged /usr, the slim images'
#: exclusions (written to the image's dpkg configuration, and applied to what the first unpacking
#: put there). The result is copied out of the container as a tar and imported. Compared with
#: mmdebstrap's minbase (2026-12-06): the same 88 packages, the same files but for a few empty
#: documentation folders.
_BOOTSTRAP = """\
set -e
R=/rootfs
mkdir -p $R/usr/bin $R/usr/sbin $R/usr/lib $R/usr/lib64
for d in bin sbin lib lib64; do ln -s usr/$d $R/$d; done
for d in {stage}/debs/*.deb; do dpkg-deb -x "$d" $R; done
# what the exclusions keep out, gone before dpkg installs (which then writes only what they allow)
for p in man info locale groff linda lintian; do rm -rf $R/usr/share/$p/*; done
find $R/usr/share/doc ! -type d ! -name copyright -exec rm -f {{}} +
mkdir -p $R/etc/dpkg/dpkg.cfg.d $R/etc/apt $R/var/lib/dpkg/info $R/var/lib/dpkg/updates \\
  $R/var/cache/apt/archives/partial
: > $R/var/lib/dpkg/status
: > $R/var/lib/dpkg/available
printf '%s\\n' {slim} > $R/etc/dpkg/dpkg.cfg.d/docker
printf '#!/bin/sh\\nexit 101\\n' > $R/usr/sbin/policy-rc.d
chmod 755 $R/usr/sbin/policy-rc.d
mv {stage}/debs/*.deb $R/var/cache/apt/archives/
chroot $R /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \\
  DEBIAN_FRONTEND=noninteractive sh -c \\
  'dpkg --force-depends --install /var/cache/apt/archives/*.deb >/tmp/dpkg.log 2>&1 \\
   && dpkg --configure -a >>/tmp/dpkg.log 2>&1 || {{ tail -n 5 /tmp/dpkg.log; exit 1; }}'
printf '%s\\n' {sources} > $R/etc/apt/sources.list
echo '# UNCONFIGURED FSTAB FOR BASE SYSTEM' > $R/etc/fstab
rm -rf $R/usr/sbin/policy-rc.d $R/var/cache/apt/archives/*.deb $R/etc/hostname $R/etc/resolv.conf \\
  $R/tmp/* $R/var/log/dpkg.log $R/var/log/apt/* $R/var/log/alternatives.log $R/var/cache/debconf/*-old \\
  $R/var/lib/dpkg/*-old
echo bootstrapped
"""


def _bootstrap_script() -> str:
    import shlex

    from dockercourse.engines.specs import DEBIAN_MIRROR

    plain = debian.sources_text(DEBIAN_MIRROR).replace("[signed-by=" + debian.KEYRING + "] ", "")
    return _BOOTSTRAP.format(
        stage=STAGE,
        slim=" ".join(shlex.quote(o) for o in debian.SLIM_DPKG_OPTS),
        sources=" ".join(shlex.quote(line) for line in plain.splitlines()),
    )


def build_debian(client, ref: str, log, timeout: int = 900) -> str:
    """Debian bookworm's minbase (what ``mmdebstrap --variant=minbase`` makes), bootstrapped in a
    container of the busybox image: no root, no mmdebstrap and no network on the host's side beyond
    apt's download. Imported as one layer with ``CMD ["bash"]``."""
    from dockercourse.core.images import COURSE_IMAGES

    with _APT_LOCK:
        pkgs = debian.resolve(debian.minbase_packages(), "")
        debs = debian.fetch(pkgs)
    buf = _packages_tar(debs, RECIPES["debian"])
    c = None
    try:
        c = _run_in_container(
            client, "debian", COURSE_IMAGES["busybox"], _bootstrap_script(), buf, timeout, "bootstrapping"
        )
        status = _archive_file(c, "/rootfs/var/lib/dpkg/status")
        v = debian.dpkg_versions(status, {"base-files", "libc6", "dpkg", "apt"})
        source = (
            "built locally from Debian bookworm: minbase, bootstrapped in a container "
            f"({len(pkgs)} packages; "
            + ", ".join(f"{k} {v[k]}" for k in ("base-files", "libc6", "dpkg", "apt") if k in v)
            + ")"
        )
        tmp = tmp_ref("debian")
        with tempfile.TemporaryDirectory(prefix="dc-kit-", dir=str(debian.kit_cache())) as td:
            rootfs = Path(td) / "rootfs.tar"
            stream, _ = c.get_archive("/rootfs/.")
            with open(rootfs, "wb") as f:
                for chunk in stream:
                    f.write(chunk)
            _import(client, rootfs, tmp, RECIPES["debian"].config, source)
        return tmp
    finally:
        buf.close()
        if c is not None:
            _remove_quietly(c, "debian", log)


def _archive_file(c, path: str) -> str:
    stream, _ = c.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
        return tf.extractfile(tf.getmembers()[0]).read().decode()


def _remove_quietly(c, role: str, log) -> None:
    try:
        c.remove(force=True)
    except docker.errors.APIError as e:
        log(f"{role}: the build container {c.name} could not be removed: {e}")


def _read_file(client, image: str, path: str) -> str:
    c = client.containers.create(image, command=["true"], network_mode="none")
    try:
        stream, _ = c.get_archive(path)
        data = b"".join(stream)
    finally:
        c.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        m = tf.getmembers()[0]
        return tf.extractfile(m).read().decode()


def _packages_tar(debs, recipe: Recipe):
    """The .deb files and the recipe's extra files, as a tar to copy into the build container."""
    buf = tempfile.TemporaryFile()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in debs:
            tf.add(str(d), arcname=f"dockercourse-kit/debs/{d.name}")
        for path, (text, mode) in recipe.files.items():
            data = text.encode()
            ti = tarfile.TarInfo(f"dockercourse-kit/files{path}")
            ti.size, ti.mode = len(data), mode
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def _install_script(recipe: Recipe) -> str:
    return "\n".join(
        [
            "set -e",
            "export DEBIAN_FRONTEND=noninteractive LC_ALL=C",
            # like the official images: no daemon starts while packages are installed
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d",
            f"apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "
            f"{STAGE}/debs/*.deb",
            f"if [ -d {STAGE}/files ]; then cp -a {STAGE}/files/. /; fi",
            recipe.setup or "true",
            f"rm -rf {STAGE} /usr/sbin/policy-rc.d /var/lib/apt/lists/* /var/cache/apt/*.bin "
            "/var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log "
            "/var/log/alternatives.log",
        ]
    )


def _layer_config(recipe: Recipe, source: str) -> dict:
    """The image configuration the committed layer gets: the recipe's, and the kit's labels."""
    conf = {
        "Cmd": recipe.config.get("Cmd"),
        "Entrypoint": recipe.config.get("Entrypoint") or [],
        "Labels": kit_labels(source),
    }
    for k in ("ExposedPorts", "Volumes", "StopSignal", "Env"):
        if k in recipe.config:
            conf[k] = recipe.config[k]
    if "Env" in conf:
        conf["Env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *conf["Env"]]
    return conf


def _run_in_container(client, role: str, image: str, script: str, buf, timeout: int, what: str):
    """Run ``script`` in a container of ``image`` without network, ``buf`` (a tar) unpacked in /tmp
    first; the container, stopped, for the caller to copy from or commit (and then remove)."""
    name = f"{BUILD_CONTAINER_PREFIX}{role}-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    c = client.containers.create(
        image,
        command=["sh", "-c", script],
        name=name,
        network_mode="none",
        labels=kit_labels(f"build container for {role}"),
    )
    try:
        if not c.put_archive("/tmp", buf):
            raise ImageKitError(f"{role}: could not copy the Debian packages into the build container")
        c.start()
        try:
            res = c.wait(timeout=timeout)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            raise ImageKitError(f"{role}: {what} took longer than {timeout} s") from None
        if res.get("StatusCode") != 0:
            tail = c.logs(tail=6).decode(errors="replace").strip().splitlines()
            last = tail[-1] if tail else "(no output)"
            raise ImageKitError(f"{role}: {what} failed: {last[:240]}")
    except BaseException:
        c.remove(force=True)  # nothing of a failed build stays (the caller only removes a returned container)
        raise
    return c


def build_layer(client, role: str, base_ref: str, log, timeout: int = 600) -> str:
    """Debian packages installed onto the debian image, committed as one layer."""
    recipe: Recipe = RECIPES[role]
    base_status = _read_file(client, base_ref, "/var/lib/dpkg/status")
    with _APT_LOCK:
        pkgs = debian.resolve(list(recipe.packages), base_status)
        if not pkgs:
            raise ImageKitError(f"{role}: apt planned nothing to install for {' '.join(recipe.packages)}")
        debs = debian.fetch(pkgs)
    versions = {n: v for n, v, _ in pkgs}
    shown = [f"{p} {versions[p]}" for p in recipe.packages if p in versions]
    extra = {"gcc": "gcc-12", "python3": "python3.11"}
    shown += [
        f"{extra[p]} {versions[extra[p]]}" for p in recipe.packages if p in extra and extra[p] in versions
    ]
    source = (
        f"built locally from Debian bookworm: {', '.join(shown)} "
        f"(+{len(pkgs) - len(shown)} dependencies) on {base_ref}"
    )
    buf = _packages_tar(debs, recipe)
    c = None
    try:
        what = f"installing {' '.join(recipe.packages)}"
        c = _run_in_container(client, role, base_ref, _install_script(recipe), buf, timeout, what)
        tmp = tmp_ref(role)
        repo, tag = split_ref(tmp)
        c.commit(repository=repo, tag=tag, conf=_layer_config(recipe, source))
        return tmp
    finally:
        buf.close()
        if c is not None:
            _remove_quietly(c, role, log)


def build(client, role: str, ref: str, base_ref: str | None, log) -> str:
    """Build one role offline; return its temporary tag."""
    kind = RECIPES[role].kind
    if kind == "busybox":
        return build_busybox(client, ref, log)
    if kind == "debian":
        return build_debian(client, ref, log)
    if not base_ref:
        raise ImageKitError(f"{role}: the Debian image it builds on is missing")
    return build_layer(client, role, base_ref, log)
