"""istioctl's DestinationRule TLS analyzer, on the input objects.

A DestinationRule with TLS mode SIMPLE or MUTUAL and no ``caCertificates`` does not verify
the server (IST0128 for the traffic policy, IST0129 per port; MD144, MD145), unless it
names a ``credentialName`` and applies to selected workloads (``workloadSelector``), whose
credential then carries the CA. Subsets' policies are not read, as in istioctl.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdsl.analyzers.registry import Obj, Registry, dicts
from meshdsl.validate.findings import Finding, warning

_VERIFYING = ("SIMPLE", "MUTUAL")


def _unverified(dr: Obj, tls: Any) -> str | None:
    """The TLS mode when it leaves the server's certificate unverified."""
    if not isinstance(tls, dict) or tls.get("mode") not in _VERIFYING or \
            tls.get("caCertificates"):
        return None
    if tls.get("credentialName") and dr.spec.get("workloadSelector") is not None:
        return None
    return str(tls["mode"])


def check(registry: Registry) -> Iterator[Finding]:
    for dr in registry.of("DestinationRule"):
        policy = dr.spec.get("trafficPolicy")
        policy = policy if isinstance(policy, dict) else {}
        host = dr.spec.get("host")
        mode = _unverified(dr, policy.get("tls"))
        if mode:
            yield warning("MD144", f"{dr} trafficPolicy.tls",
                          f"TLS mode {mode} without caCertificates: the identity of "
                          f"{host!r} is not verified",
                          dr.doc.where(("spec", "trafficPolicy", "tls")))
        for i, setting in enumerate(dicts(policy.get("portLevelSettings"))):
            mode = _unverified(dr, setting.get("tls"))
            if mode:
                port = setting.get("port")
                number = port.get("number") if isinstance(port, dict) else port
                yield warning("MD145", f"{dr} trafficPolicy.portLevelSettings[{i}].tls",
                              f"TLS mode {mode} without caCertificates: the identity "
                              f"of {host!r} at port {number} is not verified", dr.doc.where(
                                  ("spec", "trafficPolicy", "portLevelSettings", i, "tls")))
