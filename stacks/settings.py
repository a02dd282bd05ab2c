"""Per-environment settings of a mesh stack, read from the ``meshdsl:`` keys of
``Pulumi.<stack>.yaml``, and what they change in the mesh (:func:`apply_settings`).

The settings (all keys are in the ``meshdsl`` namespace, e.g. ``meshdsl:canary``):

``canary`` (required)
    ``true``: deploy the program's routes as written and leave canaries to the
    reconciler. ``false``: every canaried service sends all traffic to its stable version.
``namespaces``
    ``{program namespace: namespace in this environment}``.
``replicas``
    A count for every Deployment, or ``{"<namespace>/<service>-<version>": count}``.
``hosts``
    ``{host in the program: host in this environment}`` (gateway and route hosts).
``tls_credential``
    The Secret the gateways serve TLS with: one name for every HTTPS server, or
    ``{credential in the program: credential in this environment}``.
``rollout_state``
    Path of the reconciler's rollout state (JSON); relative paths start at the Pulumi
    project directory. See :mod:`stacks.rollout`.

Map keys always name things as the *program* does, so the same key means the same object
in every stack file. Every problem is reported at once, each naming the key and the file.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from meshdsl.model.spec import MeshSpec
from stacks.errors import SettingsError
from stacks.rewrite import (
    Renames,
    deployment_names,
    relocate,
    scale,
    used_credentials,
    used_hosts,
    used_namespaces,
)

NAMESPACE = "meshdsl"

DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Replicas = Annotated[int, Field(ge=0)]

# What each key must hold, for error messages (same order as the docstring).
EXPECTED: dict[str, str] = {
    "canary": "true or false",
    "namespaces": "a map {program namespace: namespace}, each a DNS label like 'bookinfo-dev'",
    "replicas": 'a count (0 or more) for every Deployment, or a map '
                '{"<namespace>/<service>-<version>": count}',
    "hosts": "a map {program host: host}",
    "tls_credential": "a Secret name, or a map {program credential: Secret name}",
    "rollout_state": "a path to the reconciler's rollout state (JSON)",
}

_EXAMPLE: dict[str, str] = {
    "canary": "true",
    "namespaces": '\'{"bookinfo": "bookinfo-dev"}\'',
    "replicas": "2",
    "hosts": '\'{"api.example.com": "api.dev.example.com"}\'',
    "tls_credential": "api-cert-dev",
    "rollout_state": "../../.meshdsl/rollouts.json",
}


class StackSettings(BaseModel):
    """The typed settings of one stack. ``origin`` names where they came from (the stack
    file) for error messages; it is not a setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    canary: bool
    namespaces: dict[str, DnsLabel] = Field(default_factory=dict)
    replicas: Replicas | dict[str, Replicas] | None = None
    hosts: dict[str, str] = Field(default_factory=dict)
    tls_credential: str | dict[str, str] | None = None
    rollout_state: str | None = None
    origin: str = Field(default="stack configuration", exclude=True)


SETTINGS = tuple(name for name in StackSettings.model_fields if name != "origin")


def stack_file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def _decode(raw: Any) -> Any:
    """Pulumi hands every value over as a string; objects and lists come JSON-encoded."""
    if isinstance(raw, str) and raw.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def read_settings(config: Mapping[str, Any], *, stack: str) -> StackSettings:
    """Typed settings from a stack's configuration (``{"meshdsl:canary": "true", …}``;
    keys of other namespaces are ignored). Raises :class:`SettingsError` listing every
    missing, unknown or ill-typed key."""
    origin = stack_file(stack)
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: _decode(v) for k, v in config.items() if k.startswith(prefix)}
    problems: list[str] = []
    for name in sorted(set(values) - set(SETTINGS)):
        close = difflib.get_close_matches(name, SETTINGS, n=1)
        hint = f"did you mean {_key(close[0])}? " if close else ""
        problems.append(f"{origin}: {_key(name)} is not a meshdsl setting ({hint}the settings "
                        f"are {', '.join(SETTINGS)})")
        del values[name]
    try:
        settings = StackSettings.model_validate({**values, "origin": origin})
    except ValidationError as exc:
        seen: set[str] = set()
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name in seen or name not in EXPECTED:
                continue
            seen.add(name)
            if error["type"] == "missing":
                problems.append(
                    f"{origin}: {_key(name)} is missing; it must be {EXPECTED[name]} (set it "
                    f"with `pulumi config set {_key(name)} {_EXAMPLE[name]}`)")
            else:
                problems.append(f"{origin}: {_key(name)} must be {EXPECTED[name]}; got "
                                f"{json.dumps(values.get(name))}")
        raise SettingsError(problems) from exc
    if problems:
        raise SettingsError(problems)
    return settings


def settings_from_pulumi() -> StackSettings:
    """The settings of the stack Pulumi is running (its config and stack name)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # pulumi.Config reads one key at a time; to report unknown keys we need them all. The
    # CLI hands config over in PULUMI_CONFIG (the language host copies it into CONFIG).
    config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return read_settings(config, stack=pulumi.get_stack())


def _unknown(settings: StackSettings, name: str, keys: set[str] | list[str],
             known: set[str] | list[str], what: str) -> list[str]:
    missing = sorted(set(keys) - set(known))
    if not missing:
        return []
    listed = ", ".join(sorted(known)) or "none"
    return [f"{settings.origin}: {_key(name)} names {', '.join(repr(m) for m in missing)}, "
            f"which the program does not have (its {what}: {listed})"]


def apply_settings(spec: MeshSpec, settings: StackSettings) -> MeshSpec:
    """The program's mesh as this environment deploys it. Pure; raises
    :class:`SettingsError` when a map names something the program does not have."""
    problems: list[str] = []
    if isinstance(settings.replicas, dict):
        problems += _unknown(settings, "replicas", list(settings.replicas),
                             deployment_names(spec), "Deployments")
    problems += _unknown(settings, "namespaces", list(settings.namespaces),
                         used_namespaces(spec), "namespaces")
    targets = list(settings.namespaces.values())
    clashes = sorted({t for t in targets if targets.count(t) > 1})
    if clashes:
        problems.append(f"{settings.origin}: {_key('namespaces')} maps several namespaces "
                        f"to {', '.join(clashes)}; each needs its own")
    problems += _unknown(settings, "hosts", list(settings.hosts), used_hosts(spec), "hosts")
    credentials = used_credentials(spec)
    if isinstance(settings.tls_credential, dict):
        problems += _unknown(settings, "tls_credential", list(settings.tls_credential),
                             credentials, "gateway TLS credentials")
        renamed_credentials: Mapping[str, str] = settings.tls_credential
    elif settings.tls_credential is not None:
        if not credentials:
            problems.append(f"{settings.origin}: {_key('tls_credential')} is set, but no "
                            "gateway of the program serves TLS with a credential")
        renamed_credentials = dict.fromkeys(credentials, settings.tls_credential)
    else:
        renamed_credentials = {}
    if problems:
        raise SettingsError(problems)
    if settings.replicas is not None:
        spec = scale(spec, settings.replicas)
    return relocate(spec, Renames(namespaces=settings.namespaces, hosts=settings.hosts,
                                  credentials=renamed_credentials))
