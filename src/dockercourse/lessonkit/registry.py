"""Talking to an image registry over its HTTP API (Docker Registry HTTP API V2).

A registry (the ``registry:2`` image, Docker Hub, a mirror...) answers plain HTTP
requests under ``/v2/``. :class:`RegistryAPI` wraps the few a learner needs::

    reg = RegistryAPI("http://127.0.0.1:5000")
    reg.catalog()                        # ['dc05-hello', 'team/dc05-api']
    reg.tags("dc05-hello")               # ['1.0', 'latest']
    reg.manifest_digest("dc05-hello", "1.0")
    reg.delete_manifest("dc05-hello", digest)

Also here: :func:`htpasswd_line` (a bcrypt entry for the registry's basic auth; the
registry image has no ``htpasswd`` tool), :func:`tar_files` (files to copy into a
container with ``put_archive``) and :func:`where_picture` (what is on the engine
vs what is in registries).
"""

from __future__ import annotations

import io
import tarfile
import time

import docker.errors
import requests

from dockercourse.i18n.figures import figure_text, use_language

#: Media types a registry may return for an image manifest (Docker and OCI, single and multi-platform).
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class RegistryAPI:
    """A small client of one registry's HTTP API.

    Args:
        url: the registry's base address, ``http://127.0.0.1:5000``.
        auth: ``(username, password)`` for a registry with basic auth, or None.
        timeout: seconds per request.
    """

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.auth = auth
        self.timeout = timeout

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request to ``url + path``; the response as it came (no status check)."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("auth", self.auth)
        return requests.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def _json(self, path: str) -> dict:
        r = self.get(path)
        r.raise_for_status()
        return r.json()

    def ping(self) -> int:
        """The status of ``GET /v2/``: 200 open, 401 needs credentials."""
        return self.get("/v2/").status_code

    def wait(self, timeout: float = 15.0) -> int:
        """Wait until the registry answers ``/v2/`` (any HTTP status); return that status."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ping()
            except requests.exceptions.RequestException as e:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the registry at {self.url} did not answer within {timeout:.0f} s"
                    ) from e
                time.sleep(0.2)

    def catalog(self) -> list[str]:
        """The repositories it holds (``GET /v2/_catalog``)."""
        return self._json("/v2/_catalog").get("repositories") or []

    def tags(self, repo: str) -> list[str]:
        """The tags of one repository (``GET /v2/<repo>/tags/list``); [] when none is left."""
        r = self.get(f"/v2/{repo}/tags/list")
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return sorted(r.json().get("tags") or [])

    def manifest(self, repo: str, ref: str) -> requests.Response:
        """``GET /v2/<repo>/manifests/<tag or digest>`` asking for a v2/OCI manifest."""
        return self.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_TYPES})

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        """The manifest digest a tag points at (the ``Docker-Content-Digest`` header), or None."""
        r = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_TYPES})
        if r.status_code != 200:
            return None
        return r.headers.get("Docker-Content-Digest")

    def image_ids(self, repo: str, ref: str) -> set[str]:
        """The IDs an engine may give the image behind ``repo:ref`` (empty when the registry lacks it).

        The classic image store names an image by its configuration's digest, the containerd
        image store by its manifest's digest; an image pulled from here has one of the two.
        """
        r = self.manifest(repo, ref)
        if r.status_code != 200:
            return set()
        ids = {(r.json().get("config") or {}).get("digest"), r.headers.get("Docker-Content-Digest")}
        return {i for i in ids if i}

    def delete_manifest(self, repo: str, digest: str) -> int:
        """``DELETE /v2/<repo>/manifests/<digest>``: 202 when deleted (needs delete enabled)."""
        return self.request("DELETE", f"/v2/{repo}/manifests/{digest}").status_code

    def contents(self) -> dict[str, list[str]]:
        """Every repository and its tags: ``{"dc05-hello": ["1.0"], ...}``."""
        return {repo: self.tags(repo) for repo in self.catalog()}


class TransferError(docker.errors.APIError):
    """A push or pull the engine reported as failed inside its progress stream."""

    def __init__(self, message: str):
        super().__init__(message, response=None, explanation=message)


def follow(stream) -> dict:
    """Read a push or pull progress stream (``client.api.push/pull(..., stream=True, decode=True)``).

    The engine reports a failed push or pull inside the stream (HTTP 200 all the
    same); this raises :class:`TransferError` then. Otherwise it returns a summary::

        {"layers": {"Pushed": 1, "Layer already exists": 1}, "digest": "sha256:...", "status": "..."}

    ``layers`` counts each layer's last status (Pushed, Layer already exists,
    Already exists, Pull complete...); ``status`` is the last overall message.
    """
    last: dict[str, str] = {}
    digest = status = None
    for line in stream:
        if "error" in line:
            raise TransferError(line.get("error") or str(line))
        if "aux" in line and isinstance(line["aux"], dict):
            digest = line["aux"].get("Digest") or digest
        st = line.get("status")
        if not st:
            continue
        if line.get("id") and not st.startswith(("Pulling from", "The push")):
            if st not in (
                "Downloading",
                "Extracting",
                "Pushing",
                "Waiting",
                "Verifying Checksum",
                "Download complete",
                "Pulling fs layer",
                "Preparing",
            ):
                last[line["id"]] = st
        else:
            status = st
            if st.startswith("Digest: "):
                digest = st.split(" ", 1)[1]
            elif ": digest: sha256:" in st:  # the end of a push: "<tag>: digest: sha256:... size: N"
                digest = st.split(": digest: ", 1)[1].split()[0]
    counts: dict[str, int] = {}
    for st in last.values():
        counts[st] = counts.get(st, 0) + 1
    return {"layers": dict(sorted(counts.items())), "digest": digest, "status": status}


def htpasswd_line(user: str, password: str, rounds: int = 10) -> str:
    """One ``user:$2b$...`` line for an htpasswd file, hashed with bcrypt (the only kind the registry reads).

    Needs the ``bcrypt`` package (``pip install bcrypt``).
    """
    import bcrypt

    if ":" in user:
        raise ValueError("a user name in an htpasswd file cannot contain ':'")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return f"{user}:{hashed}\n"


def tar_files(files: dict[str, bytes | str], mode: int = 0o644) -> bytes:
    """A tar archive of ``{path: content}`` for ``container.put_archive("/", ...)`` (``docker cp``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = set()
        for path in files:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def where_picture(
    local: list[str],
    registries: dict[str, dict[str, list[str]]],
    title: str = "What is where: the engine's images and the registries' repositories",
):
    """Draw local image names (left) and each registry's repositories and tags (right).

    A line joins a local name ``host:port/repo:tag`` to the tag it was pushed to or
    pulled from in the registry ``host:port``.

    Args:
        local: image references on the engine (``client.images.list()`` tags).
        registries: registry address (``127.0.0.1:5000``) -> ``{repository: [tags]}``.
    """
    use_language()  # before the figure: its texts take the font then
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    from dockercourse.lessonkit.draw import show

    rows_r = []  # (registry, repo, tag or None)
    for reg, repos in registries.items():
        rows_r.append((reg, None, None))
        for repo, tags in sorted(repos.items()):
            if not tags:
                rows_r.append((reg, repo, None))
            for t in tags:
                rows_r.append((reg, repo, t))
    n = max(len(local), len(rows_r), 1)
    fig, ax = plt.subplots(figsize=(11, 0.42 * n + 1.6))
    top = n - 0.5
    ax.text(1.9, n + 0.25, "on the engine (docker images)", ha="center", weight="bold", fontsize=10)
    ax.text(7.6, n + 0.25, "in the registry (/v2/ API)", ha="center", weight="bold", fontsize=10)
    ypos_local = {}
    for i, ref in enumerate(local):
        y = top - i
        ax.add_patch(
            FancyBboxPatch((0, y - 0.17), 3.8, 0.34, boxstyle="round,pad=0.02", fc="#9ecae1", ec="#3182bd")
        )
        ax.text(1.9, y, ref, ha="center", va="center", fontsize=8)
        ypos_local[ref] = y
    ypos_remote = {}
    for i, (reg, repo, tag) in enumerate(rows_r):
        y = top - i
        if repo is None:
            ax.text(
                5.6, y, f"registry {reg}", ha="left", va="center", fontsize=9, weight="bold", color="#636363"
            )
            continue
        label = f"{repo}:{tag}" if tag else f"{repo}  (no tags left)"
        ax.add_patch(
            FancyBboxPatch(
                (5.8, y - 0.17),
                3.8,
                0.34,
                boxstyle="round,pad=0.02",
                fc="#c7e9c0" if tag else "#f0f0f0",
                ec="#31a354" if tag else "#969696",
            )
        )
        ax.text(7.7, y, label, ha="center", va="center", fontsize=8)
        if tag:
            ypos_remote[f"{reg}/{repo}:{tag}"] = y
    for ref, y in ypos_local.items():
        if ref in ypos_remote:
            ax.annotate(
                "",
                xy=(5.75, ypos_remote[ref]),
                xytext=(3.85, y),
                arrowprops=dict(arrowstyle="<->", color="#555", lw=1),
            )
    ax.set_xlim(-0.2, 9.8)
    ax.set_ylim(-0.6, n + 0.7)
    ax.axis("off")
    ax.set_title(figure_text(title), fontsize=11)
    fig.tight_layout()
    return show(fig)
