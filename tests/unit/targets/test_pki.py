"""The local CA: SPIFFE workload certificates and gateway server certificates."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from reconciler.targets.envoy.pki import LocalCA, PKIError, workload_secrets


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_spiffe_leaf_has_uri_san_both_ekus_and_chains_to_the_ca(tmp_path: Path) -> None:
    ca = LocalCA.create(tmp_path)
    pair = ca.issue_spiffe("spiffe://cluster.local/ns/default/sa/reviews", ["reviews"])
    cert = _load(pair.cert_path)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/default/sa/reviews"
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["reviews"]
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    cert.verify_directly_issued_by(ca.certificate)
    for path in (pair.cert_path, pair.key_path, ca.cert_path, ca.key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_ca_is_reused_from_disk(tmp_path: Path) -> None:
    first = LocalCA.create(tmp_path)
    again = LocalCA.create(tmp_path)
    assert first.certificate == again.certificate
    pair = again.issue_server(["bookinfo.example.com", "127.0.0.1"])
    _load(pair.cert_path).verify_directly_issued_by(first.certificate)


def test_bad_spiffe_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="SPIFFE"):
        LocalCA.create(tmp_path).issue_spiffe("reviews", [])


def test_workload_secrets_use_istio_names(tmp_path: Path) -> None:
    pair = LocalCA.create(tmp_path).issue_spiffe("spiffe://cluster.local/ns/a/sa/b", [])
    assert [s["name"] for s in workload_secrets(pair)] == ["default", "ROOTCA"]
