"""What validation reports: a finding per problem, each with a stable code.

Codes are stable across releases so that scripts and CI can match on them; ``ISTIO_CODES``
names the closest ``istioctl analyze`` message where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meshdsl.model.base import SourceLocation


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# code -> (slug, istioctl analyze code or "")
CODES: dict[str, tuple[str, str]] = {
    "MD101": ("subset-not-defined", "IST0101"),
    "MD102": ("unknown-host", "IST0101"),
    "MD103": ("bad-weights", ""),
    "MD104": ("conflicting-hosts", "IST0109"),
    "MD105": ("shadowed-route", "IST0131"),
    "MD106": ("gateway-not-found", "IST0101"),
    "MD107": ("host-not-in-gateway", "IST0132"),
    "MD108": ("conflicting-gateways", "IST0145"),
    "MD109": ("bad-duration", ""),
    "MD110": ("mtls-conflict", ""),  # istioctl's IST0113 was retired in Istio 1.6
    "MD111": ("http-rule-on-tcp-port", ""),
    "MD112": ("canary-version-missing", ""),
    "MD113": ("duplicate-name", ""),
    "MD114": ("canary-without-route", ""),
    "MD115": ("duplicate-canary", ""),
    "MD116": ("invalid-name", ""),
    "MD130": ("no-ambient-equivalent", ""),
    "MD131": ("virtualservice-and-httproute", ""),
    "MD132": ("route-parent-or-backend-missing", "IST0101"),
    "MD133": ("ambient-authorization-target", ""),
    "MD134": ("ambient-namespace-unlabelled", ""),
    "MD135": ("l7-without-waypoint", ""),
    "MD136": ("retry-needs-experimental-channel", ""),
    "MD137": ("gateway-api-route-precedence", ""),
    "MD140": ("crd-schema", ""),
    "MD141": ("crd-rule", ""),
    "MD143": ("gateway-port-not-on-service", "IST0162"),  # IST0104 until Istio 1.19
    "MD144": ("destination-rule-tls-without-ca", "IST0128"),
    "MD145": ("destination-rule-port-tls-without-ca", "IST0129"),
    "MD146": ("port-name-without-protocol", "IST0118"),
    "MD147": ("destination-port-required", "IST0112"),
    "MD148": ("unreachable-rule", "IST0130"),
    "MD601": ("namespace-outside-tenancy", ""),
    "MD602": ("cluster-kind-not-allowed", ""),
    "MD603": ("reserved-namespace", ""),
    "MD604": ("reconciler-state-object", ""),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: str
    message: str
    source: SourceLocation | None = None

    @property
    def slug(self) -> str:
        return CODES[self.code][0]

    @property
    def istio_code(self) -> str:
        return CODES[self.code][1]

    def sort_key(self) -> tuple[str, int, str, str]:
        src = self.source
        return (src.file if src else "~", src.line if src else 0, self.code, self.path)

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.severity.value} {self.code} [{self.path}] {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "slug": self.slug, "severity": self.severity.value,
                "path": self.path, "message": self.message,
                "file": self.source.file if self.source else None,
                "line": self.source.line if self.source else None,
                "istio_code": self.istio_code or None}


def error(code: str, path: str, message: str, source: SourceLocation | None) -> Finding:
    return Finding(code, Severity.ERROR, path, message, source)


def warning(code: str, path: str, message: str, source: SourceLocation | None) -> Finding:
    return Finding(code, Severity.WARNING, path, message, source)


def info(code: str, path: str, message: str, source: SourceLocation | None) -> Finding:
    return Finding(code, Severity.INFO, path, message, source)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)
