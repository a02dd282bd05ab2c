"""The security, rate-limit and delivery statements of a generated program.

Kept apart from ``to_python`` (which lays out the program) because each of these has its
own short forms to recognise: ``svc.allow(caller, methods=[...])`` for a rule that names
calling services, ``svc.mtls(...)`` for a policy selecting one service, ``SuccessRate``
for the standard canary check.
"""

from __future__ import annotations

from meshdsl.importer.errors import NotExpressible
from meshdsl.importer.pyexpr import Call, Code, Expr, ListOf, literal
from meshdsl.importer.pyvalues import Names, Values
from meshdsl.importer.shapes import app_of
from meshdsl.model.canary import CanaryPlan, LatencyP99, MetricCheck, MirrorStage, SuccessRate
from meshdsl.model.gateway import GATEWAY_NAME_LABEL
from meshdsl.model.security import AuthorizationPolicy, From, Rule, To
from meshdsl.model.spec import MeshSpec


class PolicySections:
    """Mixed into the program writer; these are the parts of it the methods use."""

    spec: MeshSpec
    names: Names
    values: Values
    gateways: dict[tuple[str, str], str]  # (namespace, name) -> variable

    def emit(self, expr: Expr, target: str | None = None) -> None:
        raise NotImplementedError

    def scope(self, namespace: str) -> str:
        raise NotImplementedError

    def service_var(self, namespace: str, name: str) -> str | None:
        raise NotImplementedError

    # -- security, limits, delivery ---------------------------------------------------
    def mtls(self, pa_index: int) -> None:
        pa = self.spec.peer_authentications[pa_index]
        ports = [("ports", literal(pa.port_level_mtls))] if pa.port_level_mtls else []
        app = app_of(pa.selector)
        svc_var = self.service_var(pa.namespace, app) if app else None
        if pa.selector and svc_var is not None:
            name = [] if pa.name == app else [("name", literal(pa.name))]
            mode = [literal(pa.mode)] if pa.mode is not None else []
            self.emit(Call(f"{svc_var}.mtls", mode, ports + name))
        elif not pa.selector and pa.mode is not None:
            name = [] if pa.name == "default" else [("name", literal(pa.name))]
            self.emit(Call(f"{self.scope(pa.namespace)}.mtls", (literal(pa.mode),),
                           name + ports))
        else:
            raise NotExpressible(f"PeerAuthentication {pa.name}: selector or mode")

    def _allow(self, rule: Rule, namespace: str) -> tuple[list[Expr], list[tuple[str, Expr]]
                                                         ] | None:
        """Arguments of ``.allow(...)`` that write exactly ``rule``, if any do."""
        if rule.when or len(rule.from_) != 1 or len(rule.to) > 1:
            return None
        frm = rule.from_[0]
        callers = [self.service_var(ref.namespace or "", ref.name) for ref in frm.services]
        if frm != From(services=frm.services, namespaces=frm.namespaces) or None in callers:
            return None
        op = rule.to[0] if rule.to else None
        if op is not None and (op == To() or op != To(methods=op.methods, paths=op.paths,
                                                       ports=op.ports)):
            return None
        kwargs = [(k, literal(v)) for k, v in (
            ("namespaces", frm.namespaces), ("methods", op.methods if op else []),
            ("paths", op.paths if op else []), ("ports", op.ports if op else [])) if v]
        return [Code(c) for c in callers if c is not None], kwargs

    def authorization(self, ap: AuthorizationPolicy) -> None:
        if ap.provider is not None:
            raise NotExpressible(f"AuthorizationPolicy {ap.name}: provider")
        app = app_of(ap.selector)
        svc_var = self.service_var(ap.namespace, app) if app else None
        gateway = ap.selector.get(GATEWAY_NAME_LABEL) if len(ap.selector) == 1 else None
        gw_var = self.gateways.get((ap.namespace, gateway)) if gateway else None
        owner, owner_name = (svc_var, app) if svc_var is not None else (gw_var, gateway)
        action = [("action", literal(ap.action))] if ap.action is not None else []
        if svc_var is not None and ap.name == app and not action:
            target, short = f"{svc_var}.authorization()", svc_var
        else:
            if owner is not None:
                name = [] if ap.name == owner_name else [literal(ap.name)]
                call = Call(f"{owner}.authorization", name, action)
            else:
                selector = [("selector", literal(ap.selector))] if ap.selector else []
                call = Call(f"{self.scope(ap.namespace)}.authorization", (literal(ap.name),),
                            action + selector)
            if not ap.rules:
                self.emit(call)
                return
            target = short = self.names.new(ap.name, f"{ap.name}_authz")
            self.emit(call, target)
        if not ap.rules:
            self.emit(Code(target))
        for rule in ap.rules:
            allow = self._allow(rule, ap.namespace)
            if allow is not None:
                self.emit(Call(f"{short}.allow", *allow))
                continue
            self.emit(Call(f"{target}.rule", (), [
                (key, self.values.value(items[0] if len(items) == 1 else items))
                for key, items in (("from_", rule.from_), ("to", rule.to), ("when", rule.when))
                if items]))

    def rate_limit(self, index: int) -> None:
        rl = self.spec.rate_limits[index]
        app = app_of(rl.selector)
        var = self.service_var(rl.namespace, app) if app else None
        if var is None or (rl.enabled_percent, rl.enforced_percent, rl.stat_prefix) != (
                100, 100, "http_local_rate_limiter"):
            raise NotExpressible(f"rate limit {rl.name}: not one service's full rate limit")
        kwargs = [(k, literal(v)) for k, v, default in (
            ("max_tokens", rl.max_tokens, None), ("tokens_per_fill", rl.tokens_per_fill,
                                                  rl.max_tokens),
            ("fill_interval", rl.fill_interval, "1s"), ("name", rl.name, f"{app}-ratelimit"))
            if v != default]
        self.emit(Call(f"{var}.rate_limit", (), kwargs))

    def canary(self, plan: CanaryPlan) -> None:
        var = self.service_var(plan.namespace, plan.service)
        if var is None:
            raise NotExpressible(f"canary for {plan.service}: not a declared service")
        pauses = {s.pause for s in plan.steps}
        steps = ListOf([literal(s.weight) for s in plan.steps]) if len(pauses) == 1 else \
            self.values.value(plan.steps)
        kwargs: list[tuple[str, Expr]] = [("target", literal(plan.target)),
                                          ("stable", literal(plan.stable)), ("steps", steps)]
        if len(pauses) == 1 and plan.steps[0].pause is not None:
            kwargs.append(("pause", literal(plan.steps[0].pause)))
        checks = [self._check(c) for c in plan.checks]
        stage = plan.header_stage
        for key, value, default in (
                ("interval", literal(plan.interval), "1m"),
                ("checks", ListOf(checks), []),
                ("header_stage", self.values.value(stage.match if stage and stage.iterations
                                                   == 1 else stage), None),
                ("mirror_stage", literal(True) if plan.mirror_stage == MirrorStage() else
                 self.values.value(plan.mirror_stage), None),
                ("max_failed_checks", literal(plan.max_failed_checks), 2),
                ("min_requests", literal(plan.min_requests), 10),
                ("no_data_limit", literal(plan.no_data_limit), 3),
                ("webhooks", self.values.value(plan.webhooks), [])):
            if getattr(plan, key) != default:
                kwargs.append((key, value))
        self.emit(Call(f"{var}.canary", (), kwargs))

    def _check(self, check: MetricCheck) -> Expr:
        for helper, limit, kwarg in ((SuccessRate, check.min, "min"),
                                     (LatencyP99, check.max, "max_ms")):
            if limit is not None and check == helper(limit, interval=check.interval):
                kwargs = [(kwarg, literal(limit))]
                if check.interval is not None:
                    kwargs.append(("interval", literal(check.interval)))
                return Call(self.values.use(helper.__name__), (), kwargs)
        return self.values.model(check)
