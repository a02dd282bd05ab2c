"""Mutual TLS as Istio does it: which mode a workload's inbound side enforces, and the TLS
contexts of both ends, with SPIFFE identities from the local CA.

* **Server side** — the effective PeerAuthentication (workload selector, else namespace,
  else mesh-wide in the root namespace; ``UNSET`` inherits; PERMISSIVE when nothing says
  otherwise) decides the inbound listener: STRICT requires a client certificate signed by
  the mesh CA, PERMISSIVE sniffs with ``tls_inspector`` and offers a TLS and a plaintext
  filter chain, DISABLE is plaintext.
* **Client side** — auto mTLS: each endpoint carries ``tlsMode: istio`` metadata unless its
  workload DISABLEs mTLS, and the cluster's ``transport_socket_matches`` pick TLS (with the
  caller's certificate, verifying the server's SPIFFE ID) or plaintext per endpoint. A
  DestinationRule ``tls.mode`` of DISABLE forces plaintext, ISTIO_MUTUAL forces mTLS.

Certificates are referenced by file name (from the placement), so the compiled config is
self-contained; nothing depends on secrets being preloaded in the bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from meshdsl.compile.envoy import protos
from meshdsl.compile.envoy.placement import CertFiles
from meshdsl.compile.envoy.protos import Resource
from meshdsl.model.policy import ClientTls
from meshdsl.model.security import PeerAuthentication
from meshdsl.model.spec import MeshSpec

PeerMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]
ClientMode = Literal["AUTO", "ISTIO_MUTUAL", "DISABLE"]

TLS_MODE_KEY = "envoy.transport_socket_match"
RAW_SOCKET: Resource = {"name": "envoy.transport_sockets.raw_buffer",
                        "typed_config": {"@type": protos.RAW_BUFFER}}


def _first(items: Iterable[PeerAuthentication]) -> PeerAuthentication | None:
    return next(iter(items), None)


def peer_mode(spec: MeshSpec, namespace: str, labels: Mapping[str, str],
              ports: Iterable[int] = ()) -> PeerMode:
    """The mTLS mode a workload's inbound side enforces (Istio's precedence rules).

    ``ports`` are the workload's own port numbers; a port-level override of the workload's
    policy for any of them applies (the local sidecar has one inbound listener for all).
    """
    pas = spec.peer_authentications
    mesh_wide = _first(p for p in pas if p.namespace == spec.root_namespace and not p.selector)
    ns_wide = _first(p for p in pas if p.namespace == namespace and not p.selector)
    own = _first(p for p in pas if p.namespace == namespace and p.selector
                 and all(labels.get(k) == v for k, v in p.selector.items()))
    mode: PeerMode = "PERMISSIVE"
    for pa in (mesh_wide, ns_wide, own):
        if pa is not None and pa.mode not in (None, "UNSET"):
            mode = pa.mode  # type: ignore[assignment]
    if own is not None:
        for port in ports:
            override = own.port_level_mtls.get(port)
            if override not in (None, "UNSET"):
                return override  # type: ignore[return-value]
    return mode


def client_mode(tls: ClientTls | None) -> tuple[ClientMode, str | None]:
    """How a caller connects under a DestinationRule's ``tls``, plus a note if approximated."""
    if tls is None:
        return "AUTO", None
    if tls.mode in ("DISABLE", "ISTIO_MUTUAL"):
        return tls.mode, None
    return "AUTO", (f"DestinationRule tls mode {tls.mode} originates TLS to a server outside "
                    "the mesh, which has no local equivalent; auto mTLS is used instead")


def certificate(files: CertFiles) -> Resource:
    return {"certificate_chain": {"filename": files.cert},
            "private_key": {"filename": files.key}}


def _socket(type_url: str, **fields: object) -> Resource:
    return {"name": protos.TLS_SOCKET, "typed_config": protos.typed(type_url, **fields)}


def server_mtls(own: CertFiles, ca_cert: str) -> Resource:
    """Inbound side of mesh mTLS: present our SPIFFE cert, require one from the mesh CA."""
    return _socket(protos.DOWNSTREAM_TLS, require_client_certificate=True,
                   common_tls_context={"tls_certificates": [certificate(own)],
                                       "validation_context": {"trusted_ca": {
                                           "filename": ca_cert}}})


def client_mtls(own: CertFiles, ca_cert: str, server_id: str, sni: str) -> Resource:
    """Outbound side: present the caller's cert, accept only the destination's identity."""
    validation = {"trusted_ca": {"filename": ca_cert},
                  "match_typed_subject_alt_names": [{"san_type": "URI",
                                                     "matcher": {"exact": server_id}}]}
    return _socket(protos.UPSTREAM_TLS, sni=sni,
                   common_tls_context={"tls_certificates": [certificate(own)],
                                       "validation_context": validation})


def gateway_tls(files: CertFiles, *, mutual: bool) -> Resource:
    """A gateway's HTTPS server (SIMPLE), or with client certificates (MUTUAL)."""
    context: Resource = {"tls_certificates": [certificate(files)]}
    if mutual and files.ca:
        context["validation_context"] = {"trusted_ca": {"filename": files.ca}}
    fields: dict[str, object] = {"common_tls_context": context}
    if mutual:
        fields["require_client_certificate"] = True
    return _socket(protos.DOWNSTREAM_TLS, **fields)


def socket_matches(mtls_socket: Resource) -> list[Resource]:
    """Auto mTLS: TLS toward endpoints labelled ``tlsMode: istio``, plaintext otherwise."""
    return [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": mtls_socket},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": RAW_SOCKET}]


def endpoint_metadata(mode: PeerMode) -> Resource | None:
    """Endpoint metadata that makes auto mTLS pick TLS (None: the workload is plaintext)."""
    if mode == "DISABLE":
        return None
    return {"filter_metadata": {TLS_MODE_KEY: {"tlsMode": "istio"}}}
