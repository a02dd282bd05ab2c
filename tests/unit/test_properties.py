"""Properties over generated meshes: what validates compiles to schema-valid Istio, and
bad input gives findings or a pydantic error — never any other exception.

Two generators: ``meshes(clean=True)`` draws only valid settings (known durations and
subsets, weights that add up to 100, gateway hosts that match), so nearly every example
reaches the schema check; ``meshes(clean=False)`` mixes in bad ones for the "findings,
never a crash" property. The clean property filters with ``assume``: if the generator
drifts into mostly-invalid meshes, hypothesis fails the test (filter_too_much) instead of
letting it pass on a handful of examples."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from meshdsl import (
    Abort,
    ConnectionPool,
    ConsistentHash,
    Delay,
    Fault,
    Header,
    HeaderOps,
    Headers,
    HttpCookie,
    HttpPool,
    LoadBalancer,
    Mesh,
    Method,
    OutlierDetection,
    Query,
    Retries,
    TcpPool,
    Uri,
)
from meshdsl.compile import compile_mesh, render
from meshdsl.compile.schema import SchemaIndex
from meshdsl.validate import has_errors, validate
from tests.conftest import SHARED

names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
good_durations = st.sampled_from(["1s", "250ms", "10s", "1m", "1h30m"])
any_durations = st.one_of(good_durations, st.sampled_from(["soon", "10 s", "", "-1s"]))
paths = st.from_regex(r"/[a-z]{0,6}", fullmatch=True)


@functools.cache
def schemas() -> SchemaIndex:
    return SchemaIndex(yaml.load_all((SHARED / "istio" / "crd-all.gen.yaml").read_text(),
                                     Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


@st.composite
def matches(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["uri", "header", "query", "method", "and"]))
    if kind == "uri":
        return Uri(**{draw(st.sampled_from(["exact", "prefix", "regex"])): draw(paths)})
    if kind == "header":
        return Header(draw(names), exact=draw(names))
    if kind == "query":
        return Query(draw(names), prefix=draw(names))
    if kind == "method":
        return Method(draw(st.sampled_from(["GET", "POST", "PUT"])))
    return Uri(prefix=draw(paths)) & Method("GET")


@st.composite
def policies(draw: st.DrawFn, durations: st.SearchStrategy[str] = any_durations
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["connection_pool"] = ConnectionPool(
            tcp=TcpPool(max_connections=draw(st.integers(1, 1000)),
                        connect_timeout=draw(durations)),
            http=HttpPool(http1_max_pending_requests=draw(st.integers(1, 1000)),
                          max_requests_per_connection=draw(st.integers(0, 10))))
    if draw(st.booleans()):
        out["load_balancer"] = draw(st.one_of(
            st.builds(LoadBalancer, simple=st.sampled_from(
                ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"])),
            st.builds(lambda n, t: LoadBalancer(consistent_hash=ConsistentHash(
                http_cookie=HttpCookie(name=n, ttl=t))), names, durations),
            st.builds(lambda h: LoadBalancer(consistent_hash=ConsistentHash(
                http_header_name=h)), names)))
    if draw(st.booleans()):
        out["outlier_detection"] = OutlierDetection(
            consecutive_5xx_errors=draw(st.integers(0, 10)), interval=draw(durations),
            base_ejection_time=draw(durations), max_ejection_percent=draw(st.integers(0, 100)))
    return out


@st.composite
def route_options(draw: st.DrawFn, durations: st.SearchStrategy[str]) -> dict[str, Any]:
    """The optional parts of a route: matches, timeout, retries, fault, header edits."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["match"] = draw(st.lists(matches(), min_size=1, max_size=2))
    if draw(st.booleans()):
        out["timeout"] = draw(durations)
    if draw(st.booleans()):
        out["retries"] = Retries(attempts=draw(st.integers(0, 5)),
                                 per_try_timeout=draw(durations))
    if draw(st.booleans()):
        out["fault"] = Fault(abort=Abort(status=503, percent=draw(st.floats(0, 100))),
                             delay=Delay(fixed=draw(durations)))
    if draw(st.booleans()):
        out["headers"] = Headers(request=HeaderOps(set={"x-a": "b"}, remove=["x-c"]))
    return out


@st.composite
def split(draw: st.DrawFn, parts: int) -> list[int]:
    """``parts`` non-negative weights that add up to 100."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=parts - 1,
                                max_size=parts - 1)))
    bounds = [0, *cuts, 100]
    return [b - a for a, b in itertools.pairwise(bounds)]


@st.composite
def meshes(draw: st.DrawFn, *, clean: bool) -> Mesh:
    durations = good_durations if clean else any_durations
    mesh = Mesh("gen", mtls=draw(st.sampled_from([None, "STRICT", "PERMISSIVE"])))
    services = []
    for name in draw(st.lists(names, min_size=1, max_size=4, unique=True)):
        versions = draw(st.lists(st.sampled_from(["v1", "v2", "v3"]), unique=True, max_size=3))
        svc = mesh.service(name, port=draw(st.sampled_from([80, 8080, 9080])),
                           versions=versions)
        services.append(svc)
        pol = draw(policies(durations))
        if pol:
            svc.policy(**pol)
    for svc in services:
        for _ in range(draw(st.integers(1 if svc is services[0] else 0, 3))):
            target = draw(st.sampled_from(services))
            subsets = [v.name for v in target.versions] + ([] if clean else ["v9"])
            if draw(st.booleans()) and len(subsets) > 1:
                chosen = draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=3,
                                       unique=True))
                weights = draw(split(len(chosen))) if clean else draw(st.lists(
                    st.integers(-5, 100), min_size=len(chosen), max_size=len(chosen)))
                to: Any = {target.subset(s): w for s, w in zip(chosen, weights, strict=True)}
            else:
                to = target
            kwargs: dict[str, Any] = {"to": to, **draw(route_options(durations))}
            svc.route(**kwargs)
    if draw(st.booleans()):
        served = draw(st.sampled_from(["*", "shop.example.com"]))
        gw = mesh.gateway("edge").http(served)
        hosts = ["shop.example.com"] if clean and served != "*" else \
            ["shop.example.com", "other.example.com"]
        gw.routes("edge-routes", hosts=[draw(st.sampled_from(hosts))]).route(to=services[0])
    if draw(st.booleans()):
        services[0].allow(*services[1:], methods=["GET"], paths=["/api/*"])
    return mesh


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes(clean=True))
def test_what_validates_compiles_to_schema_valid_istio(mesh: Mesh) -> None:
    spec = mesh.build()
    findings = validate(spec)
    assume(not has_errors(findings))
    event("schema-checked")
    manifests = compile_mesh(spec)
    istio = [m for m in manifests if "istio.io" in m["apiVersion"]]
    assert istio, "every generated mesh has at least one Istio object to check"
    for manifest in istio:
        assert schemas().errors(manifest) == [], manifest
    assert render(spec) == render(mesh.build())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes(clean=False))
def test_any_mesh_gives_findings_or_schema_valid_istio(mesh: Mesh) -> None:
    spec = mesh.build()
    findings = validate(spec)
    manifests = compile_mesh(spec)
    if has_errors(findings):
        event("rejected with findings")
        assert all(f.code and f.path and f.message for f in findings), findings
        return
    event("schema-checked")
    for manifest in manifests:
        if "istio.io" in manifest["apiVersion"]:
            assert schemas().errors(manifest) == [], manifest


bad_values = st.one_of(st.none(), st.integers(-10**6, 10**6), st.text(max_size=5),
                       st.lists(st.integers(), max_size=2), st.dictionaries(
                           st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from([Retries, OutlierDetection, HttpPool, LoadBalancer, Abort,
                              ConsistentHash, HttpCookie, Delay]),
       data=st.dictionaries(st.sampled_from(
           ["attempts", "per_try_timeout", "simple", "status", "percent", "name", "ttl",
            "interval", "http_cookie", "fixed", "unknown_field", "max_retries"]),
           bad_values, max_size=4))
def test_bad_arguments_are_clear_errors(model: Any, data: dict[str, Any]) -> None:
    fields = {name for name, info in model.model_fields.items()} | {
        info.alias for info in model.model_fields.values() if info.alias}
    try:
        built = model(**data)
    except ValidationError as exc:
        errors = exc.errors()
        assert errors, "a validation error says what is wrong"
        for error in errors:
            assert error["msg"], error
            # it names the argument given, the required one missing, or the model as a whole
            where = error["loc"][0] if error["loc"] else None
            assert where is None or where in data or (
                error["type"] == "missing" and where in fields), (error, data)
        return
    event(f"{model.__name__} built")
    # accepted: then every argument was a real field (unknown ones are refused) and the
    # model holds exactly what it was given, surviving its own dump/validate round trip
    assert set(data) <= fields, f"{model.__name__} accepted unknown arguments {data}"
    for key, value in data.items():
        held = getattr(built, key)
        assert held == value or (isinstance(held, BaseModel) and isinstance(value, dict)), \
            (key, value, held)
    assert model.model_validate(built.model_dump()) == built


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), json_like, max_size=5), max_size=3))
def test_yaml_emitter_reads_back_exactly(documents: list[dict[str, Any]]) -> None:
    from meshdsl.compile.yamltext import dump_all

    assert list(yaml.safe_load_all(dump_all(documents))) == documents
