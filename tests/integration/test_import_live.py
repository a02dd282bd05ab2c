"""``meshctl import`` of objects as a live cluster returns them, on a real kube-apiserver.

Bookinfo (sidecar) and the ambient example are applied by server-side apply (through the
project's target), read back as ``kubectl get -o yaml`` prints them — every kind, through
the API, as one ``kind: List`` with the server's metadata, defaults and status — and
imported. Each example is moved to namespaces of its own by editing its program (so
hosts, principals and grants follow), because the API server is shared by the session.

What must hold: (a) every object imports typed, except those listed here with why; (b)
the generated program renders objects that, applied again by server-side apply, leave
every object as it was: not one write (so resourceVersions stay), same generations, same
content.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from meshdsl.compile import compile_mesh
from meshdsl.compile.compare import differences, normalize
from meshdsl.compile.manifest import NAMESPACE, Manifest, ResourceKey
from meshdsl.importer import import_documents, load_text, run_program
from meshdsl.importer.manifests import applied
from meshdsl.model.builder import Mesh
from reconciler.runtime.apply import apply
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from tests.conftest import EXAMPLES, REPO

pytestmark = pytest.mark.integration

FOLDER = REPO / "tests" / "unit" / "importer" / "ambient_folder"


@pytest.fixture
def target(apiserver: LocalApiServer) -> Iterator[KubeTarget]:
    with KubeTarget.from_kubeconfig(str(apiserver.kubeconfig)) as t:
        yield t


def _program(example: str, edits: dict[str, str]) -> list[Manifest]:
    """An example's compiled objects, its program edited first (each edit made once)."""
    path = EXAMPLES / example / "mesh.py"
    source = path.read_text()
    for old, new in edits.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    scope: dict[str, Any] = {"__name__": "__example__", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), scope)
    mesh = scope["mesh"]
    assert isinstance(mesh, Mesh)
    return compile_mesh(mesh.build())


def _without_retry(manifests: list[Manifest]) -> list[Manifest]:
    """The test server serves the Gateway API's standard channel, which has no HTTPRoute
    ``retry`` (server-side apply refuses it; see test_ambient_apply.py)."""
    for m in manifests:
        if m["kind"] == "HTTPRoute":
            for rule in m["spec"]["rules"]:
                rule.pop("retry", None)
    return manifests


def _read_back(target: KubeTarget, desired: list[Manifest]) -> dict[str, Any]:
    """What ``kubectl get <every kind> -n <each namespace> -o yaml`` prints: one List."""
    kinds = sorted({ResourceKey.of(m).group_kind for m in desired})
    namespaces = sorted({m["metadata"]["namespace"] for m in desired
                         if "namespace" in m["metadata"]})
    declared = {m["metadata"]["name"] for m in desired if m["kind"] == "Namespace"}
    items: list[Manifest] = []
    for kind in kinds:
        if kind == NAMESPACE:
            items += [o for o in target.list(kind)
                      if o["metadata"]["name"] in declared]
        else:
            for ns in namespaces:
                items += target.list(kind, ns)
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}


def _versions(listed: dict[str, Any]) -> dict[ResourceKey, tuple[str, int | None]]:
    return {ResourceKey.of(o): (o["metadata"]["resourceVersion"],
                                o["metadata"].get("generation")) for o in listed["items"]}


def _content(listed: dict[str, Any]) -> dict[ResourceKey, Manifest]:
    """Each object without what the server keeps about it (metadata, status)."""
    out = {}
    for o in listed["items"]:
        body = {k: v for k, v in o.items() if k not in ("metadata", "status")}
        out[ResourceKey.of(o)] = normalize({**body, "metadata": {}})
    return out


def _roundtrip(target: KubeTarget, desired: list[Manifest], mesh: str
               ) -> tuple[dict[str, str], set[str]]:
    """Apply, read back, import, re-apply the import's render: (raw objects and why, what
    the re-apply wrote)."""
    result = apply(target, desired, mesh=mesh)
    assert result.warnings == []
    before = _read_back(target, desired)
    assert len(before["items"]) == len(desired)
    assert all("managedFields" in o["metadata"] for o in before["items"])  # truly live
    program = import_documents(load_text(yaml.safe_dump(before), "live.yaml"))
    raw = dict(note.split(": ", 1) for note in program.result.notes)
    rendered = compile_mesh(run_program(program.source))
    target.writes.clear()
    apply(target, rendered, mesh=mesh)
    written = {what for _, what in target.writes}
    after = _read_back(target, desired)
    old, new = _versions(before), _versions(after)
    assert set(new) == set(old)
    for key, (version, generation) in old.items():
        assert new[key][1] == generation, key  # no spec changed
        if str(key) not in written:
            assert new[key][0] == version, key  # not written: not touched
    assert _content(after) == _content(before)
    return raw, written


def test_bookinfo_read_back_from_the_cluster_imports_typed(target: KubeTarget) -> None:
    suffix = uuid.uuid4().hex[:6]
    users, bookinfo = f"live-users-{suffix}", f"live-bookinfo-{suffix}"
    desired = _program("bookinfo", {
        'Mesh("bookinfo")': f'Mesh("bookinfo", namespace="{users}")',
        'namespaces=["default"]': f'namespaces=["{users}"]',
        'mesh.namespace("bookinfo",': f'mesh.namespace("{bookinfo}",'})
    target.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": users}})
    raw, written = _roundtrip(target, desired, f"live-{suffix}")
    assert raw == {}
    assert written == set()


def test_the_ambient_example_read_back_from_the_cluster_imports_typed(
        target: KubeTarget) -> None:
    suffix = uuid.uuid4().hex[:6]
    shop, edge = f"live-amb-{suffix}", f"live-edge-{suffix}"
    desired = _without_retry(_program("ambient", {
        'mesh.namespace("bookinfo",': f'mesh.namespace("{shop}",',
        'mesh.namespace("bookinfo-edge",': f'mesh.namespace("{edge}",'}))
    raw, written = _roundtrip(target, desired, f"live-amb-{suffix}")
    # the route whose retries the standard channel refused keeps its timeout alone
    assert raw == {f"HTTPRoute {shop}/reviews":
                   "a backendRequest timeout without retry has no DSL form"}
    assert written == set()  # the compiler writes no default there: the same object


def test_a_folder_imports_the_same_from_its_files_and_from_the_cluster(
        target: KubeTarget) -> None:
    """The importer's ambient corpus (TLS and redirecting listeners, cross-namespace routes,
    policies by targetRefs, a sidecar namespace, one odd object): read back from the
    cluster, it gives the program its files give."""
    suffix = uuid.uuid4().hex[:6]
    text = "\n---\n".join(p.read_text() for p in sorted(FOLDER.glob("*.yaml")))
    text = re.sub(r"\b(shop|edge|legacy)\b", rf"\1-{suffix}", text)
    documents = load_text(text, "folder.yaml")
    from_files = import_documents(documents, name="shop")
    desired = [applied(d).manifest for d in documents]
    apply(target, desired, mesh=f"folder-{suffix}")
    listed = _read_back(target, desired)
    from_cluster = import_documents(load_text(yaml.safe_dump(listed), "folder.yaml"),
                                    name="shop")
    assert from_cluster.result.notes == from_files.result.notes
    assert len(from_files.result.notes) == 1  # the odd route (see test_gateway_api_fallback)
    # typed alike; the odd route, carried raw, is the live object as applied, in the
    # server's key order and without the defaults its file spelled out: the same object
    typed = from_files.source.split("\nmesh.raw(")[0]
    assert from_cluster.source.split("\nmesh.raw(")[0] == typed
    assert differences(compile_mesh(run_program(from_files.source)),
                       compile_mesh(run_program(from_cluster.source))) == []
