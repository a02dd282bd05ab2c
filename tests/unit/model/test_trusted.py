"""The builder's own records are made from validated parts without validating them again
(``Frozen.trusted``): they must be the very values validation makes, and whatever
validation refused must still be refused, with the same message."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from meshdsl import Header, LoadBalancer, Mesh, Redirect, Retries, Uri
from meshdsl.model.base import Frozen, bulk_build
from meshdsl.model.routing import Destination
from meshdsl.model.scoped import SubsetRef


def _mesh() -> Mesh:
    mesh = Mesh("m")
    ns = mesh.namespace("team")
    a = ns.service("a", port=8080, versions=["v1", "v2"], labels={"tier": "web"})
    b = ns.service("b", port=9090, versions=["v1"], explicit_port=True)
    a.route(match=Header("x-canary", exact="true"), to=a.v2, timeout="5s")
    a.route(match=Uri(prefix="/b"), to={a.v1: 80, b.v1: 20},
            retries=Retries(attempts=2, retry_on="5xx"), mirror=b)
    a.route(to="external.example.com")
    a.policy(load_balancer=LoadBalancer(simple="RANDOM"))
    a.allow(b, "c", namespaces=["team"], methods=["GET"])
    b.authorization("deny-all", action="DENY")
    mesh.routes("edge", hosts=["edge.example.com"]).route(to=a.v1)
    return mesh


def _frozen_values(value: Any) -> list[Frozen]:
    """Every Frozen model inside ``value``, depth first."""
    found: list[Frozen] = []
    if isinstance(value, Frozen):
        found.append(value)
        for name in type(value).model_fields:
            found += _frozen_values(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += _frozen_values(item)
    elif isinstance(value, dict):
        for item in value.values():
            found += _frozen_values(item)
    return found


def test_every_record_is_what_validation_makes_of_its_values() -> None:
    spec = _mesh().build()
    models = _frozen_values(spec)
    kinds = {type(m).__name__ for m in models}
    assert {"Destination", "HttpRoute", "VirtualService", "DestinationRule", "TrafficPolicy",
            "ServiceSpec", "AuthorizationPolicy", "Rule", "From", "ServiceRef"} <= kinds
    for model in models:
        given = {name: getattr(model, name) for name in model.model_fields_set}
        validated = type(model).model_validate(given)
        assert model == validated
        assert list(model.__dict__) == list(validated.__dict__)  # field order: repr, dumps
        assert repr(model) == repr(validated)
        assert model.model_fields_set == validated.model_fields_set
        assert model.model_dump(mode="json", by_alias=True) == validated.model_dump(
            mode="json", by_alias=True)
        assert model.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
        assert model.__pydantic_extra__ is None and model.__pydantic_private__ is None
        copied = model.model_copy()
        assert copied == model and copied.model_fields_set == model.model_fields_set


def test_references_hash_like_validated_ones_and_records_share_their_field_sets() -> None:
    mesh = Mesh("m")
    svc = mesh.service("a", versions=["v1"])
    assert svc.v1 == SubsetRef(service="a", namespace="default", subset="v1")
    assert hash(svc.v1) == hash(SubsetRef(service="a", namespace="default", subset="v1",
                                          port=None))
    assert {svc.v1: 1}[SubsetRef(service="a", namespace="default", subset="v1", port=None)]
    svc.route(to=svc.v1)
    other = mesh.service("b", versions=["v1"])
    other.route(to=other.v1)
    first, second = (vs.http[0].to[0] for vs in mesh.build().virtual_services)
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == {"host", "subset", "port", "weight"}


def test_a_built_spec_does_not_change_when_the_program_goes_on() -> None:
    mesh = Mesh("m")
    svc = mesh.service("a", versions=["v1"], labels={"x": "1"})
    svc.route(to=svc.v1)
    svc.allow("b")
    before = mesh.build()
    svc.route(to=svc.v1, timeout="1s")
    svc.allow("c")
    svc.meta["labels"]["y"] = "2"
    assert len(before.virtual_services[0].http) == 1
    assert len(before.authorization_policies[0].rules) == 1
    assert before.services[0].labels == {"x": "1"}
    assert len(mesh.build().virtual_services[0].http) == 2


def _port_out_of_range(mesh: Mesh) -> None:
    svc = mesh.service("a", port=80, versions=["v1"])
    svc.route(to=svc.v1.on(70000))


def _route_and_redirect(mesh: Mesh) -> None:
    svc = mesh.service("a", versions=["v1"])
    svc.route(to=svc.v1, redirect=Redirect(uri="/x"))


# what each bad program raised before records were made without a second validation
# (the message's first lines, as pydantic wrote them)
REFUSED: list[tuple[str, Callable[[Mesh], object], str]] = [
    ("port", _port_out_of_range, "1 validation error for Destination\nport\n  Input should "
     "be less than or equal to 65535 [type=less_than_equal, input_value=70000, "
     "input_type=int]"),
    ("name", lambda m: m.service(5, versions=["v1"]) and m.build(),  # type: ignore[arg-type]
     "2 validation errors for DestinationRule\nname\n  Input should be a valid string "
     "[type=string_type, input_value=5, input_type=int]"),
    ("ref", lambda m: m.service(5, versions=["v1"]).v1,  # type: ignore[arg-type]
     "1 validation error for SubsetRef\nservice\n  Input should be a valid string "
     "[type=string_type, input_value=5, input_type=int]"),
    ("both", _route_and_redirect, "1 validation error for HttpRoute\n  Value error, a route "
     "either redirects or sends traffic 'to' a destination, not both"),
    ("neither", lambda m: m.service("a").route(timeout="1s"), "1 validation error for "
     "HttpRoute\n  Value error, a route needs 'to=' (a destination) or 'redirect='"),
    ("timeout", lambda m: m.service("a").route(to="x", timeout=5),
     "1 validation error for HttpRoute\ntimeout\n  Input should be a valid string "
     "[type=string_type, input_value=5, input_type=int]"),
    ("action", lambda m: m.service("a").authorization(action="NOPE") and m.build(),  # type: ignore[arg-type]
     "1 validation error for AuthorizationPolicy\naction\n  Input should be 'ALLOW', 'DENY', "
     "'AUDIT' or 'CUSTOM' [type=literal_error, input_value='NOPE', input_type=str]"),
    ("rule", lambda m: m.service("a").authorization().rule(from_=[{"bogus": 1}]),  # type: ignore[list-item]
     "1 validation error for Rule\nfrom.0.bogus\n  Extra inputs are not permitted "
     "[type=extra_forbidden, input_value=1, input_type=int]"),
    ("caller", lambda m: m.service("a").allow(7),  # type: ignore[arg-type]
     "1 validation error for ServiceRef\nname\n  Input should be a valid string "
     "[type=string_type, input_value=7, input_type=int]"),
    ("namespace", lambda m: m.service("a").allow("b", namespaces=[3]),
     "1 validation error for From\nnamespaces.0\n  Input should be a valid string "
     "[type=string_type, input_value=3, input_type=int]"),
    ("label", lambda m: m.service("a", labels={"x": 1}) and m.build(),  # type: ignore[dict-item]
     "1 validation error for ServiceSpec\nlabels.x\n  Input should be a valid string "
     "[type=string_type, input_value=1, input_type=int]"),
    ("service type", lambda m: m.service("a", service_type="Nope") and m.build(),  # type: ignore[arg-type]
     "1 validation error for ServiceSpec\nservice_type\n  Input should be 'ClusterIP', "
     "'NodePort' or 'LoadBalancer' [type=literal_error, input_value='Nope', input_type=str]"),
    ("hosts", lambda m: m.routes("r", hosts=[]).route(to="x") and m.build(),
     "1 validation error for VirtualService\nhosts\n  List should have at least 1 item after "
     "validation, not 0 [type=too_short, input_value=[], input_type=list]"),
]


@pytest.mark.parametrize(("program", "message"), [(p, m) for _, p, m in REFUSED],
                         ids=[name for name, _, _ in REFUSED])
def test_what_validation_refused_is_refused_with_its_message(
        program: Callable[[Mesh], object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        program(Mesh("m"))
    assert str(raised.value).startswith(message)


def test_values_validation_converts_are_still_converted() -> None:
    mesh = Mesh("m")
    svc = mesh.service("a", port=80, versions=["v1"])
    svc.route(to=svc.v1.on("8080"), mirror=svc.v1, mirror_percent=50)  # type: ignore[arg-type]
    svc.policy(load_balancer={"simple": "RANDOM"})  # type: ignore[arg-type]
    spec = mesh.build()
    route = spec.virtual_services[0].http[0]
    assert route.to == [Destination(host="a", subset="v1", port=8080)]
    assert route.mirror_percent == 50.0 and type(route.mirror_percent) is float
    policy = spec.destination_rules[0].traffic_policy
    assert policy is not None and policy.load_balancer == LoadBalancer(simple="RANDOM")


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_bulk_build_collects_young_cycles_and_returns_the_rest_at_the_end() -> None:
    before = gc.get_threshold()
    with bulk_build(young=1000):
        young = _Cycle()
        dies_young = weakref.ref(young)
        del young
        gc.collect(0)
        assert dies_young() is None
        old = _Cycle()
        survivor = weakref.ref(old)
        gc.collect(0)  # survives a collection: frozen from now on
        assert gc.get_freeze_count() > 0
        del old
        gc.collect()
        assert survivor() is not None  # kept until the block ends
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    gc.collect()
    assert survivor() is None


def test_bulk_build_leaves_a_freeze_it_did_not_make() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with bulk_build(young=1000):
            with bulk_build(young=1000):
                pass
            gc.collect(0)
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()
