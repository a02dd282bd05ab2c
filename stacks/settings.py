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
    Where the reconciler keeps its rollouts, so an update keeps the weights of one in
    progress (see :mod:`stacks.rollout`): a path to the reconciler's state directory (its
    ``--state-dir``; the rollouts are in ``rollouts/`` under it) or to a rollout state file
    (JSON), relative paths starting at the Pulumi project directory; or ``cluster`` /
    ``cluster:<reconciler name>`` for the rollout ConfigMaps of a reconciler running
    against the stack's cluster (``meshctl reconcile --name``; ``cluster`` is the one named
    ``default``), reached like the stack's Kubernetes provider (``kubernetes:kubeconfig``,
    ``kubernetes:context``, else ``$KUBECONFIG`` or ``~/.kube/config``).
``system_namespace``
    With ``rollout_state: cluster``: the namespace of the reconciler's ConfigMaps (its
    ``--system-namespace``; default ``meshdsl-system``).

Map keys always name things as the *program* does, so the same key means the same object
in every stack file. Every problem is reported at once, each naming the key and the file.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
    "rollout_state": "a path to the reconciler's state directory (its --state-dir) or to a "
                     "rollout state file (JSON), or cluster, or cluster:<reconciler name> "
                     "(the rollout ConfigMaps of a reconciler on the stack's cluster)",
    "system_namespace": "a namespace (a DNS label like 'meshdsl-system')",
}

_EXAMPLE: dict[str, str] = {
    "canary": "true",
    "namespaces": '\'{"bookinfo": "bookinfo-dev"}\'',
    "replicas": "2",
    "hosts": '\'{"api.example.com": "api.dev.example.com"}\'',
    "tls_credential": "api-cert-dev",
    "rollout_state": "cluster:prod",
    "system_namespace": "meshdsl-system",
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
    system_namespace: DnsLabel | None = None
    origin: str = Field(default="stack configuration", exclude=True)

    @property
    def rollout_location(self) -> OnDisk | InCluster | None:
        """Where ``rollout_state`` points (None: not set). Raises :class:`SettingsError`
        for a value :func:`read_settings` would have refused."""
        if self.rollout_state is None:
            return None
        try:
            return rollout_location(self.rollout_state)
        except ValueError as exc:
            raise SettingsError([_bad_rollout_state(self.origin, self.rollout_state, exc)]
                                ) from exc


SETTINGS = tuple(name for name in StackSettings.model_fields if name != "origin")

# --- meshdsl:rollout_state ------------------------------------------------------------------

CLUSTER = "cluster"
DEFAULT_RECONCILER = "default"  # the name `meshctl reconcile` runs under unless --name
# A reconciler name names its ConfigMaps (meshdsl-rollout-<name>.<ns>.<svc>) and labels them.
_RECONCILER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# "<word>:…" reads as a form, not a file: a mistyped "clustr:prod" must not become a path.
_FORM = re.compile(r"([A-Za-z][-A-Za-z0-9+.]+):(.*)", re.DOTALL)


@dataclass(frozen=True)
class OnDisk:
    """``rollout_state`` names a path: a reconciler state directory or a JSON file."""

    path: str


@dataclass(frozen=True)
class InCluster:
    """``rollout_state`` is ``cluster[:<name>]``: reconciler ``name``'s rollout ConfigMaps."""

    name: str = DEFAULT_RECONCILER


def rollout_location(value: str) -> OnDisk | InCluster:
    """Parse ``meshdsl:rollout_state``. Raises ValueError saying what is wrong with
    ``value`` (a did-you-mean when it looks like a misspelled ``cluster``)."""
    if not value.strip():
        raise ValueError("it is empty")
    if value == CLUSTER:
        return InCluster()
    form = _FORM.fullmatch(value)
    if form is None:
        if value.lower() == CLUSTER:
            raise ValueError(f"did you mean {CLUSTER}?")
        return OnDisk(value)
    prefix, name = form[1], form[2]
    if prefix != CLUSTER:
        close = difflib.get_close_matches(prefix.lower(), [CLUSTER], n=1, cutoff=0.6)
        if close:
            raise ValueError(f"did you mean {CLUSTER}:{name}?")
        raise ValueError(f"{prefix}: is not a form of this setting; a path containing ':' "
                         f"can be written ./{value}")
    if not name:
        raise ValueError(f"{CLUSTER}: needs the reconciler's name; plain {CLUSTER} is the "
                         f"reconciler named {DEFAULT_RECONCILER!r}")
    if len(name) > 63 or not _RECONCILER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a reconciler name: it is at most 63 lower-case "
                         "letters, digits, '-' and '.', as given to meshctl reconcile --name")
    return InCluster(name)


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
    problems += _rollout_state_problems(values, origin)
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


def _bad_rollout_state(origin: str, value: str, why: ValueError) -> str:
    return (f"{origin}: {_key('rollout_state')} must be {EXPECTED['rollout_state']}; got "
            f"{json.dumps(value)} ({why})")


def _rollout_state_problems(values: Mapping[str, Any], origin: str) -> list[str]:
    """What is wrong with the form of ``rollout_state``, and ``system_namespace`` set
    without ``rollout_state: cluster`` (the types are pydantic's to check)."""
    value = values.get("rollout_state")
    location: OnDisk | InCluster | None = None
    if isinstance(value, str):
        try:
            location = rollout_location(value)
        except ValueError as exc:
            return [_bad_rollout_state(origin, value, exc)]
    if "system_namespace" in values and (value is None or isinstance(location, OnDisk)):
        now = "not set" if value is None else f"the path {value}"
        return [f"{origin}: {_key('system_namespace')} is only for {_key('rollout_state')}: "
                f"{CLUSTER} or {CLUSTER}:<reconciler name> (the namespace of the reconciler's "
                f"rollout ConfigMaps), and {_key('rollout_state')} is {now}; remove "
                f"{_key('system_namespace')}"]
    return []


def _pulumi_config() -> dict[str, Any]:
    from pulumi.runtime import config as runtime_config

    # pulumi.Config reads one key at a time; to report unknown keys we need them all. The
    # CLI hands config over in PULUMI_CONFIG (the language host copies it into CONFIG).
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def settings_from_pulumi() -> StackSettings:
    """The settings of the stack Pulumi is running (its config and stack name)."""
    import pulumi

    return read_settings(_pulumi_config(), stack=pulumi.get_stack())


@dataclass(frozen=True)
class KubeAccess:
    """How the stack's Kubernetes provider reaches its cluster: ``kubernetes:kubeconfig``
    (a path, or the kubeconfig itself, as the provider takes it) and
    ``kubernetes:context``; unset, ``$KUBECONFIG`` or ``~/.kube/config`` and its current
    context. ``rollout_state: cluster`` reads the rollouts of the cluster the stack
    deploys to."""

    kubeconfig: str | None = None
    context: str | None = None


def kube_access(config: Mapping[str, Any]) -> KubeAccess:
    """The provider's ``kubernetes:kubeconfig``/``kubernetes:context`` from stack config."""
    def value(key: str) -> str | None:
        raw = config.get(f"kubernetes:{key}")
        return str(raw) if raw not in (None, "") else None

    return KubeAccess(kubeconfig=value("kubeconfig"), context=value("context"))


def kube_access_from_pulumi() -> KubeAccess:
    return kube_access(_pulumi_config())


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
