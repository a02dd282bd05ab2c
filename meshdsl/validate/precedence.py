"""Route order in ambient namespaces: the Gateway API does not take the first match.

A VirtualService tries its routes in order; an HTTPRoute picks, among the rules that match,
the most specific by the Gateway API's precedence — an exact path, then the longest path
prefix, then a method, then the most header matches, then the most query matches — and
only then the order written. So when a later route is more specific than an earlier one
and a request could match both, the two APIs send it to different places (MD137). Either
put the more specific route first or make the matches disjoint.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshdsl.model.matching import Match, StringMatch
from meshdsl.model.spec import MeshSpec
from meshdsl.validate.findings import Finding, warning

Rank = tuple[int, int, int, int, int]


def rank(match: Match | None) -> Rank:
    """Gateway API precedence of one match (greater wins); no match is ``PathPrefix /``."""
    if match is None:
        return (0, 1, 0, 0, 0)
    uri = match.uri
    exact = int(uri is not None and uri.exact is not None)
    prefix = len(uri.prefix) if uri is not None and uri.prefix is not None else (
        len(uri.exact) if uri is not None and uri.exact is not None else 1)
    return (exact, prefix, int(match.method is not None), len(match.headers),
            len(match.query_params))


def _disjoint(a: StringMatch | None, b: StringMatch | None) -> bool:
    """True when no value can satisfy both string matches (regexes are assumed to overlap)."""
    if a is None or b is None or a.regex is not None or b.regex is not None:
        return False
    if a.exact is not None and b.exact is not None:
        return a.exact != b.exact
    pa = a.prefix if a.prefix is not None else a.exact or ""
    pb = b.prefix if b.prefix is not None else b.exact or ""
    if a.exact is not None:
        return not pa.startswith(pb)
    if b.exact is not None:
        return not pb.startswith(pa)
    return not (pa.startswith(pb) or pb.startswith(pa))


def overlap(a: Match | None, b: Match | None) -> bool:
    """Whether some request could match both (conservative: unsure means yes)."""
    if a is None or b is None:
        return True
    if _disjoint(a.uri, b.uri) or _disjoint(a.method, b.method):
        return False
    for field in ("headers", "query_params"):
        mine, theirs = getattr(a, field), getattr(b, field)
        if any(_disjoint(mine[k], theirs[k]) for k in set(mine) & set(theirs)):
            return False
    return True


def check(mesh: MeshSpec) -> Iterator[Finding]:
    dp = mesh.data_plane
    for vs in (v for v in mesh.virtual_services if dp.is_ambient(v.namespace)):
        anything: list[Match | None] = [None]
        routes = [(i, r, list(r.match) or anything) for i, r in enumerate(vs.http)]
        for j, later, later_matches in routes:
            for i, _, earlier_matches in routes[:j]:
                if any(rank(b) > rank(a) and overlap(a, b)
                       for a in earlier_matches for b in later_matches):
                    yield warning(
                        "MD137", f"VirtualService {vs.namespace}/{vs.name} http[{j}]",
                        f"the Gateway API prefers the more specific match, so requests that "
                        f"also match http[{i}] (declared first) come here in ambient mode; "
                        "declare this route first or make the matches disjoint", later.source)
                    break
