"""One table row per finding code: a minimal mesh that triggers it, and its fixed twin."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshdsl import (
    ClientTls,
    From,
    Mesh,
    Retries,
    ServicePort,
    Tenancy,
    To,
    Uri,
)
from meshdsl.validate import CODES, Severity, validate
from tests.unit.validate.test_ambient import CASES as AMBIENT_CASES


def _subset(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    r.route(to=r.subset("v4") if bad else r.v2)
    return mesh


def _unknown_host(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", port=9080, versions=["v1"])
    if not bad:
        mesh.service("ratings", port=9080)
    r.route(match=Uri(prefix="/r"), to="ratings")
    r.route(to=r.v1)
    return mesh


def _weights(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    r.route(to={r.v1: 90, r.v2: 20 if bad else 10})
    return mesh


def _negative(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    r.route(to={r.v1: 110, r.v2: -10} if bad else {r.v1: 100, r.v2: 0})
    return mesh


def _conflict(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1"])
    r.route(to=r.v1)
    mesh.routes("reviews-extra", hosts=["reviews" if bad else "reviews-canary"]).route(to=r.v1)
    if not bad:
        mesh.service("reviews-canary")
    return mesh


def _shadowed(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    if bad:
        r.route(to=r.v1)
        r.route(match=Uri(prefix="/beta"), to=r.v2)
    else:
        r.route(match=Uri(prefix="/beta"), to=r.v2)
        r.route(to=r.v1)
    return mesh


def _gateway_missing(bad: bool) -> Mesh:
    mesh = Mesh("t")
    page = mesh.service("productpage", port=9080)
    if not bad:
        mesh.gateway("web").http("*")
    mesh.routes("page", hosts=["*"], gateways=["web"]).route(to=page)
    return mesh


def _host_not_in_gateway(bad: bool) -> Mesh:
    mesh = Mesh("t")
    page = mesh.service("productpage", port=9080)
    gw = mesh.gateway("web").http("shop.example.com")
    gw.routes("page", hosts=["admin.example.com" if bad else "shop.example.com"]).route(to=page)
    return mesh


def _gateway_conflict(bad: bool) -> Mesh:
    mesh = Mesh("t")
    mesh.gateway("a").http("shop.example.com")
    mesh.gateway("b").http("shop.example.com" if bad else "admin.example.com")
    return mesh


def _duration(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1"])
    r.route(to=r.v1, timeout="10 seconds" if bad else "10s",
            retries=Retries(attempts=3, per_try_timeout="2s"))
    return mesh


def _mtls(bad: bool) -> Mesh:
    mesh = Mesh("t")
    mesh.mtls("STRICT")
    r = mesh.service("reviews", versions=["v1"])
    r.policy(tls=ClientTls(mode="DISABLE" if bad else "ISTIO_MUTUAL"))
    return mesh


def _http_on_tcp(bad: bool) -> Mesh:
    mesh = Mesh("t")
    db = mesh.service("db", port=ServicePort(number=5432, name="tcp-postgres"))
    client = mesh.service("api", port=8080)
    authz = db.authorization()
    if bad:
        authz.allow(client, methods=["GET"])
    else:
        authz.rule(from_=From(services=[]), to=To(ports=[5432]))
        authz.allow(client)
    return mesh


def _canary(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    r.route(to=r.v1)
    r.canary(target="v3" if bad else "v2", steps=[10, 50, 100])
    return mesh


def _duplicate(bad: bool) -> Mesh:
    mesh = Mesh("t")
    mesh.service("reviews")
    mesh.service("reviews" if bad else "ratings")
    return mesh


def _canary_without_route(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    if not bad:
        r.route(to=r.v1)
    r.canary(target="v2")
    return mesh


def _two_canaries(bad: bool) -> Mesh:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2", "v3"])
    r.route(to=r.v1)
    r.canary(target="v2", stable="v1")
    if bad:
        r.canary(target="v3", stable="v1")
    return mesh


def _bad_name(bad: bool) -> Mesh:
    mesh = Mesh("t", namespace="../../x" if bad else "shop")
    mesh.service("Web_1" if bad else "web-1", versions=["v1"])
    return mesh


CASES: list[tuple[str, Callable[[bool], Mesh], Severity]] = [
    ("MD101", _subset, Severity.ERROR),
    ("MD102", _unknown_host, Severity.ERROR),
    ("MD103", _weights, Severity.ERROR),
    ("MD103", _negative, Severity.ERROR),
    ("MD104", _conflict, Severity.ERROR),
    ("MD105", _shadowed, Severity.WARNING),
    ("MD106", _gateway_missing, Severity.ERROR),
    ("MD107", _host_not_in_gateway, Severity.ERROR),
    ("MD108", _gateway_conflict, Severity.ERROR),
    ("MD109", _duration, Severity.ERROR),
    ("MD110", _mtls, Severity.ERROR),
    ("MD111", _http_on_tcp, Severity.ERROR),
    ("MD112", _canary, Severity.ERROR),
    ("MD113", _duplicate, Severity.ERROR),
    ("MD114", _canary_without_route, Severity.ERROR),
    ("MD115", _two_canaries, Severity.ERROR),
    ("MD601", lambda bad: _raw(bad, "Service", "payments"), Severity.ERROR),
    ("MD602", lambda bad: _raw(bad, "ClusterRole", ""), Severity.ERROR),
    ("MD603", lambda bad: _raw(bad, "Service", "kube-system"), Severity.WARNING),
    ("MD604", lambda bad: _raw(bad, "ConfigMap", "shop", "meshdsl-status-x"), Severity.ERROR),
    ("MD116", _bad_name, Severity.ERROR),
]


def _raw(bad: bool, kind: str, namespace: str, name: str = "x") -> Mesh:
    """A raw object outside the fence (bad), or the fence widened / the object renamed."""
    widen = (not bad and kind != "ConfigMap") or namespace == "kube-system"
    if not bad and namespace == "kube-system":
        namespace = "shop"   # declared, but reserved: only the good twin moves out
    mesh = Mesh("t", namespace="shop", tenancy=Tenancy(
        namespaces=["shop", namespace] if widen and namespace else None,
        cluster_kinds=["ClusterRole"] if widen and not namespace else []))
    meta = {"name": name if bad else "settings"}
    if namespace:
        meta["namespace"] = namespace
    mesh.raw({"apiVersion": "rbac.authorization.k8s.io/v1" if kind == "ClusterRole" else "v1",
              "kind": kind, "metadata": meta})
    return mesh


@pytest.mark.parametrize(("code", "make", "severity"), CASES + AMBIENT_CASES,
                         ids=[f"{c}-{m.__name__}" for c, m, _ in CASES + AMBIENT_CASES])
def test_rule_fires_on_bad_and_not_on_good(code: str, make: Callable[[bool], Mesh],
                                           severity: Severity) -> None:
    bad = [f for f in validate(make(True).build()) if f.code == code]
    assert bad, f"{code} not reported"
    assert all(f.severity is severity for f in bad)
    assert all(f.source is not None and f.source.file == make.__code__.co_filename
               for f in bad), bad
    assert all(f.message and f.path for f in bad)
    good = validate(make(False).build())
    assert [f for f in good if f.severity is Severity.ERROR] == [], good
    assert [f for f in good if f.code == code] == []


# Codes that never come from validate(spec): the CRD check (tests/unit/crdcheck) and the
# istioctl analyzers on input YAML (tests/unit/analyzers, tests/unit/importer).
NOT_FROM_THE_MODEL = {"MD140", "MD141", "MD143", "MD144", "MD145", "MD146", "MD147",
                      "MD148"}


def test_every_code_is_covered_by_a_case() -> None:
    assert {c for c, _, _ in CASES + AMBIENT_CASES} == set(CODES) - NOT_FROM_THE_MODEL


def test_findings_point_at_the_declaring_line() -> None:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1"])
    line = _lineno() + 1
    r.route(to=r.subset("v9"))
    (finding,) = [f for f in validate(mesh.build()) if f.code == "MD101"]
    assert finding.source is not None and finding.source.line == line
    assert "v9" in finding.message and "v1" in finding.message


def test_a_later_canary_plan_is_reported_where_declared_naming_the_first() -> None:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2", "v3"])
    r.route(to=r.v1)
    first = _lineno() + 1
    r.canary(target="v2", stable="v1")
    mesh.service("ratings", versions=["v1", "v2"]).canary(target="v2")
    second = _lineno() + 1
    r.canary(target="v3", stable="v1")
    third = _lineno() + 1
    r.canary(target="v3", stable="v2")
    found = [f for f in validate(mesh.build()) if f.code == "MD115"]
    assert [f.source.line for f in found if f.source] == [second, third]
    assert all(f.path == "Canary default/reviews" for f in found)
    assert found[0].message == (f"a second canary plan for 'reviews' (the first is at "
                                f"{__file__}:{first}); keep one")
    assert found[1].message.startswith("another canary plan for 'reviews'")
    assert f"{__file__}:{first}" in found[1].message


def test_all_findings_are_collected_not_just_the_first() -> None:
    mesh = Mesh("t")
    r = mesh.service("reviews", versions=["v1", "v2"])
    r.route(to={r.subset("v7"): 50, r.v2: 40}, timeout="soon")
    codes = sorted(f.code for f in validate(mesh.build()))
    assert codes == ["MD101", "MD103", "MD109"]


def _lineno() -> int:
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno
