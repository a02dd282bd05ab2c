"""Fitting Istio fields into the typed model, and finding what did not fit.

Two questions decide whether a resource keeps its typed form: which input fields have no
place in the model (``fit``), and whether the typed form compiles back to exactly the
input (``tree_diff`` of the input against the compiler's output). Asking the compiler,
rather than trusting a hand-written field list, makes "the round trip is exact" true by
construction: anything that would come back different is reported and carried raw.

Values are validated strictly: a string where Istio wants a number is the user's error
(reported at its line), while a value the model merely does not allow (a load balancer
the DSL does not list, a missing optional-in-Istio field) is one more thing to carry raw.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from meshdsl.importer.manifests import Resource, type_name
from meshdsl.importer.yamlsource import YamlPath

M = TypeVar("M", bound=BaseModel)
Problem = tuple[YamlPath, str]

NOT_EXPRESSIBLE = "not expressible in the DSL"

# Fields people write that Istio does not have: say so, since the fix is to delete them.
HINTS = {
    "minRequestVolume": "not an Istio field (Istio's outlierDetection has no "
                        "minRequestVolume, it is Envoy's success-rate setting); the API "
                        "server prunes it, so it can be deleted",
    "protocol": "not expressible in the DSL (it writes appProtocol and leaves protocol to "
                "Kubernetes' default, TCP)",
}

# Model fields that are DSL vocabulary, not Istio fields (an input key of that name is not
# a field the DSL understands, so it must not be read into the model).
_DSL_ONLY = {"source", "services"}


def _model_shape(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("one" | "list" | "dict", model class) when a field holds models."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "one", annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        for arg in args:
            shape = _model_shape(arg)
            if shape is not None:
                return shape
    if origin is list and args:
        inner = _model_shape(args[0])
        return ("list", inner[1]) if inner and inner[0] == "one" else None
    if origin is dict and len(args) == 2:
        inner = _model_shape(args[1])
        return ("dict", inner[1]) if inner and inner[0] == "one" else None
    return None


def fit(cls: type[BaseModel], data: Any, path: YamlPath) -> tuple[Any, list[Problem]]:
    """``data`` without the keys ``cls`` (recursively) has no field for, and their paths."""
    if not isinstance(data, dict):
        return data, []  # a wrong type: validation reports it
    by_alias = {(f.alias or name): f for name, f in cls.model_fields.items()
                if name not in _DSL_ONLY}
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        field = by_alias.get(key)
        if field is None:
            problems.append(((*path, key), HINTS.get(key, NOT_EXPRESSIBLE)))
            continue
        shape = _model_shape(field.annotation)
        here = (*path, key)
        if shape is not None and shape[0] == "one":
            value, left = fit(shape[1], value, here)
            problems += left
        elif shape is not None and shape[0] == "list" and isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                item, left = fit(shape[1], item, (*here, i))
                items.append(item)
                problems += left
            value = items
        elif shape is not None and shape[0] == "dict" and isinstance(value, dict):
            entries = {}
            for k, item in value.items():
                entries[k], left = fit(shape[1], item, (*here, k))
                problems += left
            value = entries
        out[key] = value
    return out, problems


def _is_type_error(kind: str) -> bool:
    return kind.endswith("_type") or kind.endswith("_parsing") or kind == "int_from_float"


def build(res: Resource, cls: type[M], data: Any, path: YamlPath, problems: list[Problem],
          *, locs: Mapping[str, YamlPath] | None = None, fitted: bool = False) -> M | None:
    """``cls`` from Istio-shaped ``data`` found at ``path``.

    Unknown keys become problems; a wrong type raises :class:`InputError` at its line; a
    value the model does not accept becomes a problem and the result is None. ``locs``
    maps the first key of an error location to its YAML path when ``data`` was reshaped.
    """
    if not fitted:
        data, left = fit(cls, data, path)
        problems += left
    try:
        return cls.model_validate(data, strict=True)
    except ValidationError as exc:
        for err in exc.errors():
            loc: tuple[str | int, ...] = tuple(err["loc"])
            if loc and locs is not None and str(loc[0]) in locs:
                where: YamlPath = (*locs[str(loc[0])], *loc[1:])
            else:
                where = (*path, *loc)
            if _is_type_error(err["type"]):
                raise res.error(where, f"{err['msg'][0].lower()}{err['msg'][1:]} (got "
                                f"{type_name(err.get('input'))})") from exc
            detail = "missing, and the DSL requires it" if err["type"] == "missing" else \
                err["msg"].removeprefix("Value error, ")
            problems.append((where, f"not expressible in the DSL: {detail}"))
        return None


def pick(res: Resource, value: Any, path: YamlPath, keys: Mapping[str, str],
         problems: list[Problem]) -> tuple[dict[str, Any], dict[str, YamlPath]]:
    """The ``keys`` (Istio name → model name) of a mapping, renamed; the rest are problems."""
    mapping = res.mapping(value, path)
    data: dict[str, Any] = {}
    locs: dict[str, YamlPath] = {}
    for key, item in mapping.items():
        if key in keys:
            data[keys[key]] = item
            locs[keys[key]] = (*path, key)
        else:
            problems.append(((*path, key), HINTS.get(key, NOT_EXPRESSIBLE)))
    return data, locs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def tree_diff(expected: Any, actual: Any, path: YamlPath = ()) -> list[Problem]:
    """Where ``actual`` (compiled from the model) differs from ``expected`` (the input)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[Problem] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(((*path, key), HINTS.get(key, NOT_EXPRESSIBLE)))
            else:
                out += tree_diff(value, actual[key], (*path, key))
        out += [((*path, key), f"the DSL would add {_short(actual[key])}, which the input "
                 "does not have") for key in actual if key not in expected]
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for p in tree_diff(e, a, (*path, i))]
    if expected == actual:
        return []
    return [(path, f"not reproducible exactly: the DSL would write {_short(actual)}")]


def add_new(problems: list[Problem], more: Sequence[Problem]) -> None:
    """Append the problems not already explained: neither inside a reported path nor
    around one (a list that differs because an item of it could not be read)."""
    for path, reason in more:
        if not any(path[:len(p)] == p or p[:len(path)] == path for p, _ in problems):
            problems.append((path, reason))


def most_precise(problems: Sequence[Problem]) -> list[Problem]:
    """The problems without those that only enclose a more precise one, each once."""
    out: list[Problem] = []
    for path, reason in problems:
        inner = any(len(p) > len(path) and p[:len(path)] == path for p, _ in problems)
        if not inner and (path, reason) not in out:
            out.append((path, reason))
    return out
