"""A local certificate authority for the local mesh: SPIFFE workload certs and gateway certs.

In Istio, istiod signs a certificate per workload whose URI SAN is the workload's SPIFFE
identity (``spiffe://cluster.local/ns/<ns>/sa/<sa>``); sidecars present it on both ends of
mutual TLS, and authorization policies match on it. The local mesh needs the same identities
without istiod, so this CA issues them from an EC P-256 root kept on disk (reused across
runs, so restarting the mesh does not invalidate certificates already handed out).

Every file (keys and certificates) is written with mode 0600. :func:`workload_secrets` turns a certificate into
the two Envoy ``Secret`` resources Istio's proxies use by name, ``default`` (own cert) and
``ROOTCA`` (trust bundle), so compiled TLS contexts look the same as on a real mesh.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler.errors import ReconcilerError
from reconciler.processes.workfiles import WorkFile

__all__ = ["CertPair", "LocalCA", "PKIError", "workload_secrets"]

_ROOT_VALIDITY = dt.timedelta(days=3650)
_LEAF_VALIDITY = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences


class PKIError(ReconcilerError):
    """The CA files are unusable, or a requested certificate is malformed."""


@dataclass(frozen=True)
class CertPair:
    """A leaf certificate and its key on disk, plus the CA certificate that signed it."""

    cert_path: Path
    key_path: Path
    ca_path: Path


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Both sign (TLS handshakes); the CA also signs certificates and CRLs, a leaf (EC)
    agrees keys."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


class LocalCA:
    """An EC P-256 root CA persisted as ``ca.crt``/``ca.key`` in one directory."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.directory = directory
        self._key = key
        self._cert = cert

    cert_path = WorkFile("ca.crt", under="directory")
    key_path = WorkFile("ca.key", under="directory")

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @classmethod
    def create(cls, directory: Path | str, *, common_name: str = "meshdsl local CA") -> LocalCA:
        """Load the CA in ``directory``, or create and persist a new one if there is none."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = root / "ca.crt", root / "ca.key"
        if cert_path.exists() and key_path.exists():
            return cls._load(root, cert_path, key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _ROOT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        _write_private(key_path, _key_pem(key))
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(root, key, cert)

    @classmethod
    def _load(cls, root: Path, cert_path: Path, key_path: Path) -> LocalCA:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as err:
            raise PKIError(f"cannot load the CA in {root}: {err}; delete the directory") from err
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PKIError(f"{key_path} is not an EC private key; delete {root} to recreate")
        return cls(root, key, cert)

    def issue_spiffe(self, spiffe_id: str, dns_names: Sequence[str] = ()) -> CertPair:
        """A workload certificate for mTLS: URI SAN ``spiffe_id``, server and client auth.

        Files are ``certs/<trust-domain>_ns_<ns>_sa_<sa>.{crt,key}`` next to the CA.
        """
        if not re.fullmatch(r"spiffe://[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_~%]+)+", spiffe_id):
            raise PKIError(
                f"{spiffe_id!r} is not a SPIFFE ID; expected e.g. "
                "'spiffe://cluster.local/ns/default/sa/reviews'"
            )
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id)]
        sans += [x509.DNSName(d) for d in dns_names]
        stem = re.sub(r"[^A-Za-z0-9.-]+", "_", spiffe_id.removeprefix("spiffe://"))
        return self._issue(stem, common_name=None, sans=sans, client_auth=True)

    def issue_server(self, hostnames: Sequence[str]) -> CertPair:
        """A TLS server certificate for a gateway (DNS or IP SANs, serverAuth only)."""
        if not hostnames:
            raise PKIError("issue_server needs at least one hostname")
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        stem = "server_" + re.sub(r"[^A-Za-z0-9.-]+", "_", hostnames[0].replace("*", "wildcard"))
        return self._issue(stem, common_name=hostnames[0], sans=sans, client_auth=False)

    def _issue(
        self,
        stem: str,
        *,
        common_name: str | None,
        sans: list[x509.GeneralName],
        client_auth: bool,
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # An empty subject (SPIFFE leaves) requires the SAN extension to be critical.
            .add_extension(x509.SubjectAlternativeName(sans), critical=common_name is None)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )  # fmt: skip
        cert = builder.sign(self._key, hashes.SHA256())
        certs = self.directory / "certs"
        certs.mkdir(exist_ok=True)
        pair = CertPair(certs / f"{stem}.crt", certs / f"{stem}.key", self.cert_path)
        _write_private(pair.key_path, _key_pem(key))
        _write_private(pair.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return pair


def workload_secrets(
    pair: CertPair, *, cert_name: str = "default", ca_name: str = "ROOTCA"
) -> list[dict[str, Any]]:
    """Envoy ``Secret`` resources for a workload: its certificate and the trust bundle.

    Pass them as ``EnvoyProcess(secrets=...)``; TLS contexts then reference them by name only
    (``tls_certificate_sds_secret_configs: [{name: default}]`` and
    ``validation_context_sds_secret_config: {name: ROOTCA}``), as Istio's proxies do.
    """
    return [
        {
            "name": cert_name,
            "tls_certificate": {
                "certificate_chain": {"filename": str(pair.cert_path)},
                "private_key": {"filename": str(pair.key_path)},
            },
        },
        {"name": ca_name, "validation_context": {"trusted_ca": {"filename": str(pair.ca_path)}}},
    ]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` with mode 0600 (never briefly wider), replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
