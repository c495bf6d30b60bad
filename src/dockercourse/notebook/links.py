"""Links a learner can click to a page a course container publishes.

On a laptop a container published on ``127.0.0.1:PORT`` is reached at ``http://127.0.0.1:PORT/``. On
a JupyterHub or Binder the browser is elsewhere: the page is reached through the single-user
server's proxy (jupyter-server-proxy), at ``<JUPYTERHUB_SERVICE_PREFIX>proxy/PORT/``, a path the
browser resolves against the hub's own address. :func:`link` picks the form; ``course.link(port)``
shows it as a clickable link (HTML) whose plain text, which nbval compares, is the URL.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

#: Set by JupyterHub (and Binder, which runs one) in every single-user server's environment.
PREFIX_VARS = ("JUPYTERHUB_SERVICE_PREFIX",)


def proxy_prefix(env: dict | None = None) -> str | None:
    """The single-user server's base path (``/user/alice/``) when behind a hub, else None."""
    env = os.environ if env is None else env
    for var in PREFIX_VARS:
        if env.get(var):
            return "/" + env[var].strip("/") + "/"
    return None


def url(port: int, path: str = "/", env: dict | None = None) -> str:
    """Where the learner's browser reaches ``path`` of a page published on ``127.0.0.1:port``."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"not a port: {port!r}")
    path = "/" + path.lstrip("/")
    prefix = proxy_prefix(env)
    if prefix:
        return f"{prefix}proxy/{int(port)}{path}"
    return f"http://127.0.0.1:{int(port)}{path}"


@dataclass
class Link:
    """A clickable link in a notebook (HTML), the URL itself as plain text."""

    href: str
    text: str = ""

    def __repr__(self) -> str:
        return self.href

    def _repr_html_(self) -> str:
        href = html.escape(self.href, quote=True)
        return f'<a href="{href}" target="_blank" rel="noopener">{html.escape(self.text or self.href)}</a>'


def link(port: int, path: str = "/", text: str = "", env: dict | None = None) -> Link:
    return Link(url(port, path, env), text)
