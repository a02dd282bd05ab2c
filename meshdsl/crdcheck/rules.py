"""``x-kubernetes-validations``: the CEL rules of a CRD, compiled once, run on objects.

A rule is evaluated the way the API server does it: ``self`` is the value at the schema
node that carries the rule, after structural defaulting (a rule may read a field that only
has its default), with property names escaped as Kubernetes escapes them (``namespace`` is
``__namespace__``, ``a-b`` is ``a__dash__b``) and unknown fields pruned. Transition rules
(``oldSelf``) need the stored object and are skipped: the check sees only the new one. A
rule that cannot be evaluated (a missing field read without ``has``) fails, as it does on
the server. The rules of a CRD version compile once into a tree that holds only the paths
leading to rules, so objects are walked only where a rule can apply.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import cel
from cel import stdlib

from meshdsl.crdcheck.k8slib import FUNCTIONS

Path = tuple[str | int, ...]

_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue",
                       "else", "for", "function", "if", "import", "let", "loop", "package",
                       "namespace", "return", "var"})
_CALLS = (re.compile(r"([A-Za-z_]\w*)\s*\("), re.compile(r"([A-Za-z_]\w*\.[A-Za-z_]\w*)\s*\("))
_STDLIB: dict[str, Any] = {}


def _stdlib() -> dict[str, Any]:
    if not _STDLIB:
        context = cel.Context()
        stdlib.add_stdlib_to_context(context)
        _STDLIB.update(context.functions)
    return _STDLIB


@functools.cache
def escape(name: str) -> str | None:
    """A property name as CEL sees it (None when CEL cannot reach it)."""
    if name in _RESERVED:
        return f"__{name}__"
    out = (name.replace("__", "__underscores__").replace(".", "__dot__")
           .replace("-", "__dash__").replace("/", "__slash__"))
    return out if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", out) else None


@dataclass(frozen=True)
class Rule:
    text: str
    message: str
    field_path: str
    program: Any
    functions: tuple[tuple[str, Any], ...]

    def run(self, value: Any) -> Any:
        """The rule's value for ``self`` (True: accepted); raises when it cannot be
        evaluated."""
        if self.functions:
            context = cel.Context(variables={"self": value}, functions=dict(self.functions))
            return self.program.execute(context)
        return self.program.execute({"self": value})


@dataclass
class RuleNode:
    """A schema node on the way to rules: its own rules and the children that lead on."""

    schema: dict[str, Any]
    rules: list[Rule] = field(default_factory=list)
    combined: Rule | None = None
    properties: dict[str, RuleNode] = field(default_factory=dict)
    items: RuleNode | None = None
    additional: RuleNode | None = None
    defaults: dict[str, Any] = field(default_factory=dict)


class RuleError(Exception):
    """A rule of a CRD does not compile (a bad ``--crds`` file)."""


def _compile(entry: dict[str, Any]) -> Rule | None:
    text = str(entry.get("rule", ""))
    if not text or "oldSelf" in text or "optionalOldSelf" in entry:
        return None
    try:
        program = cel.compile(text)
    except ValueError as exc:
        raise RuleError(f"CEL rule {text!r} does not compile: {exc}") from exc
    known = {**_stdlib(), **FUNCTIONS}
    called = {name for pattern in _CALLS for name in pattern.findall(text)}
    functions = tuple(sorted((name, known[name]) for name in called if name in known))
    message = str(entry.get("message") or f"failed rule: {text}")
    return Rule(text, message, str(entry.get("fieldPath", "")), program, functions)


def compile_rules(schema: dict[str, Any]) -> RuleNode | None:
    """The rule tree of a schema; None when no rule is anywhere below it."""
    node = RuleNode(schema)
    for entry in schema.get("x-kubernetes-validations") or []:
        rule = _compile(entry)
        if rule is not None:
            node.rules.append(rule)
    for name, sub in (schema.get("properties") or {}).items():
        child = compile_rules(sub)
        if child is not None:
            node.properties[name] = child
    if isinstance(schema.get("items"), dict):
        node.items = compile_rules(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        node.additional = compile_rules(schema["additionalProperties"])
    if len(node.rules) > 1:
        # Handing a value to the evaluator costs more than most rules: one program per
        # node evaluates all its rules on one conversion of ``self``.
        node.combined = _compile({"rule": "[" + ", ".join(f"({r.text})" for r in node.rules)
                                  + "]"})
    if node.rules or node.properties or node.items or node.additional:
        node.defaults = {name: sub["default"] for name, sub in
                         (schema.get("properties") or {}).items()
                         if name in node.properties and "default" in sub}
        return node
    return None


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` as the server hands it to CEL: defaulted, pruned, names escaped."""
    if isinstance(value, list):
        items = schema.get("items")
        sub = items if isinstance(items, dict) else {}
        return [to_cel(v, sub) for v in value]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    if not properties:
        sub = additional if isinstance(additional, dict) else {}
        return {k: to_cel(v, sub) for k, v in value.items()}
    out: dict[str, Any] = {}
    for name, sub in properties.items():
        present = name in value
        if not present and "default" not in sub:
            continue
        key = escape(name)
        if key is not None:
            out[key] = to_cel(value[name] if present else sub["default"], sub)
    if isinstance(additional, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        extra = additional if isinstance(additional, dict) else {}
        out.update({k: to_cel(v, extra) for k, v in value.items() if k not in properties})
    return out


@dataclass(frozen=True)
class RuleFailure:
    path: Path
    rule: str
    message: str


def evaluate(node: RuleNode, value: Any, path: Path = ()) -> list[RuleFailure]:
    """Every rule of the tree that ``value`` breaks, at the path of the breaking value."""
    out: list[RuleFailure] = []
    _walk(node, value, path, out)
    return out


def _broken(node: RuleNode, value: Any) -> list[tuple[Rule, str]]:
    """The node's rules that ``value`` breaks, each with why it could not be evaluated."""
    if node.combined is not None:
        try:
            results = node.combined.run(value)
        except Exception:  # one rule errs: find which, one by one below
            pass
        else:
            return [(r, "") for r, ok in zip(node.rules, results, strict=True) if ok is not True]
    out: list[tuple[Rule, str]] = []
    for rule in node.rules:
        try:
            if rule.run(value) is not True:
                out.append((rule, ""))
        except Exception as exc:  # the evaluator's errors have no common base
            out.append((rule, f"rule could not be evaluated: {type(exc).__name__} {exc}"))
    return out


def _walk(node: RuleNode, value: Any, path: Path, out: list[RuleFailure]) -> None:
    if value is None:
        return
    if node.rules:
        for rule, problem in _broken(node, to_cel(value, node.schema)):
            where = path + tuple(p for p in rule.field_path.split(".") if p)
            message = f"{rule.message} ({problem})" if problem else rule.message
            out.append(RuleFailure(where, rule.text, message))
    if isinstance(value, dict):
        for name, child in node.properties.items():
            sub = value.get(name)
            if sub is None:
                sub = node.defaults.get(name)
                if sub is None:
                    continue
            _walk(child, sub, (*path, name), out)
        if node.additional is not None:
            properties = node.schema.get("properties") or {}
            for key, sub in value.items():
                if key not in properties:
                    _walk(node.additional, sub, (*path, key), out)
    elif isinstance(value, list) and node.items is not None:
        for index, sub in enumerate(value):
            _walk(node.items, sub, (*path, index), out)
