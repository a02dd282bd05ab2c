"""Authorization of an ambient namespace read back as the classic policies it compiles from.

The inverse of ``meshdsl.compile.gateway_api.security``: a policy attached by
``targetRefs`` becomes the selector-based policy that, in an ambient namespace, compiles
to it — a Service ``X`` is ``{app: X}`` (``svc.authorization()``), the namespace's
waypoint is no selector (``ns.authorization(...)``), an ingress Gateway ``G`` of the
input is ``{gateway.networking.k8s.io/gateway-name: G}`` (``gateway.authorization()``).
``<waypoint>-only``, which the compiler adds beside any policy of a namespace with a
waypoint, is recognised by comparing it with what the compiler would write.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from meshdsl.compile.gateway_api.refs import GROUP
from meshdsl.compile.gateway_api.security import waypoint_only
from meshdsl.model.gateway import GATEWAY_NAME_LABEL
from meshdsl.model.spec import MeshSpec

Manifest = dict[str, Any]


def is_waypoint_only(m: Manifest, namespace: str, waypoint: str | None) -> bool:
    """Whether ``m`` is exactly the policy the compiler adds to keep callers from
    skipping ``waypoint`` (for the default trust domain)."""
    if waypoint is None or m["metadata"].get("name") != f"{waypoint}-only":
        return False
    expected = waypoint_only(MeshSpec(name="import"), namespace, waypoint, {})
    return bool(m.get("spec") == expected["spec"])


def classic_policy(m: Manifest, *, waypoint: str | None, gateways: Mapping[str, bool]
                   ) -> Manifest | str:
    """The selector-based policy ``m`` compiles from, or why it has no DSL form.

    ``gateways`` are the input's ingress Gateways in the policy's namespace
    (``targetRefs`` only reach objects of their own namespace), with whether the DSL
    declares them. A Service target needs no such check: the selector declares the
    service if nothing else does."""
    spec = m.get("spec")
    if not isinstance(spec, dict) or "targetRefs" not in spec:
        return m
    if "targetRef" in spec or "selector" in spec:
        return "targetRefs beside targetRef or selector has no DSL form"
    refs = spec["targetRefs"]
    if not isinstance(refs, list) or len(refs) != 1 or not isinstance(refs[0], dict):
        return "a policy attached to other than one target has no DSL form"
    ref = refs[0]
    name = str(ref.get("name"))
    labels: dict[str, str] | None = None
    if ref == {"group": "", "kind": "Service", "name": name}:
        labels = {"app": name}
    elif ref == {"group": GROUP, "kind": "Gateway", "name": name} and name == waypoint:
        labels = {}
    elif ref == {"group": GROUP, "kind": "Gateway", "name": name} and name in gateways:
        if not gateways[name]:
            return f"the policy of Gateway {name!r}, which is carried raw"
        labels = {GATEWAY_NAME_LABEL: name}
    if labels is None:
        return (f"targetRefs to {ref.get('kind')} {ref.get('name')!r}, which is neither a "
                "Service, the waypoint nor an ingress Gateway of the input (in the form the "
                "DSL writes: group, kind and name), has no DSL form")
    out = copy.deepcopy(m)
    rest = {k: v for k, v in out["spec"].items() if k != "targetRefs"}
    out["spec"] = {"selector": {"matchLabels": labels}, **rest} if labels else rest
    return out
