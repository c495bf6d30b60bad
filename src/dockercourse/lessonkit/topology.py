"""Who is connected to whom: containers, networks, IP addresses and published ports.

Everything comes from the engine's own description of each container (``container.attrs``,
the same JSON as ``docker inspect``), so a picture shows what the engine really set up::

    from dockercourse.lessonkit import topology

    nodes = topology.describe([web, db, app])      # plain data read from the engine
    topology.table(nodes)                           # one line per container
    topology.draw(nodes, title="...")               # networks, IPs, published ports, links
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's inline backend
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from dockercourse.i18n.figures import figure_text, use_language  # noqa: E402
from dockercourse.lessonkit.draw import show  # noqa: E402


@dataclass
class Published:
    """One published port: ``host_ip:host_port`` on the host -> ``port`` ("80/tcp") in the container."""

    host_ip: str
    host_port: int
    port: str

    @property
    def host(self) -> str:
        ip = self.host_ip or "0.0.0.0"
        return f"[{ip}]:{self.host_port}" if ":" in ip else f"{ip}:{self.host_port}"

    def __str__(self) -> str:
        return f"{self.host} -> {self.port}"


@dataclass
class Node:
    """One container as the network sees it."""

    name: str
    image: str
    status: str
    networks: dict[str, str] = field(default_factory=dict)  # network name -> IPv4 address ("" if none)
    published: list[Published] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # alias -> linked container's name


def host_addresses(bindings) -> str:
    """The engine's port bindings (``[{"HostIp": ..., "HostPort": ...}, ...]``) as ``ip:port, [ip6]:port``."""
    return ", ".join(
        str(Published(b.get("HostIp", ""), int(b.get("HostPort") or 0), "").host) for b in bindings or []
    )


def _image_name(c) -> str:
    cfg = c.attrs.get("Config") or {}
    return cfg.get("Image") or ""


def describe(containers) -> list[Node]:
    """Read each container's networks, IPs, published ports and links from the engine.

    Args:
        containers: docker-py ``Container`` objects (they are reloaded first).
    """
    nodes = []
    for c in containers:
        c.reload()
        ns = c.attrs.get("NetworkSettings") or {}
        nets = {net: (info or {}).get("IPAddress", "") for net, info in (ns.get("Networks") or {}).items()}
        pub = []
        for port, bindings in sorted((ns.get("Ports") or {}).items()):
            for b in bindings or []:
                pub.append(Published(b.get("HostIp", ""), int(b.get("HostPort") or 0), port))
        links = {}
        for link in (c.attrs.get("HostConfig") or {}).get("Links") or []:
            # "/dc07-db:/dc07-app/db" -> alias "db" for container "dc07-db"
            target, _, alias_path = link.partition(":")
            links[alias_path.rsplit("/", 1)[-1]] = target.lstrip("/")
        nodes.append(Node(c.name, _image_name(c), c.status, nets, pub, links))
    return nodes


def table(nodes: list[Node]) -> None:
    """Print one line per container: its networks with addresses, published ports, links."""
    width = max((len(n.name) for n in nodes), default=4)
    for n in nodes:
        nets = ", ".join(f"{net} {ip or '(no address)'}" for net, ip in n.networks.items()) or "(no network)"
        line = f"{n.name:<{width}}  {n.status:<8} {nets}"
        if n.published:
            line += "  | published " + ", ".join(str(p) for p in n.published)
        if n.links:
            line += "  | links " + ", ".join(f"{alias} -> {t}" for alias, t in n.links.items())
        print(line)


_NET_COLOURS = ["#3182bd", "#31a354", "#756bb1", "#e6550d", "#636363", "#d6616b"]


_BOX_W, _BOX_H, _BOX_Y, _COL, _HOST_Y = 2.1, 1.25, 0.0, 2.5, 2.2


def _host_band(ax, nodes: list[Node], xs: dict, total_w: float) -> float:
    """The host's published addresses, one arrow per container port; returns the band's height."""
    nlines = max((len(n.published) for n in nodes), default=0)
    band_h = 0.45 + 0.24 * max(1, nlines)
    ax.add_patch(
        FancyBboxPatch(
            (-0.3, _HOST_Y), total_w + 0.6, band_h, boxstyle="round,pad=0.02", fc="#f0f0f0", ec="#969696"
        )
    )
    ax.text(-0.2, _HOST_Y + band_h - 0.15, "host", fontsize=8, weight="bold", va="center", color="#525252")
    for n in (n for n in nodes if n.published):
        x = xs[n.name]
        ax.text(
            x + _BOX_W / 2,
            _HOST_Y + 0.12,
            "\n".join(p.host for p in n.published),
            ha="center",
            va="bottom",
            fontsize=6.5,
            linespacing=1.3,
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="#969696", lw=0.6),
        )
        cports = list(dict.fromkeys(p.port for p in n.published))
        for k, port in enumerate(cports):
            px = x + _BOX_W / 2 + (k - (len(cports) - 1) / 2) * 0.6
            ax.annotate(
                "",
                xy=(px, _BOX_Y + _BOX_H),
                xytext=(px, _HOST_Y - 0.02),
                arrowprops=dict(arrowstyle="->", color="#d62728", lw=1.2),
            )
            ax.text(px + 0.06, _BOX_Y + _BOX_H + 0.12, port, fontsize=6.5, color="#d62728")
    return band_h


def _containers(ax, nodes: list[Node], xs: dict) -> None:
    for n in nodes:
        x = xs[n.name]
        fc = "#fff5eb" if n.status == "running" else "#f7f7f7"
        ax.add_patch(
            FancyBboxPatch((x, _BOX_Y), _BOX_W, _BOX_H, boxstyle="round,pad=0.03", fc=fc, ec="#e6550d")
        )
        ax.text(x + _BOX_W / 2, _BOX_Y + 0.88, n.name, ha="center", va="center", fontsize=8, weight="bold")
        ax.text(
            x + _BOX_W / 2,
            _BOX_Y + 0.5,
            n.image.replace(":", ":\n", 1) if len(n.image) > 18 else n.image,
            ha="center",
            va="center",
            fontsize=6.5,
            color="#525252",
        )
        if n.status != "running":
            ax.text(
                x + _BOX_W / 2,
                _BOX_Y + 0.15,
                n.status,
                ha="center",
                va="center",
                fontsize=6.5,
                style="italic",
            )


def _networks(ax, nodes: list[Node], xs: dict, net_order: list[str], total_w: float) -> None:
    """One horizontal line per network below the containers; a line down from each member."""
    for j, net in enumerate(net_order):
        y = -0.9 - 0.75 * j
        colour = _NET_COLOURS[j % len(_NET_COLOURS)]
        ax.plot([-0.3, total_w + 0.3], [y, y], color=colour, lw=3, solid_capstyle="round")
        ax.text(total_w + 0.4, y, net, va="center", fontsize=8, color=colour, weight="bold")
        for n in (n for n in nodes if net in n.networks):
            cx = xs[n.name] + 0.35 + 0.5 * list(n.networks).index(net)
            ax.plot([cx, cx], [_BOX_Y, y], color=colour, lw=1.2)
            ax.plot([cx], [y], marker="o", color=colour, ms=4)
            ax.text(cx + 0.06, y + 0.12, n.networks[net] or "(no address)", fontsize=6.5, color=colour)


def _links(ax, nodes: list[Node], xs: dict) -> None:
    """Dashed arrows between linked containers, above them."""
    for n in nodes:
        for alias, target in n.links.items():
            if target not in xs:
                continue
            x1, x2 = xs[n.name] + _BOX_W / 2, xs[target] + _BOX_W / 2
            top, h = _BOX_Y + _BOX_H + 0.03, min(0.75, 0.3 + 0.06 * abs(x2 - x1))
            ts = [i / 40 for i in range(41)]
            px = [x1 + (x2 - x1) * t for t in ts]
            py = [top + 4 * h * t * (1 - t) for t in ts]
            ax.plot(px[:-2], py[:-2], ls="--", color="#636363", lw=1)
            ax.annotate(
                "",
                xy=(px[-1], py[-1]),
                xytext=(px[-3], py[-3]),
                arrowprops=dict(arrowstyle="->", color="#636363"),
            )
            ax.text(
                (x1 + x2) / 2,
                top + h,
                f"--link alias '{alias}'",
                ha="center",
                va="center",
                fontsize=6.5,
                color="#636363",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"),
            )


def draw(nodes: list[Node], title: str = "Containers, networks and published ports"):
    """Draw the host's published ports (top), the containers (middle) and their networks (bottom).

    A container attached to a network has a line down to that network, labelled with its IP
    address there; a published port is an arrow from the host's ``ip:port`` to the container's
    port; a link (``--link``) is a dashed arrow labelled with its alias.
    """
    # Order: by first network (in order of appearance), so neighbours share a network.
    use_language()  # before the figure: its texts take the font then
    net_order: list[str] = []
    for n in nodes:
        net_order += [net for net in n.networks if net not in net_order]
    nodes = sorted(nodes, key=lambda n: (min((net_order.index(x) for x in n.networks), default=99),))
    ncont, nnet = max(1, len(nodes)), len(net_order)
    nlines = max((len(n.published) for n in nodes), default=0)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.35 * ncont + 1.5), 3.6 + 0.55 * nnet + 0.2 * nlines))
    xs = {n.name: i * _COL for i, n in enumerate(nodes)}
    total_w = (ncont - 1) * _COL + _BOX_W
    band_h = _host_band(ax, nodes, xs, total_w)
    _containers(ax, nodes, xs)
    _networks(ax, nodes, xs, net_order, total_w)
    _links(ax, nodes, xs)
    ax.set_xlim(-0.5, total_w + 0.5 + 0.14 * max((len(x) for x in net_order), default=0))
    ax.set_ylim(-0.9 - 0.75 * max(0, nnet - 1) - 0.5, _HOST_Y + band_h + 0.2)
    ax.axis("off")
    ax.set_title(figure_text(title))
    fig.tight_layout()
    return show(fig)
