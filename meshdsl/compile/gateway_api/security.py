"""Authorization in an ambient namespace.

With a waypoint, ztunnel only ever sees the waypoint as the caller, so a policy that
selects workloads would judge the waypoint's identity, and an L7 rule on a selector is
enforced by ztunnel as deny-all. Policies therefore attach to what the waypoint serves:

- a service's policy (selector ``app: <service>``) gets ``targetRefs`` to that Service;
- a namespace-wide policy (no selector) gets ``targetRefs`` to the waypoint Gateway;
- an ingress gateway's policy (``gateway.authorization(...)``, selecting the pods Istio
  deploys for it by ``gateway.networking.k8s.io/gateway-name``) gets ``targetRefs`` to
  that Gateway;
- any other selector is kept (L4, enforced by ztunnel) — the validator reports it when it
  uses L7 fields or when the namespace has a waypoint.

And so that no caller can skip the waypoint (by calling a pod directly), a namespace with
a waypoint and any authorization gets ``<waypoint>-only``: an ALLOW policy without a
selector, enforced by ztunnel on every workload, admitting only the waypoint's identity.
PeerAuthentication keeps its classic form (``DISABLE`` is rejected by the validator).
"""

from __future__ import annotations

from typing import Any

from meshdsl.compile import istio
from meshdsl.compile.gateway_api.refs import GROUP, SECURITY, obj
from meshdsl.model.gateway import GATEWAY_NAME_LABEL
from meshdsl.model.security import AuthorizationPolicy
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]


def target_ref(mesh: MeshSpec, ap: AuthorizationPolicy) -> dict[str, str] | None:
    """The Service or waypoint a policy attaches to, or None when it stays selector-based."""
    waypoint = mesh.data_plane.waypoint_of(ap.namespace)
    if not ap.selector:
        if waypoint is None:
            return None
        return {"group": GROUP, "kind": "Gateway", "name": waypoint}
    if len(ap.selector) != 1:
        return None
    app, gateway = ap.selector.get("app"), ap.selector.get(GATEWAY_NAME_LABEL)
    if app is not None and mesh.service(ap.namespace, app):
        return {"group": "", "kind": "Service", "name": app}
    if gateway is not None and mesh.gateway(ap.namespace, gateway):
        return {"group": GROUP, "kind": "Gateway", "name": gateway}
    return None


def authorization_policy(mesh: MeshSpec, ap: AuthorizationPolicy,
                         owned: dict[str, str]) -> Manifest:
    manifest = istio.authorization_policy(ap, mesh, owned)
    ref = target_ref(mesh, ap)
    if ref is not None:
        spec = manifest["spec"]
        spec.pop("selector", None)
        manifest["spec"] = {"targetRefs": [ref], **spec}
    return manifest


def guarded(mesh: MeshSpec, namespace: str) -> bool:
    """Whether a namespace's workloads admit only its waypoint (``<waypoint>-only``): it
    has a waypoint and some authorization, which callers must not skip."""
    return mesh.data_plane.waypoint_of(namespace) is not None and any(
        ap.namespace == namespace for ap in mesh.authorization_policies)


def waypoint_only(mesh: MeshSpec, namespace: str, waypoint: str,
                  owned: dict[str, str]) -> Manifest:
    principal = f"{mesh.trust_domain}/ns/{namespace}/sa/{waypoint}"
    spec = {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [principal]}}]}]}
    return obj(SECURITY, "AuthorizationPolicy", f"{waypoint}-only", namespace, owned, spec)
