"""`meshctl import --to ambient`: a verified classic import rewritten for ambient mode."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshdsl.importer import import_files, run_program
from meshdsl.importer.ambient import to_ambient
from tests.unit.cli.test_import_cli import meshctl
from tests.unit.importer.support import CORPUS, SEED

CLEAN = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  ports: [{port: 9080, name: http, protocol: TCP}]
  selector: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v2}, weight: 25}
"""


def test_a_clean_input_converts_and_renders_gateway_api(tmp_path: Path) -> None:
    source = tmp_path / "istio.yaml"
    source.write_text(CLEAN)
    out = tmp_path / "mesh.py"
    result = meshctl("import", str(source), "--to", "ambient", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert 'mode="ambient"' in out.read_text()
    rendered = meshctl("render", str(out))
    assert rendered.returncode == 0, rendered.stderr
    objects = {(d["kind"], d["metadata"]["name"]): d
               for d in yaml.safe_load_all(rendered.stdout) if d}
    assert not [k for k in objects if k[0] in ("VirtualService", "DestinationRule")]
    route = objects[("HTTPRoute", "reviews")]["spec"]
    assert route["rules"][-1]["backendRefs"] == [
        {"name": "reviews-v1", "port": 9080, "weight": 75},
        {"name": "reviews-v2", "port": 9080, "weight": 25}]
    assert ("Service", "reviews-v2") in objects


def test_input_without_services_has_blockers(tmp_path: Path) -> None:
    result = meshctl("import", str(CORPUS / "traffic-shifting.yaml"), "--to", "ambient")
    assert result.returncode == 1
    assert "backend 'reviews-v1' has no port" in result.stderr
    assert "HTTPRoute has no subsets (v1, v2)" in result.stderr


def test_what_has_no_ambient_form_exits_1_at_the_written_line(tmp_path: Path) -> None:
    out = tmp_path / "mesh.py"
    result = meshctl("import", str(SEED), "--to", "ambient", "-o", str(out))
    assert result.returncode == 1
    lines = out.read_text().splitlines()
    (finding,) = [line for line in result.stderr.splitlines() if "MD130 EnvoyFilter" in line]
    line = int(finding.split(":")[1])
    assert "rate_limit" in lines[line - 1]
    assert "error: the ambient program has errors" in result.stderr


def test_an_unknown_target_is_bad_input() -> None:
    result = meshctl("import", str(SEED), "--to", "cilium")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --to 'cilium': use sidecar or ambient"


def test_the_conversion_keeps_everything_but_the_mode() -> None:
    program = import_files([SEED])
    converted = to_ambient(program.result.spec, notes=program.result.notes)
    classic = run_program(program.source)
    assert converted.spec.data_plane.default == "ambient"
    assert [s.name for s in converted.spec.services] == [s.name for s in classic.services]
    assert len(converted.spec.virtual_services) == len(classic.virtual_services)
    assert all(p.reporter == "waypoint" for p in converted.spec.canaries)
