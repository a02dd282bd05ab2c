"""``dump`` reads plain fields from the frozen model itself: it must give exactly what
pydantic's JSON-mode dump gives after ``clean``, for every model of real meshes, and leave
what it cannot read plainly to pydantic."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, field_serializer

from bench.meshgen import generate
from meshdsl.model import base
from meshdsl.model.base import Frozen, clean, dump
from tests.conftest import load_example


def _models(value: Any) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _models(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _models(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models(item)


def _pydantic(model: BaseModel) -> Any:
    return clean(model.model_dump(by_alias=True, exclude_none=True, mode="json"))


@pytest.mark.parametrize("name", ["bookinfo", "ambient", "canary", "generated",
                                  "generated-ambient"])
def test_every_model_of_a_mesh_dumps_as_pydantic_does(name: str) -> None:
    spec = generate(12).build() if name == "generated" else \
        generate(12, mode="ambient").build() if name == "generated-ambient" else \
        load_example(name)
    models = list(_models(spec))
    kinds = {type(m) for m in models}
    assert len(kinds) > 10
    for model in models:
        expected = _pydantic(model)
        got = base._plain(model)  # the fast path itself, never its fallback
        assert repr(got) == repr(expected), type(model)  # same keys, order, value types
        assert repr(dump(model)) == repr(expected)


class _Mode(enum.Enum):
    STRICT = "STRICT"


class _Enumed(Frozen):
    mode: _Mode
    ports: dict[int, str] = {}


class _Serialised(Frozen):
    name: str

    @field_serializer("name")
    def _upper(self, value: str) -> str:
        return value.upper()


def test_what_only_pydantic_knows_is_dumped_by_pydantic() -> None:
    enumed = _Enumed(mode=_Mode.STRICT, ports={8080: "DISABLE"})
    assert dump(enumed) == {"mode": "STRICT", "ports": {"8080": "DISABLE"}}
    assert dump(_Serialised(name="abc")) == {"name": "ABC"}
    with pytest.raises(base._NotPlain):
        base._plain(enumed)


def test_a_shared_dump_is_copied_whole_even_when_not_a_literal() -> None:
    data = {"a": [1.5, {"b": float("inf")}], "c": True}
    make = base._copier(data)
    first, second = make(), make()
    assert first == second == data and first is not data and first["a"] is not second["a"]
    literal = base._copier({"x": ["y", 1, None, False, 2.5e-07]})
    assert literal() == {"x": ["y", 1, None, False, 2.5e-07]}
    assert literal()["x"] is not literal()["x"]


class _Nested(Frozen):
    table: dict[str, dict[str, list[str]]] = {}
    rows: list[dict[str, Any]] = []
    weight: float | None = None


def test_empty_values_are_cleaned_as_clean_does() -> None:
    nested = _Nested(table={"a": {}, "b": {"c": [], "d": ["e"]}},
                     rows=[{}, {"x": None, "y": [None, 1]}], weight=0.5)
    assert repr(base._plain(nested)) == repr(_pydantic(nested)) == repr(
        {"table": {"b": {"d": ["e"]}}, "rows": [{}, {"y": [None, 1]}], "weight": 0.5})
