"""Run a stack program against Pulumi's mocks and see what it registered.

For unit tests of stacks, ours and yours: no Pulumi CLI, no cluster. ``run_program`` sets
``pulumi.runtime.set_mocks`` with a monitor that records every registration (type, name,
parent, dependencies, inputs), the outputs a component registers, the stack's exports and
the log, then runs the program function to completion::

    run = run_program(lambda: deploy("examples/bookinfo/mesh.py"),
                      config={"meshdsl:canary": "true"}, stack="dev")
    assert run.named("virtualservice-default-frontend").parent == run.component().urn

Mocks are process-wide state in Pulumi; runs are sequential and each gets a fresh monitor
and root stack. Resources are created inside ``run_program``, after the mocks are set, so
importing resource modules earlier is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc, settings

from meshdsl.compile import order_key
from stacks.component import TYPE_TOKEN


@dataclass(frozen=True)
class Registration:
    """One ``RegisterResource`` call, as the engine would have seen it."""

    type: str
    name: str
    urn: str
    parent: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    custom: bool


def _apply_order(registrations: list[Registration]) -> list[Registration]:
    """Registrations reach the monitor in whatever order the SDK's tasks run; Kubernetes
    objects are listed in the compiler's apply order instead (``order_key``)."""
    return sorted(registrations, key=lambda r: order_key(r.inputs))


@dataclass
class Run:
    """Everything a program registered. ``registrations`` are in arrival order; the
    helpers below list Kubernetes objects in apply order."""

    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # urn → outputs
    exports: dict[str, Any] = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), info+

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def component(self) -> Registration:
        (found,) = [r for r in self.registrations if r.type == TYPE_TOKEN]
        return found

    def children(self, parent: Registration) -> list[Registration]:
        """The custom resources ``parent`` owns, in apply order."""
        return _apply_order([r for r in self.registrations
                             if r.parent == parent.urn and r.custom])

    def manifests(self) -> list[dict[str, Any]]:
        """What the stack sends to Kubernetes, in apply order: the inputs of every custom
        resource, the integral numbers Pulumi's wire format made floats made ints again."""
        return [_ints(r.inputs) for r in _apply_order([r for r in self.registrations
                                                       if r.custom])]

    def messages(self, level: str | None = None) -> Iterator[str]:
        return (m for lvl, m in self.logs if level is None or lvl == level)


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


class _Echo(mocks.Mocks):
    """Every resource's state is its inputs; no provider functions are called."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        return {}, []


class _RecordingMonitor(mocks.MockMonitor):
    def __init__(self, run: Run) -> None:
        super().__init__(_Echo())
        self.run = run
        self._base: Any = super()  # the SDK's monitor methods are unannotated

    def RegisterResource(self, request: Any) -> Any:
        response = self._base.RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.run.registrations.append(Registration(
                type=request.type, name=request.name, urn=response.urn,
                parent=request.parent, dependencies=tuple(request.dependencies),
                inputs=dict(inputs), custom=bool(request.custom)))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        outputs = rpc.deserialize_properties(request.outputs) if request.outputs else {}
        self.run.outputs[request.urn] = _ints(dict(outputs))
        return self._base.RegisterResourceOutputs(request)


class _Collect(logging.Handler):
    """What ``pulumi.log`` says at info level and above (the SDK's debug chatter is left
    out)."""

    def __init__(self, run: Run) -> None:
        super().__init__(logging.INFO)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.logs.append((record.levelname.lower(), record.getMessage()))


def run_program(program: Callable[[], Any], *, config: Mapping[str, str] | None = None,
                project: str = "meshdsl", stack: str = "test") -> Run:
    """Run ``program`` under mocks with this stack config (``{"meshdsl:canary": "true"}``,
    values as the Pulumi CLI passes them: strings, objects JSON-encoded). Exceptions the
    program raises propagate."""
    run = Run()
    logger = logging.getLogger("stacks.testing.pulumi")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = _Collect(run)
    logger.addHandler(handler)
    pulumi.runtime.set_all_config(dict(config or {}))
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(_Echo(), project=project, stack=stack, preview=False,
                             logger=logger, monitor=_RecordingMonitor(run))

    def exported(values: dict[str, Any]) -> None:
        run.exports.update(_ints(values))

    def body() -> pulumi.Output[None]:
        program()
        root = settings.get_root_resource()
        outputs = getattr(root, "outputs", {})
        return pulumi.Output.from_input(dict(outputs)).apply(exported)

    as_test: Any = pulumi.runtime.test  # waits for every registration and output
    try:
        as_test(body)()
    finally:
        logger.removeHandler(handler)
        pulumi.runtime.set_all_config({})
    return run


def stack_config(path: str | Path) -> dict[str, str]:
    """A ``Pulumi.<stack>.yaml`` file's ``config:`` as the CLI hands it to a program."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, str] = {}
    for key, value in (data.get("config") or {}).items():
        if isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


__all__ = ["Registration", "Run", "run_program", "stack_config"]
