"""The PromQL a canary's checks run, and the tiny template language they are written in.

The built-in checks are Flagger's Istio defaults, verbatim in meaning
(``pkg/metrics/observers/istio.go``): the canary workload's non-5xx share of
``istio_requests_total`` and the p99 of ``istio_request_duration_milliseconds_bucket``, both
as reported by the destination's proxy — or, for a service in an ambient namespace, by its
waypoint (``reporter="waypoint"``, from the plan's ``reporter``). One set of queries serves a real Istio cluster and
the local Envoy mesh, whose plain ``envoy_cluster_*`` metrics are turned into the same
Istio series by the recording rules in ``reconciler.metrics.recording_rules``.

Templates use ``{{ name }}`` and nothing else: no Jinja, no expressions, no escaping rules
to learn. Every value is checked against a conservative character set, so a variable can
never close a PromQL string and smuggle in a different query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from meshdsl.model.canary import CanaryPlan, MetricCheck
from reconciler.delivery.errors import PlanError
from reconciler.delivery.stages import parse_duration

__all__ = [
    "BUILTIN_QUERIES",
    "REQUEST_COUNT",
    "REQUEST_DURATION",
    "REQUEST_SUCCESS_RATE",
    "MetricQuery",
    "metric_queries",
    "render",
    "stable_key",
    "template_variables",
    "window_queries",
    "workload_name",
]

REQUEST_SUCCESS_RATE = """\
sum(
  rate(
    istio_requests_total{
      reporter="{{ reporter }}",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="{{ reporter }}",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)
* 100"""
"""Flagger's Istio ``request-success-rate``: percent of the canary's requests not 5xx."""

REQUEST_DURATION = """\
histogram_quantile(
  0.99,
  sum(
    rate(
      istio_request_duration_milliseconds_bucket{
        reporter="{{ reporter }}",
        destination_workload_namespace="{{ namespace }}",
        destination_workload=~"{{ target }}"
      }[{{ interval }}]
    )
  ) by (le)
)"""
"""Flagger's Istio ``request-duration``: the canary's p99 latency in milliseconds."""

REQUEST_COUNT = """\
sum(
  increase(
    istio_requests_total{
      reporter="{{ reporter }}",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)"""
"""How many requests the canary served in the interval: what ``min_requests`` is held to."""

BUILTIN_QUERIES: Mapping[str, str] = {
    "request-success-rate": REQUEST_SUCCESS_RATE,
    "request-duration": REQUEST_DURATION,
    "request-count": REQUEST_COUNT,
}

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]*")
REQUEST_COUNT_KEY = "request-count"

Role = Literal["canary", "stable"]


def render(template: str, variables: Mapping[str, str]) -> str:
    """Substitute ``{{ name }}`` placeholders; unknown names and unsafe values are errors."""
    for name, value in variables.items():
        if not _SAFE_VALUE.fullmatch(value):
            raise PlanError(f"template variable {name}={value!r} has characters a query "
                            "cannot hold safely (allowed: letters, digits, _ . : / -)")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise PlanError(f"unknown template variable {{{{ {name} }}}} (known: {known})")
        return variables[name]

    return _VARIABLE.sub(substitute, template)


def workload_name(service: str, version: str) -> str:
    """The workload (Deployment) of one version, as ``meshdsl.compile.kube`` names it and
    as Istio's ``destination_workload`` label reports it."""
    return f"{service}-{version}"


def template_variables(plan: CanaryPlan, *, role: Role, interval: str) -> dict[str, str]:
    """The variables a check template sees. For the stable twin of a compared check,
    ``target`` names the stable workload, so one template measures either side."""
    measured = plan.target if role == "canary" else plan.stable
    return {
        "namespace": plan.namespace,
        "service": plan.service,
        "target": workload_name(plan.service, measured),
        "stable": workload_name(plan.service, plan.stable),
        "canary": workload_name(plan.service, plan.target),
        "target_version": plan.target,
        "stable_version": plan.stable,
        "version": measured,
        "interval": interval,
        "reporter": plan.reporter,
    }


@dataclass(frozen=True)
class MetricQuery:
    """One value the analysis needs, with everything any metrics source could use: the
    rendered PromQL for Prometheus, and the builtin name plus workload for sources that
    compute builtins themselves (Envoy's own stats). ``key`` names the answer in
    :class:`~reconciler.delivery.actions.Observations`."""

    key: str
    check: str
    role: Role
    builtin: str | None
    promql: str
    namespace: str
    service: str
    version: str
    interval: str
    reporter: str = "destination"
    """Whose view the plan is judged on: ``destination`` or, in an ambient namespace,
    ``waypoint`` (what the PromQL says, for sources that read proxies themselves)."""

    @property
    def workload(self) -> str:
        return workload_name(self.service, self.version)

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval, what=f"check {self.check} interval")


def stable_key(check: str) -> str:
    """The observation key of a check's value measured on the stable version."""
    return f"{check}@stable"


def _query(plan: CanaryPlan, check: MetricCheck, role: Role, builtin: str | None,
           template: str) -> MetricQuery:
    interval = check.interval or plan.interval
    parse_duration(interval, what=f"check {check.name} interval")
    variables = template_variables(plan, role=role, interval=interval)
    try:
        promql = render(template, variables)
    except PlanError as exc:
        raise PlanError(f"canary {plan.namespace}/{plan.service} check {check.name}: {exc}"
                        ) from exc
    return MetricQuery(key=check.name if role == "canary" else stable_key(check.name),
                       check=check.name, role=role, builtin=builtin, promql=promql,
                       namespace=plan.namespace, service=plan.service,
                       version=variables["version"], interval=interval,
                       reporter=plan.reporter)


def metric_queries(plan: CanaryPlan) -> tuple[MetricQuery, ...]:
    """Every query one analysis of ``plan`` needs, in a stable order: the canary's request
    count (when ``min_requests`` applies), then each check and its stable twin."""
    out: list[MetricQuery] = []
    seen: set[str] = set()
    if plan.checks and plan.min_requests > 0:
        count = MetricCheck(name=REQUEST_COUNT_KEY)
        out.append(_query(plan, count, "canary", REQUEST_COUNT_KEY, REQUEST_COUNT))
        seen.add(REQUEST_COUNT_KEY)
    for check in plan.checks:
        if check.name in seen:
            raise PlanError(f"canary {plan.namespace}/{plan.service} has two checks named "
                            f"{check.name!r}; give each check its own name")
        seen.add(check.name)
        if check.builtin is not None:
            template, builtin = BUILTIN_QUERIES[check.builtin], check.builtin
        elif check.query is not None:
            template, builtin = check.query, None
        else:
            raise PlanError(f"canary {plan.namespace}/{plan.service} check {check.name!r} has "
                            "neither builtin= nor query=; give it a PromQL template")
        out.append(_query(plan, check, "canary", builtin, template))
        if check.compare_to_stable:
            out.append(_query(plan, check, "stable", builtin, template))
    return tuple(out)


WINDOW_PREFIX = "window:"
"""Observation keys of :func:`window_queries` (kept apart from the interval analysis's)."""

WINDOW_SOURCES = ("envoy_cluster_upstream_rq", "istio_requests_total")
"""Where the window reads request counters, first found first: the local mesh's Envoy
counters as scraped (the bridge relabels them with Istio's labels, so they are current one
rule evaluation sooner than the recorded ``istio_requests_total``; on Istio nothing matches
them), then Istio's own series."""


def _since_start(metric: str, codes: str) -> str:
    """The requests a counter counted since the stage began ``{{ interval }}`` ago: its
    value now minus then (a series absent then counted from 0) — exact, where
    ``increase`` over a short range extrapolates. Empty when a counter was reset in
    between (a restarted proxy): no evidence rather than a wrong count."""
    series = (f'{metric}{{reporter="{{{{ reporter }}}}", destination_workload_namespace='
              f'"{{{{ namespace }}}}", destination_workload=~"{{{{ target }}}}"{codes}}}')
    then = f"{series} offset {{{{ interval }}}}"
    return (f"((sum({series}) - (sum({then}) or vector(0))) unless on() "
            f"(({series} < {then}) or resets({series}[{{{{ interval }}}}]) > 0))")


def _window_templates() -> dict[str, str]:
    count = "\nor\n".join(_since_start(m, "") for m in WINDOW_SOURCES)
    failed = ', response_code=~"5.*"'
    rates = [f"(100 * (1 - ({_since_start(m, failed)} or vector(0)) / {_since_start(m, '')}))"
             for m in WINDOW_SOURCES]
    return {REQUEST_COUNT_KEY: count, "request-success-rate": "\nor\n".join(rates)}


WINDOW_QUERIES: Mapping[str, str] = _window_templates()
"""The sequential test's count and success rate (percent) since the stage began."""


def window_queries(plan: CanaryPlan, seconds: float) -> tuple[MetricQuery, MetricQuery]:
    """The canary's request count and success rate since its stage began ``seconds`` ago
    (to the millisecond): what the sequential test reads on every tick. The builtin names
    stay, so a source computing builtins itself (Envoy's stats) answers over that window."""
    interval = f"{max(1, round(seconds * 1000))}ms"
    out = []
    for builtin in (REQUEST_COUNT_KEY, "request-success-rate"):
        query = _query(plan, MetricCheck(name=builtin, interval=interval), "canary", builtin,
                       WINDOW_QUERIES[builtin])
        out.append(replace(query, key=WINDOW_PREFIX + builtin))
    return out[0], out[1]
