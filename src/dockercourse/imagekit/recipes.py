"""How each course image is made when no registry can be reached.

One recipe per role of :data:`dockercourse.core.images.COURSE_IMAGES`. The Debian
package names are the only inputs; the tags themselves come from
``dockercourse.core.images`` and are never written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Upstream-style nginx site (the Debian package's default site is replaced by it,
#: so lessons that copy files into /usr/share/nginx/html or replace
#: /etc/nginx/conf.d/default.conf behave as with the official image).
NGINX_DEFAULT_CONF = """\
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
"""

#: The official registry image's config, with Debian's binary.
REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

#: The official registry image's entrypoint.
REGISTRY_ENTRYPOINT = """\
#!/bin/sh
set -e
case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
"""


@dataclass(frozen=True)
class Recipe:
    """A course image built from Debian packages.

    ``kind`` is "busybox" (FROM scratch + busybox-static), "debian" (mmdebstrap
    minbase imported) or "layer" (Debian packages installed on the debian role's
    image, one layer). ``packages`` are the Debian packages whose versions the
    image's source label names; ``setup`` is a shell script run after they are
    installed (no network); ``config`` is the image config the layer ends with.
    """

    role: str
    kind: str
    packages: tuple[str, ...] = ()
    setup: str = ""
    config: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # path in image -> (text, mode)


RECIPES: dict[str, Recipe] = {
    "busybox": Recipe("busybox", "busybox", ("busybox-static",), config={"Cmd": ["sh"]}),
    "debian": Recipe("debian", "debian", (), config={"Cmd": ["bash"]}),
    "python": Recipe(
        "python",
        "layer",
        ("python3",),
        setup="ln -sf python3 /usr/bin/python && python --version",
        config={"Cmd": ["python3"], "Env": ["LANG=C.UTF-8"]},
    ),
    "nginx": Recipe(
        "nginx",
        "layer",
        ("nginx",),
        setup=(
            "rm -f /etc/nginx/sites-enabled/default"
            " && ln -sf /dev/stdout /var/log/nginx/access.log"
            " && ln -sf /dev/stderr /var/log/nginx/error.log"
            " && test -f /usr/share/nginx/html/index.html"
            " && nginx -t"
        ),
        config={
            "Cmd": ["nginx", "-g", "daemon off;"],
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
        },
        files={"/etc/nginx/conf.d/default.conf": (NGINX_DEFAULT_CONF, 0o644)},
    ),
    "registry": Recipe(
        "registry",
        "layer",
        ("docker-registry",),
        setup=(
            "ln -sf docker-registry /usr/bin/registry && mkdir -p /var/lib/registry"
            " && chmod 0755 /entrypoint.sh && registry --version"
        ),
        config={
            "Entrypoint": ["/entrypoint.sh"],
            "Cmd": ["/etc/docker/registry/config.yml"],
            "ExposedPorts": {"5000/tcp": {}},
            "Volumes": {"/var/lib/registry": {}},
        },
        files={
            "/etc/docker/registry/config.yml": (REGISTRY_CONFIG, 0o644),
            "/entrypoint.sh": (REGISTRY_ENTRYPOINT, 0o755),
        },
    ),
    "builder": Recipe(
        "builder",
        "layer",
        ("gcc", "make", "libc6-dev"),
        setup="gcc --version >/dev/null && make --version >/dev/null",
        config={"Cmd": ["bash"]},
    ),
}
