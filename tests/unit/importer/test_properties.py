"""Properties: a mesh survives model → YAML → import → model, and no input — however
malformed — makes the importer fail with anything but a clear input error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshdsl import Mesh, ServicePort, Uri, Version
from meshdsl.compile import compile_mesh, render
from meshdsl.compile.compare import differences
from meshdsl.importer import (
    ImporterError,
    InputError,
    import_documents,
    load_text,
    run_program,
    to_model,
    to_python,
)
from meshdsl.importer.yamlsource import Document
from tests.unit.importer.support import canonical
from tests.unit.test_properties import names, policies, route_options

durations = st.sampled_from(["1s", "250ms", "10s", "1m", "1h30m", "soon"])


@st.composite
def services(draw: st.DrawFn, mesh: Mesh, scope: Any, name: str) -> Any:
    """A service whose every part reaches the YAML (ports only with a Service object)."""
    versions = draw(st.lists(st.sampled_from(["v1", "v2", "v3"]), unique=True, max_size=3))
    versions = [Version(v, labels={"track": v}) if draw(st.booleans()) else v
                for v in versions]
    deploy = draw(st.booleans())
    port: Any = None
    if deploy or draw(st.booleans()):
        port = draw(st.sampled_from([80, 9080, ServicePort(number=8080, name="grpc",
                                                           protocol="grpc", target_port=9000)]))
    svc = scope.service(name, port=port, versions=versions,
                        explicit_port=draw(st.booleans()),
                        service_account=f"{name}-sa" if deploy and draw(st.booleans()) else None,
                        kube_service=None if deploy or port is None else True)
    if deploy:
        for version in [v if isinstance(v, str) else v.name for v in versions] or ["v1"]:
            svc.deploy(version, image=f"registry/{name}:{version}",
                       replicas=draw(st.integers(0, 3)),
                       env=draw(st.dictionaries(names, names, max_size=2)))
    pol = draw(policies())
    if pol:
        svc.policy(**pol)
    return svc


@st.composite
def meshes(draw: st.DrawFn) -> Mesh:
    mesh = Mesh("gen", mtls=draw(st.sampled_from([None, "STRICT", "PERMISSIVE"])))
    scopes = [mesh, mesh.namespace("team")] if draw(st.booleans()) else [mesh]
    all_services = []
    for name in draw(st.lists(names, min_size=1, max_size=4, unique=True)):
        scope = draw(st.sampled_from(scopes))
        all_services.append(draw(services(mesh, scope, name)))
    for svc in all_services:
        for _ in range(draw(st.integers(1, 3))):  # a route: every service reaches the YAML
            target = draw(st.sampled_from(all_services))
            subsets = [v.name for v in target.versions] + ["v9"]
            if draw(st.booleans()):
                chosen = draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=3,
                                       unique=True))
                to: Any = {target.subset(s): draw(st.integers(0, 100)) for s in chosen}
            else:
                to = target
            kwargs: dict[str, Any] = {"to": to, **draw(route_options(durations))}
            if draw(st.booleans()):
                kwargs["mirror"] = draw(st.sampled_from(all_services))
            svc.route(**kwargs)
        if draw(st.booleans()):
            svc.rate_limit(max_tokens=draw(st.integers(1, 500)),
                           tokens_per_fill=draw(st.integers(1, 50)),
                           fill_interval=draw(durations))
        if draw(st.booleans()):
            svc.mtls(draw(st.sampled_from(["STRICT", "DISABLE"])),
                     ports={8080: "PERMISSIVE"} if draw(st.booleans()) else None)
    if draw(st.booleans()):
        gw = mesh.gateway("edge").http(draw(st.sampled_from(["*", "shop.example.com"])))
        if draw(st.booleans()):
            gw.https("shop.example.com", credential="shop-cert")
        gw.routes("edge-routes", hosts=["shop.example.com"]).route(
            match=Uri(prefix="/"), to=all_services[0])
    if draw(st.booleans()):
        first = all_services[0]
        first.allow(*all_services[1:], methods=["GET"], paths=["/api/*"])
        first.authorization("deny-debug", action="DENY").allow(
            namespaces=["debug"], paths=["/admin"])
    if draw(st.booleans()):
        mesh.mtls(draw(st.sampled_from(["STRICT", "PERMISSIVE"])), name="namespace-wide")
    return mesh


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes())
def test_model_yaml_import_model(mesh: Mesh) -> None:
    spec = mesh.build()
    result = to_model(load_text(render(spec), "rendered.yaml"))
    assert result.warnings == (), [str(w) for w in result.warnings]
    assert result.spec.raw == []
    assert canonical(result.spec) == canonical(spec)
    program = run_program(to_python(result.spec, notes=result.notes))
    assert canonical(program) == canonical(spec)
    assert differences(compile_mesh(spec), compile_mesh(program)) == []


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=6),
              st.sampled_from(["v1", "reviews", "STRICT", "HTTP", "10s", "*"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(
                                ["host", "hosts", "http", "route", "destination", "subset",
                                 "weight", "port", "number", "match", "uri", "prefix",
                                 "name", "labels", "subsets", "trafficPolicy", "servers",
                                 "selector", "matchLabels", "rules", "from", "source",
                                 "principals", "mtls", "mode", "ports", "x"]),
                                inner, max_size=4)),
    max_leaves=25)

KINDS = [("networking.istio.io/v1", "VirtualService"),
         ("networking.istio.io/v1beta1", "DestinationRule"),
         ("networking.istio.io/v1alpha3", "Gateway"),
         ("networking.istio.io/v1alpha3", "EnvoyFilter"),
         ("security.istio.io/v1", "PeerAuthentication"),
         ("security.istio.io/v1beta1", "AuthorizationPolicy"),
         ("v1", "Service"), ("v1", "Namespace"), ("v1", "ServiceAccount"),
         ("apps/v1", "Deployment")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(["a", "reviews"]),
                          st.sampled_from([None, "default", "shop"]), json_like),
                min_size=1, max_size=4))
def test_malformed_objects_are_input_errors_or_import_exactly(
        objects: list[tuple[tuple[str, str], str, str | None, Any]]) -> None:
    documents = []
    for (api, kind), name, namespace, spec in objects:
        meta: dict[str, Any] = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        manifest = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
        documents.append(Document(manifest=manifest, file="fuzz.yaml", line=1))
    try:
        import_documents(documents)  # verifies that the program renders the input
    except InputError:
        pass
    except ImporterError as exc:  # anything else is a bug of the importer
        raise AssertionError(f"not an input error: {exc}") from exc


def _corpus_documents() -> list[Document]:
    from tests.unit.importer.support import CORPUS, SEED

    return [d for path in [SEED, *sorted(CORPUS.glob("*.yaml"))]
            for d in load_text(path.read_text(), str(path))]


CORPUS_DOCUMENTS = _corpus_documents()


@st.composite
def mutated(draw: st.DrawFn) -> Document:
    """A real object with one part replaced by something else."""
    doc = draw(st.sampled_from(CORPUS_DOCUMENTS))
    manifest = json.loads(json.dumps(doc.manifest))
    node: Any = manifest
    path: list[Any] = []
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 4)) > 0:
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                   else list(range(len(node)))))
        if key in ("apiVersion", "kind") and not path:
            break
        path.append(key)
        node = node[key]
    if not path:
        return doc
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(json_like)
    return Document(manifest=manifest, file=doc.file, line=doc.line, lines=doc.lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=3))
def test_mutated_real_objects_are_input_errors_or_import_exactly(
        documents: list[Document]) -> None:
    try:
        import_documents(documents)
    except InputError:
        pass
    except ImporterError as exc:
        raise AssertionError(f"not an input error: {exc}") from exc
