"""What a bookinfo stack would create, checked by a real kube-apiserver with ``dryRun=All``:
the Istio CRD schemas and Kubernetes validation accept every object, and nothing the stack
sends is pruned. Server-side apply is what pulumi-kubernetes v4 uses by default."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from reconciler.testing.apiserver import LocalApiServer
from stacks.program import deploy
from stacks.testing import run_program, stack_config
from tests.unit.stacks.projects import BOOKINFO_PROGRAM, stack_file

pytestmark = pytest.mark.integration

FIELD_MANAGER = "meshdsl-stacks-test"
# Kubernetes < 1.21 cannot server-side apply a port list whose items omit `protocol`
# (kubernetes-sigs/structured-merge-diff#130, fixed by kubernetes/kubernetes#98576).
SSA_PROTOCOL_BUG = 'omits key field "protocol"'


def contains(got: Any, want: Any, path: str = "") -> list[str]:
    """Where ``want`` is not in ``got`` (the server may add defaults, never drop or change
    what was sent)."""
    if want is None:
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        return [d for k, v in want.items()
                for d in (contains(got[k], v, f"{path}.{k}") if k in got
                          else [f"{path}.{k}: dropped by the server"])]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: expected {want!r}, got {got!r}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True))
                for d in contains(g, w, f"{path}[{i}]")]
    return [] if got == want else [f"{path}: sent {want!r}, server has {got!r}"]


def where(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    ns = f"{meta['namespace']}/" if "namespace" in meta else ""
    return f"{manifest['kind']}/{ns}{meta['name']}"


def differences(manifest: dict[str, Any], got: dict[str, Any]) -> Iterator[str]:
    yield from contains(got["metadata"], manifest["metadata"], ".metadata")
    if "istio.io" in manifest["apiVersion"]:
        # a 1.20 server prunes unknown CRD fields silently: the spec must come back whole
        if got.get("spec") != manifest.get("spec"):
            yield f".spec: changed by the server to {got.get('spec')}"
    else:
        yield from contains(got.get("spec"), manifest.get("spec"), ".spec")


Stack = tuple[Any, list[dict[str, Any]], str]   # dynamic client, manifests, namespace


def stack_manifests(stack: str, namespace: str) -> list[dict[str, Any]]:
    """The objects the stack program creates with this stack file, bookinfo moved to
    ``namespace`` (the shared server never forgets a namespace: no namespace controller)."""
    config = stack_config(stack_file(stack))
    config["meshdsl:namespaces"] = json.dumps({"bookinfo": namespace})
    return run_program(lambda: deploy(BOOKINFO_PROGRAM), config=config, stack=stack).manifests()


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest, apiserver: LocalApiServer) -> Stack:
    namespace = f"bookinfo-{request.param}-{uuid.uuid4().hex[:6]}"
    manifests = stack_manifests(request.param, namespace)
    assert len(manifests) == 22
    dyn = apiserver.dynamic_client()
    # A dry run does not create a namespace and objects in a missing one are refused, so
    # the stack's Namespace objects are applied for real.
    for manifest in manifests:
        if manifest["kind"] == "Namespace":
            resource = dyn.resources.get(api_version="v1", kind="Namespace")
            dyn.server_side_apply(resource, body=copy.deepcopy(manifest),
                                  field_manager=FIELD_MANAGER)
    return dyn, manifests, namespace


def message(exc: DynamicApiError) -> str:
    body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body


def server_side_dry_run(dyn: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    result: dict[str, Any] = dyn.server_side_apply(
        resource, body=copy.deepcopy(manifest), field_manager=FIELD_MANAGER,
        dry_run="All").to_dict()
    return result


def dry_runs(dyn: Any, manifests: list[dict[str, Any]]
             ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | DynamicApiError]]:
    """Each manifest with what the server-side apply dry run returned, or its refusal."""
    for manifest in manifests:
        try:
            yield manifest, server_side_dry_run(dyn, manifest)
        except DynamicApiError as exc:
            yield manifest, exc


def test_every_object_is_accepted_and_kept_whole(stack: Stack) -> None:
    dyn, manifests, namespace = stack
    problems: list[str] = []
    for manifest, got in dry_runs(dyn, manifests):
        if isinstance(got, DynamicApiError):
            if SSA_PROTOCOL_BUG not in message(got):
                problems.append(f"{where(manifest)}: refused: {message(got)}")
                continue
            # see test_server_side_apply_of_every_object: validate with a dry-run create
            resource = dyn.resources.get(api_version=manifest["apiVersion"],
                                         kind=manifest["kind"])
            got = dyn.create(resource, body=copy.deepcopy(manifest),
                             field_manager=FIELD_MANAGER, dry_run="All").to_dict()
        problems += [f"{where(manifest)}{d}" for d in differences(manifest, got)]
    assert problems == [], "\n".join(problems)

    # dry run: nothing but the namespace was stored
    for manifest in manifests:
        meta = manifest["metadata"]
        if manifest["kind"] == "Namespace" or meta.get("namespace") != namespace:
            continue  # the `users` objects live in the shared default namespace
        resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        with pytest.raises(NotFoundError):
            dyn.get(resource, name=meta["name"], namespace=meta["namespace"])


def test_server_side_apply_of_every_object(stack: Stack) -> None:
    """Exactly what pulumi-kubernetes sends: server-side apply of every object."""
    dyn, manifests, _ = stack
    assert [f"{where(manifest)}: {message(got)}" for manifest, got in dry_runs(dyn, manifests)
            if isinstance(got, DynamicApiError)] == []


def test_a_wrong_object_is_refused_by_the_dry_run(apiserver: LocalApiServer) -> None:
    """The check has teeth: the same path rejects a VirtualService with a bad weight."""
    manifests = run_program(lambda: deploy(BOOKINFO_PROGRAM),
                            config={"meshdsl:canary": "true"}).manifests()
    vs = next(m for m in manifests if m["kind"] == "VirtualService"
              and m["metadata"]["name"] == "frontend")
    vs["spec"]["http"][0]["route"][0]["weight"] = "ninety-five"
    with pytest.raises(DynamicApiError) as excinfo:
        server_side_dry_run(apiserver.dynamic_client(), vs)
    assert excinfo.value.status == 422
    assert "must be of type integer" in message(excinfo.value)
