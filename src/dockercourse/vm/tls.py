"""Mutual TLS on the VM engine's API, so that only the user who started it can drive it.

qemu forwards the guest's API to a TCP port on the host's 127.0.0.1, and every local user can open
such a port. On a laptop that is its owner; on a machine many people log in to (a classroom, a grading
server), another user could drive the engine, and through the folders it shares (:mod:`.shares`)
reach the owner's files. With ``tls`` the engine does what Docker's documentation prescribes for a TCP
socket ("Protect the Docker daemon socket"): ``dockerd --tlsverify`` answers only clients whose
certificate its own certificate authority signed.

Each boot makes a fresh authority, server certificate (for ``127.0.0.1``) and client certificate
(P-256 keys, about 10 ms). The authority's key is never written: once both certificates are signed it
is gone, so no one can sign another client. What the client needs is in ``<state>/tls`` (mode 0700:
``ca.pem``, ``cert.pem``, ``key.pem``, the names ``DOCKER_CERT_PATH`` expects); what the engine needs
is in ``<state>/tls-guest``, shared read-only into the guest (virtio-9p, as host folders are), where
``guest/stage2-docker.sh`` finds it through ``dc.tls=`` on the kernel's command line.

API: :func:`make`, :func:`env`, :func:`ssl_context`, :func:`docker_tls`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

#: how long the certificates hold (a VM engine lives for a session; a long-lived one is rebooted sooner)
VALID_DAYS = 30


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make(state_dir: Path, owner: str = "") -> tuple[Path, Path]:
    """Make a fresh authority and a server and client certificate for the VM engine of ``state_dir``;
    ``(client folder, guest folder)``. ``owner`` names the client (its certificate's common name)."""
    from cryptography.hazmat.primitives import serialization

    client_dir, guest_dir = Path(state_dir) / "tls", Path(state_dir) / "tls-guest"
    for d in (client_dir, guest_dir):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.chmod(0o700)
    ca_key = _key()
    ca = _cert("dockercourse VM engine CA", ca_key, "dockercourse VM engine CA", ca_key, ca=True)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    server_key, client_key = _key(), _key()
    server = _cert("127.0.0.1", server_key, "dockercourse VM engine CA", ca_key, server=True)
    who = owner or os.environ.get("USER") or "client"
    client = _cert(who, client_key, "dockercourse VM engine CA", ca_key)
    del ca_key  # never written: no one can sign another client
    _write(client_dir / "ca.pem", ca_pem, 0o600)
    _write(client_dir / "cert.pem", client.public_bytes(serialization.Encoding.PEM), 0o600)
    _write(client_dir / "key.pem", _pem_key(client_key), 0o600)
    _write(guest_dir / "ca.pem", ca_pem, 0o600)
    _write(guest_dir / "server-cert.pem", server.public_bytes(serialization.Encoding.PEM), 0o600)
    _write(guest_dir / "server-key.pem", _pem_key(server_key), 0o600)
    return client_dir, guest_dir


def env(client_dir: str | Path) -> dict[str, str]:
    """What points the ``docker`` command and docker-py (``from_env``) at a TLS engine."""
    return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(client_dir)}


def ssl_context(client_dir: str | Path) -> ssl.SSLContext:
    """A client context that trusts only the engine's authority and shows the client certificate."""
    d = Path(client_dir)
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    return ctx


def docker_tls(client_dir: str | Path):
    """docker-py's ``TLSConfig`` for the engine."""
    from docker.tls import TLSConfig

    d = Path(client_dir)
    return TLSConfig(
        client_cert=(str(d / "cert.pem"), str(d / "key.pem")), ca_cert=str(d / "ca.pem"), verify=True
    )
