"""Checks for chapter 07, port mapping and linking: a published page, a link alias, DNS on a network, UDP."""

import time

from dockercourse import BUSYBOX, NGINX
from dockercourse.checks import NotYet, exercise
from dockercourse.lessonkit.probe import udp_echo


def _wget(ctx, c, url, tries=10):
    """wget ``url`` inside ``c``; retried briefly, since a server starts a moment after its container."""
    for _ in range(tries):
        code, out = ctx.exec(c, ["timeout", "5", "wget", "-qO-", url])
        if code == 0:
            break
        time.sleep(0.3)
    return code, out


def _get(ctx, port, tries=10):
    """GET http://127.0.0.1:port/, retried briefly while nothing answers yet."""
    for i in range(tries):
        try:
            return ctx.http_get("127.0.0.1", port)
        except NotYet:
            if i == tries - 1:
                raise
            time.sleep(0.3)


def _running(ctx, c):
    ctx.require(c.status == "running", f"{c.name} is {c.status}, not running")


# --------------------------------------------------------------------------- 07.publish


@exercise(
    "07.publish",
    title="serve your own page on a loopback port",
    nudge="Section 2 explains the forms of -p (ports= in docker-py), including binding to one address; nginx "
    "serves the files in its html folder.",
    hint="Run NGINX named name('site') with ports={'80/tcp': ('127.0.0.1', course.free_port())}, then write "
    "a page containing 'Ports are open' to /usr/share/nginx/html/index.html (for example with "
    "site.exec_run(['sh', '-c', \"echo 'Ports are open' > /usr/share/nginx/html/index.html\"])).",
)
def publish(ctx):
    c = ctx.container("site")
    _running(ctx, c)
    host, port = ctx.published_port(c, "80/tcp")
    ctx.require(host == "127.0.0.1", f"port 80 is published on {host or 'all interfaces'}, not on 127.0.0.1")
    status, body = _get(ctx, port)
    ctx.require(status == 200, f"GET http://127.0.0.1:{port}/ answered {status}, not 200")
    ctx.require(
        b"Ports are open" in body, f"the page at http://127.0.0.1:{port}/ does not contain 'Ports are open'"
    )


@publish.hidden
def publish_nginx_only_loopback(ctx):
    c = ctx.container("site")
    ctx.require(c.image.id == ctx.client.images.get(NGINX).id, f"dc07-site was not made from {NGINX}")
    bindings = (c.attrs["NetworkSettings"].get("Ports") or {}).get("80/tcp") or []
    ctx.require(
        all(b.get("HostIp") == "127.0.0.1" for b in bindings), "port 80 is also published beyond 127.0.0.1"
    )


# --------------------------------------------------------------------------- 07.link


@exercise(
    "07.link",
    title="reach a container through a link alias",
    nudge="Section 5 shows legacy links: the links= option (docker run --link) lets one container reach "
    "another under an alias.",
    hint="Run NGINX named name('shop'), then BUSYBOX named name('buyer') with the command sleep 3600 and "
    "links={name('shop'): 'store'} (CLI: --link dc07-shop:store).",
)
def link(ctx):
    shop = ctx.container("shop")
    buyer = ctx.container("buyer")
    _running(ctx, shop)
    _running(ctx, buyer)
    links = _links(buyer)
    ctx.require(
        (shop.name, "store") in links,
        f"{buyer.name} is not linked to {shop.name} with the alias 'store' (its links: {sorted(links)})",
    )
    code, out = _wget(ctx, buyer, "http://store/")
    ctx.require(
        code == 0 and "nginx" in out, f"wget http://store/ in {buyer.name} failed: {out.strip()[:80]}"
    )


def _links(c) -> set[tuple[str, str]]:
    """(container name, alias) of a container's links: on the default bridge in
    ``HostConfig.Links`` (``/dc07-shop:/dc07-buyer/store``), on a user-defined network in that
    network's ``Links`` (``dc07-shop:store``); both are valid ways to link."""
    out = set()
    for item in c.attrs["HostConfig"].get("Links") or []:
        target, _, alias = item.partition(":")
        out.add((target.lstrip("/"), alias.rsplit("/", 1)[-1]))
    for net in (c.attrs.get("NetworkSettings") or {}).get("Networks", {}).values():
        for item in (net or {}).get("Links") or []:
            target, _, alias = item.partition(":")
            out.add((target.lstrip("/"), alias or target))
    return out


@link.hidden
def link_env(ctx):
    shop, buyer = ctx.container("shop"), ctx.container("buyer")
    ctx.require(
        buyer.image.id == ctx.client.images.get(BUSYBOX).id, f"dc07-buyer was not made from {BUSYBOX}"
    )
    # a link on the default bridge sets STORE_PORT_80_TCP_ADDR (up to Engine 28; Engine 29 no
    # longer does, nor does a link on a user-defined network): when it is there, it must be right
    code, out = ctx.exec(buyer, ["sh", "-c", "echo $STORE_PORT_80_TCP_ADDR"])
    if out.strip():
        ips = {(n or {}).get("IPAddress") for n in shop.attrs["NetworkSettings"]["Networks"].values()}
        ctx.require(out.strip() in ips, "STORE_PORT_80_TCP_ADDR in dc07-buyer is not dc07-shop's address")


# --------------------------------------------------------------------------- 07.dns


@exercise(
    "07.dns",
    title="find each other by name on a user-defined network",
    nudge="Section 6 shows user-defined networks, where containers find each other by name: make a network "
    "and start both containers on it.",
    hint="Create the network name('lab'), then run NGINX named name('lab-web') and BUSYBOX named "
    "name('lab-client') (command sleep 3600), both with network=name('lab').",
)
def dns(ctx):
    net = ctx.network("lab")
    ctx.require(
        net.attrs.get("Driver") == "bridge", f"{net.name} is a {net.attrs.get('Driver')} network, not bridge"
    )
    web, cl = ctx.container("lab-web"), ctx.container("lab-client")
    for c in (web, cl):
        _running(ctx, c)
        ctx.require(
            net.name in (c.attrs["NetworkSettings"].get("Networks") or {}),
            f"{c.name} is not on the network {net.name}",
        )
    code, out = _wget(ctx, cl, f"http://{web.name}/")
    ctx.require(
        code == 0 and "nginx" in out, f"wget http://{web.name}/ in {cl.name} failed: {out.strip()[:80]}"
    )


@dns.hidden
def dns_not_by_link(ctx):
    web, cl = ctx.container("lab-web"), ctx.container("lab-client")
    ctx.require(not _links(cl), f"{cl.name} uses a link; use the network's DNS")
    code, out = ctx.exec(cl, ["nslookup", web.name])
    ip = web.attrs["NetworkSettings"]["Networks"][ctx.name("lab")]["IPAddress"]
    ctx.require(code == 0 and ip in out, f"the network's DNS does not answer {web.name} with its address")


# --------------------------------------------------------------------------- 07.udp


@exercise(
    "07.udp",
    title="publish a UDP port",
    nudge="The /udp part of section 2 shows the echo server to run and how to publish a UDP port; the "
    "protocol must appear in the mapping.",
    hint="Run PYTHON with ['python3', '-c', UDP_ECHO] named name('udp') and "
    "ports={'9999/udp': ('127.0.0.1', course.free_port())} (CLI: -p 127.0.0.1:PORT:9999/udp).",
)
def udp(ctx):
    c = ctx.container("udp")
    _running(ctx, c)
    host, port = ctx.published_port(c, "9999/udp")
    ctx.require(host == "127.0.0.1", f"9999/udp is published on {host or 'all interfaces'}, not on 127.0.0.1")
    reply = udp_echo(port, b"dockercourse check", wait=1.5)
    ctx.require(
        reply is not None and b"dockercourse check" in reply,
        f"no echo came back from 127.0.0.1:{port}/udp" if reply is None else f"the answer was {reply[:40]!r}",
    )
