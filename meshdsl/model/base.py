"""Shared bits of the model: the frozen base class and where an object was declared.

Every DSL object is a frozen pydantic model that rejects unknown fields, so a typo in a
keyword is an error at the user's line instead of a silently ignored setting.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import math
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ParamSpec, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SourceLocation(BaseModel):
    """Where in the user's program an object was declared (file and 1-based line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_LIMIT = 4096


# the same, by the order a set of names iterates in (one content may have a few orders)
_BY_ORDER: dict[tuple[str, ...], set[str]] = {}


def _shared_fields(fields: Iterable[str]) -> set[str] | None:
    """The one set of these field names, for models that set the same fields to share
    (None once the registry is full)."""
    key = frozenset(fields)
    one = _FIELD_SETS.get(key)
    if one is None and len(_FIELD_SETS) < _FIELD_SETS_LIMIT:
        one = _FIELD_SETS[key] = set(key)
    return one


class Frozen(BaseModel):
    """Base of every DSL value: immutable, no unknown fields, camelCase aliases for Istio."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        """Share the record of explicitly set fields between values that set the same ones.

        pydantic keeps a set per instance (216 bytes, 728 past four names); a mesh of
        10,000 services has about 30 distinct ones among 260,000 models, a third of its
        memory. A frozen model never changes its set in place (``model_copy`` copies it
        first), so one set per distinct content is safe to share."""
        fields = self.__pydantic_fields_set__
        order = tuple(fields)  # hashed and compared faster than a frozenset
        one = _BY_ORDER.get(order)
        if one is None:
            one = _shared_fields(fields)
            if one is None:
                return
            if len(_BY_ORDER) < _FIELD_SETS_LIMIT:
                _BY_ORDER[order] = one
        if one is not fields:
            _set(self, "__pydantic_fields_set__", one)

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """``cls.model_validate(values)`` for values that are already valid, without
        validating them again: what the builder records from parts pydantic checked
        (a ``Destination`` from a ``SubsetRef``, an ``HttpRoute`` of validated pieces).

        The caller answers for ``values`` (field names as keys, each value what validation
        would store, containers copied, and the model's own validators satisfied); a
        caller not sure of a value calls ``model_validate``, so what is refused, and its
        message, stays pydantic's. As pydantic's ``model_construct``, minus alias lookups,
        and with the set of given fields shared as :meth:`model_post_init` shares it:
        a second validation of validated parts was half of a large program's time."""
        key = (cls, tuple(values))
        defaults, factories, fields_set = _SHAPES.get(key) or _shape(key)
        fields = {**defaults, **values}
        for name, factory in factories:
            fields[name] = factory()
        model = _new(cls)
        _set(model, "__dict__", fields)
        _set(model, "__pydantic_fields_set__", fields_set)
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


_new = object.__new__
_set = object.__setattr__
Factories = tuple[tuple[str, Callable[[], Any]], ...]
# (class, names of the fields given, in order) -> every field's default in field order
# (None where the caller or a factory gives it), the factories of the fields not given,
# and the set of given fields, shared
_SHAPES: dict[tuple[type, tuple[str, ...]], tuple[dict[str, Any], Factories, set[str]]] = {}


def _shape(key: tuple[type, tuple[str, ...]]) -> tuple[dict[str, Any], Factories, set[str]]:
    cls, names = key
    if not issubclass(cls, Frozen) or cls.__private_attributes__ \
            or cls.model_post_init is not Frozen.model_post_init:
        raise TypeError(f"{cls.__name__} is made by pydantic only")  # pragma: no cover
    defaults: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, field in cls.model_fields.items():
        defaults[name] = None
        if name in names or field.is_required():
            continue
        if field.default_factory is not None:
            factories.append((name, cast(Callable[[], Any], field.default_factory)))
        elif field.default.__hash__ is None:  # pydantic copies a mutable default
            factories.append((name, functools.partial(copy.deepcopy, field.default)))
        else:
            defaults[name] = field.default
    shape = defaults, tuple(factories), _shared_fields(names) or set(names)
    if len(_SHAPES) < _FIELD_SETS_LIMIT:
        _SHAPES[key] = shape
    return shape


class Declared(Frozen):
    """A top-level object that remembers the user's file:line (not part of equality)."""

    source: SourceLocation | None = Field(default=None, exclude=True, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseModel) or type(other) is not type(self):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(repr(self.model_dump()))


@functools.lru_cache(maxsize=4096)
def _is_ours(co_filename: str) -> bool:
    filename = os.path.abspath(co_filename)
    return (filename.startswith(_PACKAGE_DIR + os.sep) or "pydantic" in filename
            or co_filename.startswith("<frozen"))


def caller_location() -> SourceLocation | None:
    """The first stack frame outside meshdsl: the line of the user's program that called us.

    Known by the instruction the frame is at: a frame's line number is found by scanning
    its code's line table, which in a long program cost more than the rest of the call."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not _is_ours(code.co_filename):
            key = (id(code), frame.f_lasti)
            known = _AT.get(key)
            if known is None:
                known = (code, _location(code.co_filename, frame.f_lineno))
                if len(_AT) < _AT_LIMIT:
                    _AT[key] = known  # holds the code, so its id is not reused
            return known[1]
        frame = frame.f_back  # type: ignore[assignment]
    return None


# (id of a code object, instruction offset) -> the code object and its location
_AT: dict[tuple[int, int], tuple[types.CodeType, SourceLocation]] = {}
_AT_LIMIT = 65536


@functools.lru_cache(maxsize=65536)
def _location(file: str, line: int) -> SourceLocation:
    """One frozen location per (file, line): a loop declaring 10,000 services shares a
    handful instead of allocating one per call."""
    return SourceLocation(file=file, line=line)


def all_exactly(kind: type, items: Iterable[Any]) -> bool:
    """Every item is a ``kind`` itself (not a subclass, not something pydantic would
    convert): a value :meth:`Frozen.trusted` may take as it is."""
    for item in items:  # noqa: SIM110 - a loop is 3x faster than all() of a generator here
        if type(item) is not kind:
            return False
    return True


def plain_choice(value: Any, choices: frozenset[str]) -> bool:
    """None, or a str among ``choices`` (a ``Literal`` of strings, or None)."""
    return value is None or (type(value) is str and value in choices)


def str_dict(value: Any) -> bool:
    """A plain dict of str to str (as validation would store a ``dict[str, str]``)."""
    return type(value) is dict and all_exactly(str, value) and all_exactly(str, value.values())


def given(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields a builder call set (those not None): validating only these is cheaper,
    and the model's record of explicitly set fields stays small."""
    return {key: value for key, value in fields.items() if value is not None}


P = ParamSpec("P")
T = TypeVar("T")


def shared(build: Callable[P, T]) -> Callable[P, T]:
    """``build`` memoised on its arguments, for the constructors of frozen values that a
    program repeats in a loop (a version named ``v1``, ``Header("x-canary", exact="true")``
    on every service): equal calls return one object instead of one model each. Values
    are frozen, so sharing them is safe. An unhashable argument skips the memo, and
    validation says what is wrong with it."""
    cached = cast(Callable[P, T], functools.lru_cache(maxsize=4096, typed=True)(build))

    @functools.wraps(build)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            value = cached(*args, **kwargs)
        except TypeError:
            return build(*args, **kwargs)
        if id(value) not in _SHARED:
            if len(_SHARED) >= _SHARED_LIMIT:
                _SHARED.clear()
            _SHARED[id(value)] = [value, None]
        return value
    return call


# id -> [a shared value, what makes a copy of its dump (see dump)]; the value is held, so
# the id stays its own
_SHARED: dict[int, list[Any]] = {}
_SHARED_LIMIT = 16384


@contextlib.contextmanager
def bulk_build(young: int = 50_000) -> Iterator[None]:
    """Run a program and its compilation with the cyclic collector kept to young objects.

    A large mesh is millions of long-lived, acyclic objects (models, manifests). CPython
    re-traverses the whole heap in a full collection each time it grew by a quarter, so
    the builder's cost grew faster than the mesh (13.9x for 10x the services, about half
    of it in the collector). Here the young generation is collected every ``young``
    allocations, and what survives a collection is frozen (``gc.freeze``): no later
    collection traverses it again, so each object is looked at about once, however large
    the mesh. Garbage cycles a program makes in a loop are still young when they die,
    so they are still collected; a cycle that outlives a collection and dies later waits
    until the end of the block, where everything frozen here goes back to the oldest
    generation (and a full collection frees it). Within a process that froze objects
    itself (before a fork), or inside another ``bulk_build``, only the thresholds change."""
    before = gc.get_threshold()
    freeze = not gc.get_freeze_count() and _freeze_survivors not in gc.callbacks
    gc.set_threshold(young, 100, 100)
    if freeze:
        gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        if freeze:
            gc.callbacks.remove(_freeze_survivors)
            gc.unfreeze()
        gc.set_threshold(*before)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        gc.freeze()


def clean(value: Any) -> Any:
    """Drop None, empty dicts and empty lists recursively: Istio YAML omits unset fields.

    On the compile hot path, so it dispatches on exact types and skips scalars."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                item = clean(item)
                if not item:
                    continue
            out[key] = item
        return out
    if kind is list:
        return [clean(item) if type(item) in (dict, list) else item for item in value]
    return value


def dump(model: BaseModel, *, exclude: frozenset[str] = frozenset()) -> Any:
    """Istio-shaped dict of a model: camelCase keys, unset fields (and ``exclude``) left out.

    A :func:`shared` value is dumped once, and each caller gets its own copy of that dump
    (copying a few small dicts costs a fraction of dumping)."""
    memo = None if exclude else _SHARED.get(id(model))
    if memo is not None and memo[0] is model:
        make = memo[1]
        if make is None:
            make = memo[1] = _copier(_dump(model, exclude))
        return make()
    return _dump(model, exclude)


def _copier(data: Any) -> Callable[[], Any]:
    """A function returning a fresh copy of ``data`` each call. For plain JSON data it is
    the data's own literal (``lambda: {"name": "v1", ...}``, made from ``repr``, which for
    these types is exact): Python builds it from constants in a fraction of a recursive
    copy. Anything else (a float that is not finite, a non-string key) is copied by
    :func:`_copy`."""
    if _literal(data):
        made: Callable[[], Any] = eval("lambda: " + repr(data), {"__builtins__": {}})
        return made
    return functools.partial(_copy, data)


def _literal(data: Any) -> bool:
    """Whether ``repr(data)`` is a Python literal that evaluates back to ``data``."""
    kind = type(data)
    if kind is str or kind is int or kind is bool or data is None:
        return True
    if kind is float:
        return math.isfinite(data)
    if kind is list:
        return all(_literal(item) for item in data)
    if kind is dict:
        return all(type(key) is str and _literal(item) for key, item in data.items())
    return False


def _dump(model: BaseModel, exclude: frozenset[str]) -> Any:
    """What ``clean(model_dump(by_alias=True, exclude_none=True, mode="json"))`` gives,
    read from the fields of the frozen model directly when they hold only plain values
    (several times faster than pydantic's dump and the cleaning after it), else by
    pydantic."""
    try:
        return _plain(model, exclude)
    except _NotPlain:
        return clean(model.model_dump(by_alias=True, exclude_none=True, mode="json",
                                      exclude=set(exclude) if exclude else None))


class _NotPlain(Exception):
    """A value whose dump only pydantic knows: an enum, a non-string key, a model class
    with its own serializers."""


# model class -> its dumped fields as (attribute, key), or None: pydantic dumps it
_PLAIN_FIELDS: dict[type, tuple[tuple[str, str], ...] | None] = {}


def _plain_fields(cls: type[BaseModel]) -> tuple[tuple[str, str], ...] | None:
    decorators = cls.__pydantic_decorators__
    if (decorators.field_serializers or decorators.model_serializers
            or cls.model_computed_fields or cls.model_config.get("extra") == "allow"
            or any(type(m).__name__.endswith("Serializer")
                   for f in cls.model_fields.values() for m in f.metadata)):
        return None
    return tuple((name, f.serialization_alias or f.alias or name)
                 for name, f in cls.model_fields.items() if not f.exclude)


_SCALARS = frozenset({str, int, bool, float})


def _plain(model: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    cls = type(model)
    try:
        fields = _PLAIN_FIELDS[cls]
    except KeyError:
        fields = _PLAIN_FIELDS[cls] = _plain_fields(cls)
    if fields is None:
        raise _NotPlain
    return _entries(fields, model.__dict__, exclude)


def _entries(pairs: Iterable[tuple[Any, Any]], values: dict[Any, Any],
             exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``values[name]`` under ``key`` for each (name, key) in ``pairs``, dumped and cleaned:
    None and empty dicts and lists left out (a model's fields, or a dict's own entries)."""
    out: dict[str, Any] = {}
    for name, key in pairs:
        value = values[name]
        if value is None or name in exclude:
            continue
        if type(value) not in _SCALARS:
            value = _plain_value(value)
            if not value and type(value) in (dict, list):
                continue
        out[key] = value
    return out


def _plain_value(value: Any) -> Any:
    """A field's value as pydantic's JSON-mode dump has it, cleaned like :func:`clean`."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [item if type(item) in _SCALARS or item is None else _plain_value(item)
                for item in value]
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise _NotPlain
        return _entries(zip(value, value, strict=True), value)
    if isinstance(value, BaseModel):
        return _plain(value)
    raise _NotPlain


def _copy(value: Any) -> Any:
    """A copy of a dump (dicts and lists of plain values), shared with no one."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) if type(item) in (dict, list) else item
                for key, item in value.items()}
    if kind is list:
        return [_copy(item) if type(item) in (dict, list) else item for item in value]
    return value


ModelPath = tuple[str | int, ...]


def declared_sources(model: BaseModel, prefix: ModelPath = ()
                     ) -> Iterator[tuple[ModelPath, SourceLocation]]:
    """Where each declared object of ``model`` came from, by its path of field names and
    list indices: what a dump leaves out (``source`` is excluded), so that a spec that
    crossed a process boundary can point at the user's lines again."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name == "source":
            if isinstance(value, SourceLocation):
                yield prefix, value
        elif isinstance(value, BaseModel):
            yield from declared_sources(value, (*prefix, name))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from declared_sources(item, (*prefix, name, index))


def restore_source(model: BaseModel, path: ModelPath, source: SourceLocation) -> bool:
    """Put ``source`` back on the declared object at ``path``; False when there is none."""
    target: Any = model
    for step in path:
        if isinstance(step, int) and isinstance(target, (list, tuple)):
            if not 0 <= step < len(target):
                return False
            target = target[step]
        elif isinstance(step, str) and isinstance(target, BaseModel) \
                and step in type(target).model_fields and step != "source":
            target = getattr(target, step)
        else:
            return False
    if not isinstance(target, BaseModel) or "source" not in type(target).model_fields:
        return False
    object.__setattr__(target, "source", source)  # frozen: display data, not the value
    return True
