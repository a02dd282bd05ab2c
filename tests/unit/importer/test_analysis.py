"""``analyze``: one YAML per finding code that triggers it, and its fixed twin; findings
carry the YAML's file:line and match what ``validate`` says of the imported program."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from meshdsl.analyzers import REPLACED
from meshdsl.importer import analyze, import_files, run_program
from meshdsl.validate import CODES, Finding, Severity, validate
from tests.unit.importer.support import CORPUS, SEED

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  gateways: {gateways}
  http:
{routes}
---
"""
DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {host}
  trafficPolicy: {policy}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
"""
GW = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [{host}]
---
"""
HR = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: reviews-route}}
spec:
  parentRefs: [{{group: "", kind: Service, name: reviews}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 9080}}]
---
"""


def vs(routes: str, *, name: str = "reviews", host: str = "reviews",
       gateways: str = "[]") -> str:
    return VS.format(name=name, host=host, gateways=gateways,
                     routes=textwrap.indent(textwrap.dedent(routes).strip("\n"), "  "))


def dr(*, name: str = "reviews", host: str = "reviews", policy: str = "{}") -> str:
    return DR.format(name=name, host=host, policy=policy)


def to(subset: str = "v1", *, host: str = "reviews", weight: int | None = None) -> str:
    w = f", weight: {weight}" if weight is not None else ""
    return f"{{destination: {{host: {host}, subset: {subset}}}{w}}}"


def plain(host: str = "reviews") -> str:
    return f"{{destination: {{host: {host}}}}}"


def route(*targets: str, extra: str = "") -> str:
    return f"- route: [{', '.join(targets)}]{extra}\n"


SERVICE_DB = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432, name: tcp-postgres}]
  selector: {app: db}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - to: [{operation: {%s}}]
---
"""
STRICT = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
---
"""
ENTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.example.org]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
"""
INGRESS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingressgateway}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template:
    metadata: {labels: {istio: ingressgateway}}
    spec: {containers: [{name: istio-proxy, image: auto}]}
---
apiVersion: v1
kind: Service
metadata: {name: ingressgateway}
spec:
  selector: {istio: ingressgateway}
  ports: [{port: %d, name: http}]
---
"""
TWO_PORTS = """\
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, name: http}, {port: 9090, name: http-metrics}]
---
"""

# code -> (bad YAML, good YAML, severity, where: the text on the finding's line, or
# "object NAME" for findings about a whole object, reported at its first line)
CASES: dict[str, tuple[str, str, Severity, str]] = {
    "MD101": (vs(route(to("v4"))) + dr(), vs(route(to("v2"))) + dr(), Severity.ERROR,
              "- route:"),
    "MD102": (vs(route(plain(host="ratings.example.org"))),
              ENTRY + vs(route(plain(host="ratings.example.org"))), Severity.ERROR, "- route:"),
    "MD103": (vs(route(to("v1", weight=90), to("v2", weight=20))) + dr(),
              vs(route(to("v1", weight=90), to("v2", weight=10))) + dr(), Severity.ERROR,
              "- route:"),
    "MD104": (vs(route(to())) + vs(route(to()), name="reviews-extra") + dr(),
              vs(route(to())) + vs(route(plain("ratings")), name="ratings",
                                   host="ratings") + dr(), Severity.ERROR,
              "object reviews|reviews-extra"),
    "MD105": (vs("- match: [{uri: {prefix: /beta}}]\n  route: [" + to("v2") + "]\n"
                 "- match: [{uri: {prefix: /beta/new}}, {uri: {exact: /new}}]\n  route: ["
                 + to("v1") + "]\n") + dr(),
              vs("- match: [{uri: {prefix: /beta/new}}, {uri: {exact: /new}}]\n  route: ["
                 + to("v1") + "]\n- match: [{uri: {prefix: /beta}}]\n  route: ["
                 + to("v2") + "]\n") + dr(), Severity.WARNING, "- match:"),
    "MD106": (vs(route(plain()), host="shop.example.com", gateways="[web]"),
              vs(route(plain()), host="shop.example.com", gateways="[web]")
              + GW.format(name="web", host="shop.example.com"), Severity.ERROR,
              "gateways: [web]"),
    "MD107": (vs(route(plain()), host="admin.example.com", gateways="[web]")
              + GW.format(name="web", host="shop.example.com"),
              vs(route(plain()), host="shop.example.com", gateways="[web]")
              + GW.format(name="web", host="shop.example.com"), Severity.ERROR,
              "gateways: [web]"),
    "MD108": (GW.format(name="a", host="shop.example.com")
              + GW.format(name="b", host="shop.example.com"),
              GW.format(name="a", host="shop.example.com")
              + GW.format(name="b", host="admin.example.com"), Severity.ERROR,
              "- port:"),
    "MD109": (vs(route(to(), extra="\n  timeout: 10 seconds")) + dr(),
              vs(route(to(), extra="\n  timeout: 10s")) + dr(), Severity.ERROR, "- route:"),
    "MD110": (STRICT + dr(policy="{tls: {mode: DISABLE}}"),
              STRICT + dr(policy="{tls: {mode: ISTIO_MUTUAL}}"), Severity.ERROR,
              "object reviews"),
    "MD111": (SERVICE_DB % "methods: [GET]", SERVICE_DB % 'ports: ["5432"]', Severity.ERROR,
              "object db"),
    "MD113": (vs(route(to())) + vs(route(to())) + dr(),
              vs(route(to())) + dr(), Severity.ERROR, "object reviews"),
    "MD116": (vs(route(to())) + dr(name="reviews..dr"), vs(route(to())) + dr(name="reviews.dr"),
              Severity.ERROR, "object reviews..dr"),
    "MD131": (vs(route(to())) + dr() + HR.format(backend="reviews"), vs(route(to())) + dr(),
              Severity.ERROR, "object reviews"),
    "MD132": (dr() + HR.format(backend="ghost"), dr() + HR.format(backend="reviews"),
              Severity.ERROR, "object reviews-route"),
    "MD143": (GW.format(name="web", host="shop.example.com") + INGRESS % 443,
              GW.format(name="web", host="shop.example.com") + INGRESS % 80,
              Severity.WARNING, "- port:"),
    "MD144": (dr(host="ratings.example.org", policy="{tls: {mode: SIMPLE}}"),
              dr(host="ratings.example.org",
                 policy="{tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}}"),
              Severity.WARNING, "trafficPolicy:"),
    "MD145": (dr(host="ratings.example.org", policy="{portLevelSettings: [{port: {number: "
                 "443}, tls: {mode: MUTUAL}}]}"),
              dr(host="ratings.example.org", policy="{portLevelSettings: [{port: {number: "
                 "443}, tls: {mode: ISTIO_MUTUAL}}]}"), Severity.WARNING, "trafficPolicy:"),
    "MD146": (SERVICE_DB.replace("tcp-postgres", "postgres") % "ports: ['5432']",
              SERVICE_DB % "ports: ['5432']", Severity.INFO, "ports: [{port: 5432"),
    "MD148": (vs(route(to("v1")) + "- match: [{uri: {prefix: /beta}}]\n  route: ["
                 + to("v2") + "]\n") + dr(),
              vs("- match: [{uri: {prefix: /beta}}]\n  route: [" + to("v2") + "]\n"
                 + route(to("v1"))) + dr(), Severity.WARNING, "- match:"),
    "MD147": (TWO_PORTS + vs(route(plain("api")), name="api", host="api"),
              TWO_PORTS + vs(route("{destination: {host: api, port: {number: 80}}}"),
                             name="api", host="api"), Severity.ERROR, "- route:"),
}
# Canaries are meshdsl's own delivery plans: Istio YAML cannot state one. The CRD schema
# and CEL rule codes come from ``meshctl analyze``'s CRD check (tests/unit/crdcheck);
# tenancy (MD6xx) is the program's fence, which imported YAML has not; the ambient
# findings need a namespace's data-plane mode, which analyze does not read from YAML yet.
UNREACHABLE_FROM_YAML = {"MD112", "MD114", "MD115", "MD130", "MD133", "MD134", "MD135",
                         "MD136", "MD137", "MD140", "MD141", "MD601", "MD602", "MD603",
                         "MD604"}


def test_every_code_has_a_case_or_a_reason() -> None:
    assert set(CASES) | UNREACHABLE_FROM_YAML == set(CODES)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "istio.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("code", sorted(CASES))
def test_code_fires_on_bad_yaml_and_not_on_good(code: str, tmp_path: Path) -> None:
    bad, good, severity, marker = CASES[code]
    path = _write(tmp_path, bad)
    found = [f for f in analyze([path]) if f.code == code]
    assert found, f"{code} not reported"
    lines = bad.splitlines()
    for f in found:
        assert f.severity is severity and f.message and f.path
        assert f.source is not None and f.source.file == str(path)
        line = lines[f.source.line - 1]
        if marker.startswith("object "):
            head = "\n".join(lines[f.source.line - 1:f.source.line + 2])
            assert line.startswith("apiVersion:"), (f, head)
            assert any(f"name: {n}}}" in head for n in marker[7:].split("|")), (f, head)
        else:
            assert marker in line, (f, line)
    fixed = analyze([_write(tmp_path, good)])
    assert [f for f in fixed if f.code == code or f.severity is Severity.ERROR] == []


def _comparable(findings: list[Finding]) -> list[tuple[str, str, str, str]]:
    return sorted((f.code, f.severity.value, f.path, f.message) for f in findings)


@pytest.mark.parametrize("path", [SEED, CORPUS / "bookinfo-routing.yaml",
                                  CORPUS / "traffic-shifting.yaml", CORPUS / "ingress.yaml"],
                         ids=lambda p: p.name)
def test_analyze_reports_what_validate_reports_of_the_imported_program(path: Path) -> None:
    """Except for the codes meshdsl.analyzers answers with istioctl's semantics."""
    program = run_program(import_files([path]).source)
    ours = [f for f in validate(program) if f.code not in REPLACED]
    assert _comparable([f for f in analyze([path]) if f.code not in REPLACED]) == \
        _comparable(ours)


def test_the_seed_analyzes_clean_where_gateway_hosts_overlap_through_a_wildcard() -> None:
    """Its two gateways share port 80, one for api.example.com, one for "*": istioctl's
    conflict check compares host strings, and Envoy answers the more specific name."""
    assert analyze([SEED]) == []


def test_a_route_carried_raw_for_one_field_is_still_analyzed(tmp_path: Path) -> None:
    text = vs(route(to("v4"), extra="\n  directResponse: {status: 503}")) + dr()
    assert [f.code for f in analyze([_write(tmp_path, text)])] == ["MD101"]
