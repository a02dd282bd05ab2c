"""istioctl's unreachable-rule checks of a VirtualService, on the input objects.

istioctl runs them while validating a VirtualService (``analyzeUnreachableHTTPRules``
and its TCP and TLS twins in ``pkg/config/validation``), rule by rule in order:

- a match equal to an earlier rule's match, its ``name`` aside, is never used
  (IST0131, MD105), and a rule all of whose matches are so is never used (IST0130, MD148);
- after a rule without matches (a catch-all), every later rule is never used (IST0130),
  once per match it has, or once if it has none;
- of two HTTP matches on a URI prefix (in the same rule or in two), a later one whose
  prefix extends an earlier one's, on the same port and with the same method (``GET``
  when unset), authority, headers, query parameters and ``withoutHeaders`` — each equal
  or extending the earlier one's, compared as ``exact:``/``prefix:`` strings — is never
  used (IST0131).
Equality is that of the JSON Go's ``encoding/json`` writes for the match: empty values
left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshdsl.analyzers.registry import Obj, Registry, dicts
from meshdsl.validate.findings import Finding, warning


def _json(value: Any) -> Any:
    """``value`` without the empty fields Go's ``omitempty`` leaves out."""
    if isinstance(value, dict):
        kept = {k: _json(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", 0, False, {}, [])}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _key(match: dict[str, Any]) -> str:
    return json.dumps(_json({k: v for k, v in match.items() if k != "name"}), sort_keys=True)


def _string(match: Any) -> str:
    """istioctl's ``assignExactOrPrefix`` of a StringMatch."""
    if not isinstance(match, dict):
        return ""
    if match.get("exact"):
        return f"exact:{match['exact']}"
    return f"prefix:{match['prefix']}" if match.get("prefix") else ""


@dataclass(frozen=True)
class _Prefixed:
    """An HTTP match on a URI prefix, as istioctl compares them for overlaps."""

    rule: int
    match: int
    prefix: str
    port: Any
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without: dict[str, str]


def _prefixed(rule: int, index: int, match: dict[str, Any]) -> _Prefixed | None:
    uri = match.get("uri")
    prefix = uri.get("prefix") if isinstance(uri, dict) else None
    if not prefix or not isinstance(prefix, str):
        return None

    def table(field: str) -> dict[str, str]:
        value = match.get(field)
        return {str(k): _string(v) for k, v in value.items()} if isinstance(value, dict) else {}

    return _Prefixed(rule, index, prefix, match.get("port") or 0,
                     _string(match.get("method")) or "exact:GET",
                     _string(match.get("authority")), table("headers"),
                     table("queryParams"), table("withoutHeaders"))


def _covers_values(a: dict[str, str], b: dict[str, str]) -> bool:
    return len(a) == len(b) and all(k in b and (v == b[k] or v.startswith(b[k]))
                                    for k, v in a.items())


def _covers(a: _Prefixed, b: _Prefixed) -> bool:
    """istioctl's ``coveredValidation``: the earlier match ``a`` takes ``b``'s requests."""
    return (b.prefix.startswith(a.prefix) and a.port == b.port
            and (a.method == b.method or a.method.startswith(b.method))
            and (a.authority == b.authority or a.authority.startswith(b.authority))
            and _covers_values(a.headers, b.headers) and _covers_values(a.query, b.query)
            and _covers_values(a.without, b.without))


def _name(rule: dict[str, Any], index: int, section: str) -> str:
    name = rule.get("name") if section == "http" else None
    return f"{name!r}" if name else f"#{index}"


def _rules(vs: Obj, section: str) -> Iterator[Finding]:
    rules = vs.spec.get(section)
    rules = rules if isinstance(rules, list) else []
    seen: dict[str, int] = {}
    catch_all = -1
    prefixed: list[_Prefixed] = []

    def unused(n: int, reason: str) -> Finding:
        return warning("MD148", f"{vs} {section}[{n}]", f"VirtualService rule "
                       f"{_name(rules[n], n, section)} is not used ({reason})",
                       vs.doc.where(("spec", section, n)))

    def ineffective(n: int, m: int, earlier: str) -> Finding:
        return warning("MD105", f"{vs} {section}[{n}].match[{m}]", f"VirtualService rule "
                    f"{_name(rules[n], n, section)} match #{m} is not used (duplicate or "
                    f"overlapping match in rule {earlier})",
                    vs.doc.where(("spec", section, n, "match", m)))

    for n, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        matches = dicts(rule.get("match"))
        if not matches:
            if catch_all >= 0:
                yield unused(n, "only the last rule can have no matches")
            catch_all = n
            continue
        duplicates = 0
        for m, match in enumerate(matches):
            if catch_all >= 0:
                yield unused(n, "route without matches defined before")
                continue
            key = _key(match)
            if key in seen:
                yield ineffective(n, m, _name(rules[seen[key]], seen[key], section))
                duplicates += 1
                continue
            seen[key] = n
            found = _prefixed(n, m, match) if section == "http" else None
            if found:
                prefixed.append(found)
        if duplicates == len(matches):
            yield unused(n, "all matches used by prior rules")
    for i, earlier in enumerate(prefixed):
        for later in prefixed[i + 1:]:
            if later.prefix != earlier.prefix and _covers(earlier, later):
                yield ineffective(later.rule, later.match,
                                  f"{_name(rules[earlier.rule], earlier.rule, section)} "
                                  f"(prefix {earlier.prefix})")


def check(registry: Registry) -> Iterator[Finding]:
    for vs in registry.of("VirtualService"):
        for section in ("http", "tcp", "tls"):
            yield from _rules(vs, section)
