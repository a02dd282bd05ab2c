"""Helpers shared by the importer tests: the corpus, the seed, and running programs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from meshdsl.compile.manifest import Manifest
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
