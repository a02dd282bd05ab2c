"""Frozen values a program repeats are one object: what keeps a 10,000-service mesh small."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from meshdsl import Header, Mesh, Method, Query, Uri, Version
from meshdsl.model.base import shared


def test_equal_conditions_are_one_object_and_different_ones_are_not() -> None:
    assert Header("X-Canary", exact="true") is Header("x-canary", exact="true")
    assert Header("x-canary", exact="true") is not Header("x-canary", exact="false")
    assert Uri(prefix="/a") is Uri(prefix="/a")
    assert Uri(prefix="/a") is not Uri(prefix="/a", ignore_case=True)
    assert Query("v", exact="1") is not Header("v", exact="1")
    assert Method("get") is Method("GET")


def test_an_unhashable_argument_is_reported_by_validation() -> None:
    with pytest.raises(pydantic.ValidationError):
        Header("x", exact=["not", "a", "string"])  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        Uri(prefix="/a", regex="b")  # two kinds at once: still refused, never memoised


def test_shared_keeps_types_apart() -> None:
    made: list[object] = []

    @shared
    def box(value: object) -> list[object]:
        made.append(value)
        return [value]

    assert box(1) is box(1)
    assert box(1) is not box(True)  # equal and same hash, but not the same argument
    assert box([1]) is not box([1])  # unhashable: built each time
    assert made == [1, True, [1], [1]]


def test_services_share_versions_ports_and_default_subsets_but_not_routes() -> None:
    mesh = Mesh("m")
    a = mesh.service("a", port=8080, versions=["v1", "v2"])
    b = mesh.service("b", port=8080, versions=["v1", Version("v2", labels={"track": "b"})])
    assert a.v1 is a.v1 and a.v1 is a.subset("v1") and a.v1 is not b.v1
    a.route(to=a.v1)
    b.route(to=b.v1)
    spec = mesh.build()
    sa, sb = spec.services
    assert sa.versions[0] is sb.versions[0] and sa.ports[0] is sb.ports[0]
    assert sa.versions[1] is not sb.versions[1]
    dra, drb = spec.destination_rules
    assert dra.subsets[0] is drb.subsets[0]
    assert drb.subsets[1].labels == {"track": "b"} and dra.subsets[1].labels == {"version": "v2"}
    assert spec.virtual_services[0].http[0] is not spec.virtual_services[1].http[0]


def test_models_that_set_the_same_fields_share_one_record_of_them() -> None:
    from meshdsl import Retries

    first = Retries(attempts=3, per_try_timeout="2s")
    second = Retries(attempts=5, per_try_timeout="1s")
    other = Retries(attempts=1)
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == {"attempts", "per_try_timeout"}
    assert other.model_fields_set == {"attempts"}
    copied = first.model_copy(update={"retry_on": "5xx"})  # copies the record first
    assert copied.model_fields_set == {"attempts", "per_try_timeout", "retry_on"}
    assert second.model_fields_set == {"attempts", "per_try_timeout"}
    assert first.model_dump(exclude_unset=True) == {"attempts": 3, "per_try_timeout": "2s"}
    with pytest.raises(pydantic.ValidationError):
        first.attempts = 4  # type: ignore[misc]  # frozen: the shared record never grows
    assert second.model_fields_set == {"attempts", "per_try_timeout"}


def test_a_cached_reference_does_not_declare_a_version() -> None:
    svc = Mesh("m").service("a", versions=["v1"])
    assert svc.subset("v4").subset == "v4"  # named anyway: the validator reports it
    with pytest.raises(AttributeError, match="no version 'v4'"):
        _ = svc.v4


def test_a_shared_value_is_dumped_once_and_each_caller_owns_its_copy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from meshdsl.model import base
    from meshdsl.model.base import dump

    match = Header("x-shared-dump", exact="yes")
    dumps = 0
    original = base._dump

    def counting(model: Any, exclude: frozenset[str]) -> Any:
        nonlocal dumps
        dumps += 1
        return original(model, exclude)

    monkeypatch.setattr(base, "_dump", counting)
    first = dump(match)
    assert first == {"headers": {"x-shared-dump": {"exact": "yes"}}}
    first["headers"]["x-shared-dump"]["exact"] = "changed by a caller"
    second = dump(Header("x-shared-dump", exact="yes"))
    assert second == {"headers": {"x-shared-dump": {"exact": "yes"}}}
    assert second["headers"] is not first["headers"]
    assert dumps == 1
    from meshdsl.model.matching import Match

    own = Match(headers={"x-own": {"exact": "1"}})  # not shared: dumped each time
    dump(own)
    dump(own)
    assert dumps == 3
