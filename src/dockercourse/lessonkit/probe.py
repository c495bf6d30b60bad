"""Talk to a server the course started: an HTTP GET or a UDP datagram, retried while it starts.

A container is "running" as soon as its main process exists, a moment before that process
listens on its port; these helpers retry for a short while so a notebook cell does not race
the server. Use them only with loopback addresses (published ports) and the bridge addresses
of containers you started::

    from dockercourse.lessonkit.probe import http_get, udp_echo

    status, body = http_get(port)                  # http://127.0.0.1:<port>/
    reply = udp_echo(port, b"hello")               # one datagram to 127.0.0.1:<port>, its answer
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request


def http_get_bytes(
    port: int, path: str = "/", host: str = "127.0.0.1", wait: float = 15.0, timeout: float = 2.0
) -> tuple[int, bytes]:
    """GET ``http://host:port/path``; (status, body bytes). Retries connection errors up to ``wait`` s.

    Raises:
        ConnectionError: nothing answered within ``wait`` seconds.
    """
    url = f"http://{host}:{port}{path}"
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"nothing answered on {host}:{port} ({getattr(e, 'reason', e)})"
                ) from None
            time.sleep(0.1)


def http_get(
    port: int, path: str = "/", host: str = "127.0.0.1", wait: float = 15.0, timeout: float = 2.0
) -> tuple[int, str]:
    """Like :func:`http_get_bytes`, with the body as text."""
    status, body = http_get_bytes(port, path, host, wait, timeout)
    return status, body.decode("utf-8", "replace")


def title(html: str) -> str:
    """The text of an HTML page's ``<title>`` (or its first line when it has none)."""
    m = re.search(r"<title>(.*?)</title>", html, re.S | re.I)
    return m.group(1).strip() if m else (html.strip().splitlines() or [""])[0]


def udp_echo(
    port: int, payload: bytes, host: str = "127.0.0.1", wait: float = 5.0, timeout: float = 0.3
) -> bytes | None:
    """Send ``payload`` as one UDP datagram to ``host:port`` and return the first answer.

    UDP has no connection: a datagram sent before the server listens is simply lost, so the
    datagram is sent again every ``timeout`` seconds until an answer comes or ``wait`` runs out
    (then None).
    """
    deadline = time.monotonic() + wait
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        while time.monotonic() < deadline:
            s.sendto(payload, (host, port))
            try:
                data, _ = s.recvfrom(65535)
                return data
            except (TimeoutError, ConnectionRefusedError):
                # ConnectionRefused: an ICMP "port unreachable" came back; try again shortly
                time.sleep(0.05)
    return None
