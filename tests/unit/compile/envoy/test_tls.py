"""Effective PeerAuthentication and the inbound listener shapes it produces."""

from __future__ import annotations

from typing import Any

import pytest

from meshdsl.compile.envoy.tls import peer_mode
from meshdsl.model import Mesh
from meshdsl.model.spec import MeshSpec
from tests.unit.compile.envoy.conftest import proxies

LABELS = {"app": "api", "version": "v1"}


def spec_with(mesh_mode: str | None = None, ns_mode: str | None = None,
              workload_mode: str | None = None, ports: dict[int, Any] | None = None
              ) -> MeshSpec:
    mesh = Mesh("t", namespace="shop", mtls=mesh_mode)  # type: ignore[arg-type]
    api = mesh.service("api", port=8080)
    api.deploy("v1", image="api")
    if ns_mode is not None:
        mesh.mtls(ns_mode)  # type: ignore[arg-type]
    if workload_mode is not None or ports:
        api.mtls(workload_mode, ports=ports)  # type: ignore[arg-type]
    return mesh.build()


@pytest.mark.parametrize(("mesh_mode", "ns_mode", "workload_mode", "ports", "expected"), [
    (None, None, None, None, "PERMISSIVE"),
    ("STRICT", None, None, None, "STRICT"),
    ("STRICT", "PERMISSIVE", None, None, "PERMISSIVE"),
    ("STRICT", "PERMISSIVE", "DISABLE", None, "DISABLE"),
    ("DISABLE", "UNSET", None, None, "DISABLE"),
    (None, "STRICT", "UNSET", None, "STRICT"),
    (None, "STRICT", None, {8080: "PERMISSIVE"}, "PERMISSIVE"),
    (None, "STRICT", None, {9999: "DISABLE"}, "STRICT"),
])
def test_most_specific_policy_wins(mesh_mode: str | None, ns_mode: str | None,
                                   workload_mode: str | None, ports: dict[int, Any] | None,
                                   expected: str) -> None:
    spec = spec_with(mesh_mode, ns_mode, workload_mode, ports)
    assert peer_mode(spec, "shop", LABELS, [8080]) == expected


def test_selector_of_another_workload_does_not_apply() -> None:
    mesh = Mesh("t", namespace="shop")
    mesh.service("api", port=8080).deploy("v1", image="api")
    mesh.service("other", port=8080).mtls("STRICT")
    assert peer_mode(mesh.build(), "shop", LABELS, [8080]) == "PERMISSIVE"


def inbound(spec: MeshSpec, *, pki: bool = True) -> dict[str, Any]:
    proxy = proxies(spec, pki=pki)["api-v1.shop"]
    return proxy.listener("inbound|8080|v1|api.shop.svc.cluster.local")


def test_strict_requires_client_certificates() -> None:
    listener = inbound(spec_with(ns_mode="STRICT"))
    (chain,) = listener["filter_chains"]
    context = chain["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    assert context["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": "/pki/ca.crt"}}
    assert "listener_filters" not in listener
    assert chain["filters"][0]["typed_config"]["forward_client_cert_details"] == "APPEND_FORWARD"


def test_permissive_sniffs_tls_and_accepts_both() -> None:
    listener = inbound(spec_with())
    assert [f["name"] for f in listener["listener_filters"]] == [
        "envoy.filters.listener.tls_inspector"]
    secure, plain = listener["filter_chains"]
    assert secure["filter_chain_match"] == {"transport_protocol": "tls"}
    assert plain["filter_chain_match"] == {"transport_protocol": "raw_buffer"}
    assert "transport_socket" in secure and "transport_socket" not in plain


@pytest.mark.parametrize(("ns_mode", "pki"), [("DISABLE", True), ("STRICT", False)])
def test_plaintext_when_disabled_or_without_pki(ns_mode: str, pki: bool) -> None:
    (chain,) = inbound(spec_with(ns_mode=ns_mode), pki=pki)["filter_chains"]
    assert "transport_socket" not in chain


def test_strict_without_pki_is_noted() -> None:
    proxy = proxies(spec_with(ns_mode="STRICT"), pki=False)["api-v1.shop"]
    assert any("STRICT is not enforced" in note for note in proxy.notes)
