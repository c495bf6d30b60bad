"""The VM engine's mutual TLS (``dockercourse.vm.tls``), without a VM: the certificates it makes are
served by a real TLS server that, like ``dockerd --tlsverify``, asks for a client certificate signed by
its authority. The course's own ping gets in with the owner's folder, and is refused without a
certificate, with another engine's certificate, and over plain HTTP. The boot with ``--tls`` is in
tests/test_vm_engine.py."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import stat
import threading

import pytest

from dockercourse.core.engine import client_for
from dockercourse.vm import tls
from dockercourse.vm.seed import ping

pytestmark = pytest.mark.unit


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"ApiVersion": "1.47"}).encode() if self.path.endswith("/version") else b"OK"
        self.send_response(200 if self.path.endswith(("/_ping", "/version")) else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def engine_like(tmp_path):
    """An HTTPS server on 127.0.0.1 with the engine's side of ``tls.make``: (its port, the client folder)."""
    client_dir, guest_dir = tls.make(tmp_path / "vm", owner="ana")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(guest_dir / "server-cert.pem", guest_dir / "server-key.pem")
    ctx.load_verify_locations(guest_dir / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED  # as dockerd --tlsverify
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], client_dir
    srv.shutdown()
    srv.server_close()


def test_only_the_owners_certificate_gets_in(engine_like, tmp_path):
    port, client_dir = engine_like
    assert ping(port, 5, client_dir)
    assert not ping(port, 5)  # plain HTTP to a TLS port
    other, _ = tls.make(tmp_path / "other-vm", owner="bo")  # another engine's client: another authority
    assert not ping(port, 5, other)
    bare = tmp_path / "no-cert"
    bare.mkdir()
    (bare / "ca.pem").write_bytes((client_dir / "ca.pem").read_bytes())  # trusts the engine, shows nothing
    ctx = ssl.create_default_context(cafile=str(bare / "ca.pem"))
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/_ping", timeout=5, context=ctx).read()


def test_a_notebooks_client_gets_in_even_with_another_ca_bundle_in_the_environment(engine_like):
    import certifi
    import docker
    import requests
    from docker.utils import kwargs_from_env

    port, client_dir = engine_like
    assert {p.name for p in client_dir.iterdir()} == {"ca.pem", "cert.pem", "key.pem"}  # DOCKER_CERT_PATH's
    env = {"DOCKER_HOST": f"tcp://127.0.0.1:{port}", **tls.env(client_dir)}
    assert env["DOCKER_TLS_VERIFY"] == "1" and env["DOCKER_CERT_PATH"] == str(client_dir)
    # what a notebook's connect() makes of that environment, also where REQUESTS_CA_BUNDLE names another
    # authority (as on this machine and behind many company proxies): requests would verify the
    # engine against that bundle, and docker-py's own client fails
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = certifi.where()
    try:
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            docker.DockerClient(**kwargs_from_env(environment=env), version="1.41").ping()
        client = client_for(env["DOCKER_HOST"], tls=kwargs_from_env(environment=env)["tls"])
        assert client.ping() and client.api.api_version == "1.47"
        assert client_for(env["DOCKER_HOST"], tls=tls.docker_tls(client_dir)).ping()
    finally:
        os.environ.pop("REQUESTS_CA_BUNDLE")
        if bundle is not None:
            os.environ["REQUESTS_CA_BUNDLE"] = bundle


def test_keys_are_the_owners_only_and_the_authoritys_key_is_never_written(tmp_path):
    client_dir, guest_dir = tls.make(tmp_path / "vm")
    for d in (client_dir, guest_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        for f in d.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    keys = [f for d in (client_dir, guest_dir) for f in d.iterdir() if b"PRIVATE KEY" in f.read_bytes()]
    assert sorted(f.name for f in keys) == ["key.pem", "server-key.pem"]
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((guest_dir / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((guest_dir / "server-cert.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    server.verify_directly_issued_by(ca)
    first = (guest_dir / "ca.pem").read_bytes()
    again, _ = tls.make(tmp_path / "vm")  # a new boot: a new authority
    assert (again / "ca.pem").read_bytes() != first


def test_the_guest_gets_the_engines_files_read_only_and_refuses_to_start_without_them(tmp_path):
    from dockercourse.vm import scripts, shares

    qemu, cmdline = shares.tls_args(tmp_path / "tls-guest")
    assert f"path={tmp_path / 'tls-guest'},security_model=none,readonly=on" in qemu[1]
    assert cmdline == f" dc.tls=dctls:{tmp_path / 'tls-guest'}"
    stage2 = scripts.text(scripts.STAGE2_DOCKER)
    assert "dc.tls=*)" in stage2 and "mount -t 9p -o ro," in stage2
    assert "--tlsverify" in stage2 and "dockercourse: no TLS files in $tls" in stage2
