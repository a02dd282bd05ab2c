"""`meshctl import` and `meshctl analyze`: end to end as a user runs them (a real
subprocess), the rest in process with typer's runner (a subprocess costs seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner, Result

from meshdsl.compile.compare import differences
from reconciler.cli import _register, app
from tests.conftest import REPO
from tests.unit.importer.support import SEED, yaml_objects
from tests.unit.importer.test_live import LIVE

MESHCTL = [sys.executable, "-c", "from reconciler.cli import main; main()"]

BAD_SUBSET = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""


def meshctl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHCTL, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def run(*args: str, stdin: str | None = None) -> Result:
    _register()
    return CliRunner().invoke(app, list(args), input=stdin)


def test_import_writes_a_program_that_renders_the_input(tmp_path: Path) -> None:
    out = tmp_path / "mesh.py"
    result = meshctl("import", str(SEED), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "imported 22 object(s): 22 in the DSL, 0 carried through unchanged" in result.stderr
    assert f"{SEED}:440: warning EnvoyFilter bookinfo/filter-ratelimit" in result.stderr
    rendered = meshctl("render", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert differences(yaml_objects(SEED), list(yaml.safe_load_all(rendered.stdout))) == []
    assert meshctl("validate", str(out)).returncode == 0


def test_import_to_stdout_and_from_stdin() -> None:
    result = run("import", "-", "--name", "shop", "-n", "shop", stdin=BAD_SUBSET)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith('"""Imported by meshctl import from -.')
    assert 'mesh = Mesh("shop", namespace="shop")' in result.stdout
    assert 'reviews.route(to=reviews.subset("v9"))' in result.stdout


def test_what_the_dsl_cannot_say_is_warned_per_field_and_carried(tmp_path: Path) -> None:
    path = tmp_path / "dr.yaml"
    path.write_text("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                    "metadata: {name: users}\nspec:\n  host: users\n  trafficPolicy:\n"
                    "    outlierDetection:\n      consecutive5xxErrors: 5\n"
                    "      minRequestVolume: 5\n")
    result = run("import", str(path))
    assert result.exit_code == 0, result.stderr
    assert (f"{path}:9: warning DestinationRule default/users "
            "spec.trafficPolicy.outlierDetection.minRequestVolume") in result.stderr
    assert "mesh.raw(" in result.stdout and '"minRequestVolume": 5' in result.stdout


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "mesh.py"
    out.write_text("# the user's previous program\n")
    cases = {
        "broken.yaml": ("kind: A\nmetadata:\n  name: a\n spec: [\n", ":4: invalid YAML"),
        "unknown.yaml": ("apiVersion: networking.istio.io/v1\nkind: VirtualServce\n"
                         "metadata: {name: a}\n", ":2: unknown kind 'VirtualServce'"),
        "types.yaml": (BAD_SUBSET.replace("subset: v9}", "subset: v9}\n      weight: '100'"),
                       ":9: VirtualService default/reviews spec.http[0].route[0].weight"),
    }
    for name, (text, words) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = run("import", str(path), "-o", str(out))
        assert result.exit_code == 2, result.stderr
        assert f"error: {path}{words}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert out.read_text() == "# the user's previous program\n"
        assert run("analyze", str(path)).exit_code == 2
    assert run("import", str(tmp_path / "missing.yaml")).exit_code == 2


def test_analyze_text_json_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "istio.yaml"
    path.write_text(BAD_SUBSET)
    text = run("analyze", str(path))
    assert text.exit_code == 1
    assert f"{path}:8: error MD101 (IST0101) VirtualService default/reviews" in text.stderr
    assert "1 error(s), 0 warning(s)" in text.stderr
    as_json = run("analyze", str(path), "-o", "json")
    assert as_json.exit_code == 1
    (finding,) = json.loads(as_json.stdout)["findings"]
    assert finding == {**finding, "code": "MD101", "istio_code": "IST0101", "line": 8,
                       "file": str(path), "slug": "subset-not-defined"}
    as_yaml = run("analyze", str(path), "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["findings"][0]["code"] == "MD101"
    warned = run("analyze", str(REPO / "tests/unit/analyzers/corpus/public-bookinfo-googleapis.yaml"))
    assert warned.exit_code == 0 and "warning MD145 (IST0129)" in warned.stderr


def test_import_of_a_list_as_kubectl_get_prints_it(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    result = run("import", str(path))
    assert result.exit_code == 0, result.output
    assert 'ratings.deploy("v1", image="istio/examples-bookinfo-ratings-v1:1.16.2")' in \
        result.stdout
    assert "\nmesh.raw(" not in result.stdout
    assert "imported 4 object(s): 4 in the DSL" in result.output
    assert "0 warning(s)" in result.output
