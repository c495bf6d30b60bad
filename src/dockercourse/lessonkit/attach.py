"""Drive an interactive container session from Python: ``docker run -it``, ``docker attach``,
``docker exec -it``.

A terminal in a container is a byte stream on a socket: what you type goes in,
what the TTY prints (the echo of your typing, the program's output, the prompt)
comes out. :class:`Terminal` wraps that socket so a notebook can type a line and
read the answer::

    box = client.containers.create(BUSYBOX, ["sh"], stdin_open=True, tty=True,   # -i -t
                                   environment={"PS1": "box$ "})
    term = Terminal.attach(client, box)     # attach *before* start, as `docker run -it` does
    box.start()
    term.read(until="box$ ")                 # the banner and the first prompt
    term.run("echo hello", prompt="box$ ")   # -> "hello"
    term.detach()                            # Ctrl-P Ctrl-Q: leave it running

Output is returned as text with terminal escape sequences removed and ``\\r\\n``
turned into ``\\n``.
"""

from __future__ import annotations

import re
import time

#: ANSI/VT100 escape sequences (cursor queries, colours) a TTY may send.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")
#: The default detach keys of docker: Ctrl-P then Ctrl-Q.
DETACH_KEYS = b"\x10\x11"

ATTACH_PARAMS = {"stdin": 1, "stream": 1, "stdout": 1, "stderr": 1}


def clean(data: bytes) -> str:
    """Decode TTY output: drop escape sequences, normalise line ends."""
    text = data.decode("utf-8", "replace")
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


class Terminal:
    """One client's end of a container's TTY (an attach or an exec socket)."""

    def __init__(self, sock, label: str = ""):
        self._wrapper = sock  # keep the docker-py wrapper alive with its socket
        self.sock = getattr(sock, "_sock", sock)
        self.sock.settimeout(0.05)
        self.label = label
        self.closed = False  # the other end closed the stream (the process ended, or we detached)
        self.exec_id: str | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def attach(cls, client, container, label: str = "") -> Terminal:
        """``docker attach``: join the container's main process's stdin/stdout/stderr."""
        cid = getattr(container, "id", container)
        return cls(client.api.attach_socket(cid, params=dict(ATTACH_PARAMS)), label=label)

    @classmethod
    def exec(cls, client, container, cmd, label: str = "", **kwargs) -> Terminal:
        """``docker exec -it CONTAINER CMD``: a new process in a running container, with its own TTY."""
        cid = getattr(container, "id", container)
        ex = client.api.exec_create(cid, cmd, stdin=True, tty=True, **kwargs)
        term = cls(client.api.exec_start(ex["Id"], tty=True, socket=True), label=label)
        term.exec_id = ex["Id"]
        return term

    # ------------------------------------------------------------------ talking

    def send(self, text: str | bytes) -> None:
        """Type ``text`` (add ``\\n`` yourself to press Enter)."""
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def read(self, until: str | None = None, timeout: float = 5.0, quiet: float | None = 0.3) -> str:
        """Read what the terminal prints.

        Stops when the cleaned text ends with ``until`` (a prompt), when the stream
        closes, when ``timeout`` seconds have passed, or — without ``until`` — when
        nothing more arrived for ``quiet`` seconds (``quiet=None``: only the first three, to wait
        for a process that is ending to close its stream, however slow the engine).
        """
        data = b""
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if now - start >= timeout:
                break
            if until is None and quiet is not None and now - last >= quiet:
                break
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            data += chunk
            last = time.monotonic()
            if until is not None and clean(data).endswith(until):
                break
        return clean(data)

    def run(self, command: str, prompt: str, timeout: float = 5.0) -> str:
        """Type ``command`` and Enter, read up to the next prompt; return only the command's output."""
        self.send(command + "\n")
        text = self.read(until=prompt, timeout=timeout)
        if text.endswith(prompt):
            text = text[: -len(prompt)]
        lines = text.split("\n")
        if lines and lines[0].strip() == command.strip():  # the TTY echoes what was typed
            lines = lines[1:]
        return "\n".join(lines).rstrip("\n")

    def detach(self, keys: bytes = DETACH_KEYS) -> None:
        """Send the detach keys (Ctrl-P Ctrl-Q): the client leaves, the process keeps running."""
        self.send(keys)
        self.read(quiet=0.2, timeout=1.0)
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
