"""Helpers shared by the importer tests: the corpus, the seed, and running programs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from meshdsl.compile.manifest import Manifest
from meshdsl.model import Mesh, To
from meshdsl.model.spec import MeshSpec
from tests.conftest import REPO

CORPUS = Path(__file__).parent / "corpus"
SEED = REPO / "tests" / "unit" / "compile" / "golden" / "seed.yaml"
FRAGMENT = REPO / "tests" / "unit" / "compile" / "golden" / "circuit-breaker-fragment.yaml"


def yaml_objects(path: Path) -> list[Manifest]:
    """The objects of a YAML file as plain ``yaml.safe_load`` reads them, as the API
    server receives them (JSON: string keys), ``kind: List`` flattened."""
    out: list[Manifest] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        doc = json.loads(json.dumps(doc))
        out += doc["items"] if doc.get("kind") == "List" else [doc]
    return out


def canonical(spec: MeshSpec) -> dict[str, Any]:
    """A spec with every list of objects in a stable order: programs may declare objects
    (and a service its Deployments) in another order than the YAML listed them, which
    does not change the mesh; the order of routes, subsets and rules is kept."""
    data = spec.model_dump(mode="json")
    for svc in data["services"]:  # Deployments render (and so import) sorted by name
        svc["workloads"].sort(key=lambda w: w["version"])
    for key, value in data.items():
        if isinstance(value, list):
            data[key] = sorted(json.dumps(v, sort_keys=True) for v in value)
    return data


# An ambient namespace as hand-written Gateway API YAML: the Namespace ``shop`` (with a
# waypoint) and its Service ``web``; ``SHOP_WAYPOINT`` is the waypoint Gateway it names.
AMBIENT_SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {istio.io/ingress-use-waypoint: "true"}}
spec:
  ports: [{port: 80, name: http, protocol: TCP}]
  selector: {app: web}
"""
SHOP_WAYPOINT = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
"""


def ambient_shop(name: str = "shop", suffix: str = "", *, shapes: bool = True) -> Mesh:
    """An ambient ``shop`` (web and api, with a waypoint) and an ``edge`` namespace without
    one, holding the ingress Gateway ``front``. With ``shapes`` also what the Gateway API
    import reads typed: web's policy for api, an https redirect, a DENY policy on the
    Gateway, and web's routes with a hostname at the Gateway and in the mesh. ``suffix``
    makes the namespaces and the mesh unique (tests sharing one API server)."""
    tail = f"-{suffix}" if suffix else ""
    mesh = Mesh(f"{name}{tail}")
    shop = mesh.namespace(f"shop{tail}", mode="ambient")
    edge = mesh.namespace(f"edge{tail}", mode="ambient", waypoint=None)
    web = shop.service("web", port=80)
    web.deploy("v1", image="example.org/web:1")
    api = shop.service("api", port=8080)
    api.deploy("v1", image="example.org/api:1")
    if not shapes:
        edge.gateway("front").http("shop.example.com", "web.example.com")
        return mesh
    web.allow(api, methods=["GET"])
    gw = edge.gateway("front").http("shop.example.com", "web.example.com",
                                    https_redirect=True)
    gw.authorization(action="DENY").rule(to=To(paths=["/internal*"]))
    shop.routes("web", hosts=["web", "web.example.com"], gateways=["mesh", gw]).route(to=web)
    return mesh
