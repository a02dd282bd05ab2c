"""Per-object fallback of an ambient import: an object the program would not reproduce
travels raw alone (with what depends on it), one warning naming it and why; the rest
stays typed, and the program still renders the whole input back exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdsl.compile import render
from meshdsl.importer import import_documents, load_text, verify
from meshdsl.importer.fallback import culprits, mismatches
from meshdsl.importer.folder import load_folder
from tests.unit.importer.support import AMBIENT_SHOP, ambient_shop

FOLDER = Path(__file__).parent / "ambient_folder"
Manifest = dict[str, Any]


def test_a_mixed_folder_carries_only_its_odd_object_raw() -> None:
    documents = load_folder([FOLDER]).documents
    program = import_documents(documents, name="shop")
    (warning,) = program.warnings
    assert warning.resource == "HTTPRoute shop/api"
    assert warning.message == ("the program would not reproduce spec.parentRefs[0].namespace "
                               "(not expressible in the DSL); carried through unchanged "
                               "(mesh.raw)")
    assert warning.source is not None and warning.source.file.endswith("odd.yaml")
    src = program.source
    assert src.count("\nmesh.raw(") == 1 and "api.route(" not in src
    for typed in ('shop = mesh.namespace("shop", mode="ambient")',  # ambient, from the Gateway API
                  'api = shop.service("api", port=8080, versions=["v1", "v2"])',
                  'web.allow(api, methods=["GET"])',
                  'no_admin = shop.authorization("no-admin", action="DENY")',
                  'front.http("shop.example.com", https_redirect=True)',
                  'front_authz = front.authorization("front-authz", action="DENY")',
                  'hosts=["web", "web.example.com"], gateways=["mesh", front])',
                  'old.route(to={old.v1: 50, old.v2: 50})'):  # the sidecar namespace
        assert typed in src, typed
    assert verify(src, [d.manifest for d in documents]) == []


def test_without_the_odd_object_the_folder_imports_wholly_typed() -> None:
    documents = [d for d in load_folder([FOLDER]).documents
                 if not d.file.endswith("odd.yaml")]
    program = import_documents(documents, name="shop")
    assert program.warnings == () and "mesh.raw(" not in program.source


def _base() -> list[Manifest]:
    return list(yaml.safe_load_all(render(ambient_shop().build())))


def _find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _unknown_target(docs: list[Manifest]) -> None:
    _find(docs, "AuthorizationPolicy", "web")["spec"]["targetRefs"][0]["kind"] = "Pod"


def _parents_reordered(docs: list[Manifest]) -> None:
    _find(docs, "HTTPRoute", "web")["spec"]["parentRefs"].reverse()


def _no_waypoint_only(docs: list[Manifest]) -> None:
    docs.remove(_find(docs, "AuthorizationPolicy", "waypoint-only"))


def _redirect_302(docs: list[Manifest]) -> None:
    route = _find(docs, "HTTPRoute", "front-https-redirect")
    route["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"] = 302


_CASES: list[tuple[Callable[[list[Manifest]], None], dict[str, str]]] = [
    (_unknown_target, {
        "AuthorizationPolicy shop/web": "targetRefs to Pod 'web', which is neither a "
        "Service, the waypoint nor an ingress Gateway of the input",
        # added by the compiler beside typed policies only: none is left
        "AuthorizationPolicy shop/waypoint-only": "the program would not render it"}),
    (_parents_reordered, {
        # group and kind of the first parent are the Gateway API's defaults: not a difference
        "HTTPRoute shop/web": "the program would not reproduce spec.parentRefs[0].name",
        # it admits other namespaces' routes only while one is typed, and what hangs on it
        "Gateway edge/front": "the program would not reproduce spec.listeners[0].allowedRoutes "
        "(not expressible in the DSL), once HTTPRoute shop/web is carried raw",
        "HTTPRoute edge/front-https-redirect": "the https redirect of Gateway edge/front, "
        "which is carried raw",
        "AuthorizationPolicy edge/front": "the policy of Gateway 'front', which is carried "
        "raw"}),
    (_no_waypoint_only, {
        "AuthorizationPolicy shop/web": "the program would also render AuthorizationPolicy "
        "shop/waypoint-only, which the input does not have"}),
    (_redirect_302, {
        "HTTPRoute edge/front-https-redirect": "a parentRef to a Gateway's listener or port "
        "has no DSL form"}),
]


@pytest.mark.parametrize(("change", "expected"), _CASES,
                         ids=[c[0].__name__[1:] for c in _CASES])
def test_what_is_not_reproduced_travels_raw_with_why(
        change: Callable[[list[Manifest]], None], expected: dict[str, str]) -> None:
    docs = _base()
    change(docs)
    text = yaml.safe_dump_all(docs, sort_keys=False)
    program = import_documents(load_text(text, "in.yaml"))
    warned = {w.resource: w.message for w in program.warnings}
    assert set(warned) == set(expected)
    for resource, why in expected.items():
        assert warned[resource].startswith(why), warned[resource]
        assert warned[resource].endswith("; carried through unchanged (mesh.raw)")
    assert program.source.count("\nmesh.raw(") == len(expected)
    assert 'mesh.namespace("shop", mode="ambient")' in program.source
    assert verify(program.source, docs) == []


def test_what_nothing_explains_falls_back_as_a_whole_and_says_so() -> None:
    # a waypoint named on the namespace but missing from the input: the compiler would
    # write it, and no input object is to blame
    text = AMBIENT_SHOP
    docs = load_text(text, "in.yaml")
    program = import_documents(docs)
    assert str(program.warnings[0]) == (
        "in.yaml:1: warning: Namespace shop: not read back into the DSL (Gateway "
        "shop/waypoint: the program would render it, the input does not have it); its "
        "Gateway API objects are carried through unchanged (mesh.raw)")
    assert "mode=" not in program.source
    assert verify(program.source, [d.manifest for d in docs]) == []


def _obj(kind: str, name: str, ns: str = "shop", spec: Any = None,
         api: str = "gateway.networking.k8s.io/v1") -> Manifest:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": spec or {}}


def test_mismatches_pair_objects_by_identity() -> None:
    same, changed = _obj("HTTPRoute", "a", spec={"x": 1}), _obj("HTTPRoute", "b", spec={"x": 1})
    found = mismatches([same, changed, _obj("HTTPRoute", "gone")],
                       [same, {**changed, "spec": {"x": 2}}, _obj("HTTPRoute", "new"),
                        _obj("HTTPRoute", "a", spec={"x": 1})])
    assert [(m.key[3], m.reason, m.extra) for m in found] == [
        ("a", "the program would render it twice", True),
        ("b", "the program would not reproduce spec.x (not reproducible exactly: the DSL "
              "would write 2)", False),
        ("gone", "the program would not render it", False),
        ("new", "the program would render it, the input does not have it", True)]
    # a v1beta1 object is the same stored object as its v1 form
    beta = {**same, "apiVersion": "gateway.networking.k8s.io/v1beta1"}
    assert mismatches([beta], [same]) == []


@pytest.mark.parametrize(("extra", "blamed"), [
    (_obj("TCPRoute", "db-1"), [0]),  # the second tcp route of VirtualService db
    (_obj("HTTPRoute", "gw-https-redirect"), [1]),  # the Gateway's redirect
    (_obj("ReferenceGrant", "from-shop", ns="data"), [0]),  # the route with a backend there
    (_obj("AuthorizationPolicy", "waypoint-only", api="security.istio.io/v1"), [2]),
    (_obj("Service", "db", api="v1"), [0]),  # the route that names it
    (_obj("Gateway", "waypoint"), []),  # written from the namespace's mode: nobody to blame
])
def test_an_object_the_input_lacks_is_blamed_on_what_the_compiler_writes_it_from(
        extra: Manifest, blamed: list[int]) -> None:
    inputs = [_obj("TCPRoute", "db", spec={"rules": [{"backendRefs": [
                  {"name": "db", "namespace": "data", "port": 5432}]}]}),
              _obj("Gateway", "gw"),
              _obj("AuthorizationPolicy", "web", api="security.istio.io/v1")]
    found = mismatches(inputs, [*inputs, extra])
    assert sorted(culprits(found, inputs, raw=())) == blamed
    assert culprits(found, inputs, raw=blamed) == {}  # already raw: nothing new to blame
