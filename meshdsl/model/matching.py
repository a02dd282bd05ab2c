"""Request matching: what a route applies to (Istio's HTTPMatchRequest and friends).

The helpers ``Uri``, ``Header``, ``Query``, ``Method`` each return a :class:`Match`;
``&`` combines conditions (all must hold) and a list of matches means any of them.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from meshdsl.model.base import Frozen, shared


class StringMatch(Frozen):
    """Exactly one of exact, prefix or regex (RE2 syntax)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a string match needs exactly one of exact=, prefix=, regex= (got {given or 'none'})"
            )
        return self


def _merge_dicts(a: dict[str, StringMatch], b: dict[str, StringMatch]) -> dict[str, StringMatch]:
    clash = set(a) & set(b)
    if clash:
        raise ValueError(f"both sides of '&' match {sorted(clash)}")
    return {**a, **b}


class Match(Frozen):
    """All conditions must hold for the route to apply."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    source_namespace: str | None = None
    gateways: list[str] = Field(default_factory=list)
    port: int | None = Field(default=None, ge=1, le=65535)

    def __and__(self, other: Match) -> Match:
        mine = self.model_dump(exclude_defaults=True)
        theirs = other.model_dump(exclude_defaults=True)
        merged: dict[str, object] = dict(mine)
        for key, value in theirs.items():
            if key in ("headers", "without_headers", "query_params"):
                merged[key] = _merge_dicts(
                    {k: StringMatch(**v) for k, v in mine.get(key, {}).items()},
                    {k: StringMatch(**v) for k, v in value.items()},
                )
            elif key == "source_labels":
                merged[key] = {**mine.get(key, {}), **value}
            elif key == "gateways":
                merged[key] = sorted({*mine.get(key, []), *value})
            elif key in mine and mine[key] != value:
                raise ValueError(f"both sides of '&' set {key!r} differently")
            else:
                merged[key] = value
        return Match.model_validate(merged)

    def is_catch_all(self) -> bool:
        """True when the match constrains nothing (or only the URI prefix '/'): every
        field but ``name`` and ``uri`` at its default, and ``uri`` unset or prefix '/'."""
        fields = self.__dict__
        for key, default in _CONSTRAINT_DEFAULTS:
            if fields[key] != default:
                return False
        uri = self.uri
        return uri is None or (uri.prefix == "/" and uri.exact is None and uri.regex is None)


_CONSTRAINT_DEFAULTS = tuple((key, field.get_default(call_default_factory=True))
                             for key, field in Match.model_fields.items()
                             if key not in ("name", "uri"))


def _sm(exact: str | None, prefix: str | None, regex: str | None) -> StringMatch:
    return StringMatch(exact=exact, prefix=prefix, regex=regex)


@shared
def _condition(field: str, key: str | None, exact: str | None, prefix: str | None,
               regex: str | None, ignore_case: bool | None) -> Match:
    """One condition as a Match, the same object for the same arguments: a program
    declaring its routes in a loop repeats each condition once per service."""
    string = _sm(exact, prefix, regex)
    if field == "uri":
        return Match(uri=string, ignore_uri_case=ignore_case)
    return Match.model_validate({field: string if key is None else {key: string}})


def Uri(*, exact: str | None = None, prefix: str | None = None, regex: str | None = None,
        ignore_case: bool | None = None) -> Match:
    """Match on the request path."""
    return _condition("uri", None, exact, prefix, regex, ignore_case)


def Header(name: str, *, exact: str | None = None, prefix: str | None = None,
           regex: str | None = None) -> Match:
    """Match on a request header (names are lower-cased, as Envoy sees them)."""
    return _condition("headers", name.lower(), exact, prefix, regex, None)


def WithoutHeader(name: str, *, exact: str | None = None, prefix: str | None = None,
                  regex: str | None = None) -> Match:
    """Match requests whose header does NOT match."""
    return _condition("without_headers", name.lower(), exact, prefix, regex, None)


def Query(name: str, *, exact: str | None = None, prefix: str | None = None,
          regex: str | None = None) -> Match:
    """Match on a query parameter."""
    return _condition("query_params", name, exact, prefix, regex, None)


def Method(method: str) -> Match:
    """Match on the HTTP method."""
    return _condition("method", None, method.upper(), None, None, None)


def Authority(*, exact: str | None = None, prefix: str | None = None,
              regex: str | None = None) -> Match:
    """Match on the Host/:authority header."""
    return _condition("authority", None, exact, prefix, regex, None)


def Caller(*, labels: dict[str, str] | None = None, namespace: str | None = None) -> Match:
    """Match on the calling workload's labels and/or namespace."""
    return Match(source_labels=labels or {}, source_namespace=namespace)


def Port(number: int) -> Match:
    """Match on the destination port the request arrived on."""
    return Match(port=number)


class L4Match(Frozen):
    """Matching for TCP routes (Istio's L4MatchAttributes)."""

    destination_subnets: list[str] = Field(default_factory=list)
    port: int | None = Field(default=None, ge=1, le=65535)
    source_labels: dict[str, str] = Field(default_factory=dict)
    source_namespace: str | None = None
    gateways: list[str] = Field(default_factory=list)
