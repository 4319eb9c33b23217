"""Throw-away X.509 material for tests: a CA, server certificates and token-signing keys.

Generated with `cryptography` in-process (an EC P-256 key takes well under a millisecond), so
every test session gets its own CA and nothing secret is ever committed. The files are laid
out the way the consumers want them:

- `CertificateAuthority.ca_dir` holds only `ca.crt`, because skopeo's `--src-cert-dir` /
  `--dest-cert-dir` treat every `*.crt` in the directory as a trusted CA (and `*.cert`/`*.key`
  as a client certificate), so a server certificate must not sit next to it.
- `ServerCert` is a leaf for 127.0.0.1 and localhost (IP and DNS SANs: Go and OpenSSL both
  ignore the CN), used by `docker-registry` (`http.tls`) and uvicorn.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)
# Backdate so a registry whose clock is a little behind ours still accepts the certificate.
_BACKDATE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ServerCert:
    """A PEM certificate/key pair on disk."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class SigningKey:
    """A private key plus its self-signed certificate (the registry's `rootcertbundle`)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _write_pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


class CertificateAuthority:
    """A self-signed CA that issues server certificates for loopback test servers."""

    def __init__(self, directory: Path, common_name: str = "orgmirror test CA") -> None:
        self.directory = directory
        self.ca_dir = directory / "ca"
        self.ca_dir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        self.cert = (
            _builder(name, name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = _write_pem(self.ca_dir / "ca.crt", self.cert)

    def issue_server_cert(
        self, name: str = "server", hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> ServerCert:
        """Write `<name>.crt`/`<name>.key` valid for `hosts` (IPs and DNS names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(_name(hosts[0]), self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return ServerCert(
            cert_file=_write_pem(self.directory / f"{name}.crt", cert),
            key_file=_write_key(self.directory / f"{name}.key", key),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (what httpx's `verify=` takes)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_signing_key(
    directory: Path, common_name: str = "orgmirror test token signer"
) -> SigningKey:
    """An EC P-256 key and a self-signed certificate for it, written to `token-signer.crt`.

    distribution only uses the certificate to learn which public keys it trusts (it never checks
    the chain for `kid` tokens), so self-signed is exactly what its `rootcertbundle` wants.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(
        key=key, cert=cert, cert_file=_write_pem(directory / "token-signer.crt", cert)
    )
