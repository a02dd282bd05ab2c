"""MeshSpec → program: readable DSL code that builds exactly the spec again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from meshdsl import Header, Mesh, Server, ServerPort, Uri
from meshdsl.importer import NotExpressible, import_files, run_program, to_python
from meshdsl.model.routing import Destination
from meshdsl.model.spec import MeshSpec
from reconciler.runtime.loader import load
from tests.conftest import REPO
from tests.unit.importer.support import CORPUS, SEED, canonical

RUFF = REPO / ".venv" / "bin" / "ruff"
RUFF_RULES = ["--isolated", "--line-length", "100", "--target-version", "py311"]


def round_trip(mesh: Mesh) -> tuple[str, MeshSpec]:
    spec = mesh.build()
    source = to_python(spec)
    assert canonical(run_program(source)) == canonical(spec), source
    return source, spec


def test_the_seed_reads_like_the_dsl() -> None:
    source = import_files([SEED]).source
    for line in [
        'users.route(match=Uri(prefix="/users/admin"), to={users.v2: 100})',
        'users.route(match=Header("user-type", exact="premium"), to={users.v3: 100})',
        "    to={users.v1: 90, users.v2: 10},",
        '    retries=Retries(attempts=3, per_try_timeout="2s"),',
        'frontend.route(to={frontend.v1: 95, frontend.v2: 5})',
        'main_gateway.https("api.example.com", credential="api-cert")',
        'api_routes = main_gateway.routes("api-routes", hosts=["api.example.com"])',
        'users_authz.allow(orders, methods=["GET"], paths=["/users/*"])',
        'reviews.rate_limit(max_tokens=100, name="filter-ratelimit")',
        'mesh.mtls("STRICT")',
        'bookinfo = mesh.namespace("bookinfo")',
        'reviews = bookinfo.service("reviews", port=9080, versions=["v1", "v2", "v3"])',
        'reviews.deploy("v1", image="istio/examples-bookinfo-reviews-v1:1.16.2")',
        'frontend = mesh.service("frontend", versions=["v1", "v2"])',
    ]:
        assert line in source.splitlines(), line
    assert "mesh.raw" not in source and "Destination(" not in source


def test_the_bookinfo_example_is_written_back_exactly(bookinfo: MeshSpec) -> None:
    """Canaries and local runs too, though YAML never carries them."""
    source = to_python(bookinfo)
    assert canonical(run_program(source)) == canonical(bookinfo)
    assert "frontend.canary(" in source and "SuccessRate(min=99.0)" in source


def test_programs_load_with_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "mesh.py"
    path.write_text(import_files([SEED]).source)
    assert load(str(path)).spec.name == "seed"


@pytest.mark.skipif(not RUFF.exists() and shutil.which("ruff") is None, reason="no ruff")
def test_generated_programs_are_ruff_formatted_and_clean(tmp_path: Path) -> None:
    ruff = str(RUFF) if RUFF.exists() else "ruff"
    files = []
    for i, path in enumerate([SEED, *sorted(CORPUS.glob("*.yaml"))]):
        target = tmp_path / f"mesh_{i}.py"
        target.write_text(import_files([path]).source)
        files.append(str(target))
    formatted = subprocess.run([ruff, "format", "--check", *RUFF_RULES, *files],
                               capture_output=True, text=True, check=False)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    checked = subprocess.run([ruff, "check", *RUFF_RULES, "--select",
                              "E,F,W,I,B,UP,SIM,RUF", "--ignore", "E501", *files],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def test_short_forms_fall_back_to_exact_ones() -> None:
    mesh = Mesh("m")
    web = mesh.service("web", port=80, versions=["v1", "name", "v2-beta"])
    web.route(match=Header("x-a", exact="1") & Uri(prefix="/a"), to=web.v1)
    web.route(match=Uri(prefix="/b"), to={web.subset("name"): 50, web.subset("v2-beta"): 50})
    web.route(to=[Destination(host="web", subset="v1", weight=60),
                  Destination(host="web", subset="v1", weight=40)])
    web.route(match=Uri(prefix="/c"), to="web.default.svc.cluster.local")
    web.route(match=Uri(prefix="/d"), to=Destination(host="web.default", subset="v1"))
    source, _ = round_trip(mesh)
    assert 'to={web.subset("name"): 50, web.subset("v2-beta"): 50}' in source
    assert 'Header("x-a", exact="1") & Uri(prefix="/a")' in source or \
        'Uri(prefix="/a") & Header("x-a", exact="1")' in source
    assert 'Destination(host="web", subset="v1", weight=60)' in source
    assert 'to=Destination(host="web.default", subset="v1")' in source


def test_matches_the_helpers_cannot_write_use_the_model() -> None:
    from meshdsl import Match, StringMatch

    mesh = Mesh("m")
    web = mesh.service("web")
    web.route(match=Match(headers={"X-Upper": StringMatch(exact="1")}, name="upper"), to=web)
    web.route(match=Match(scheme=StringMatch(exact="https")), to=web)
    source, _ = round_trip(mesh)
    assert "Match(name=\"upper\", headers={\"X-Upper\": StringMatch(exact=\"1\")})" in source


def test_names_that_clash_get_their_own_identifiers() -> None:
    mesh = Mesh("m")
    mesh.service("mesh")
    mesh.service("class")
    team = mesh.namespace("team")
    team.service("mesh")
    team.service("3d-render")
    source, _ = round_trip(mesh)
    assert "mesh_default = mesh.service(\"mesh\")" in source
    assert "class_ = " not in source and "n_3d_render = team.service" in source


def test_what_no_builder_writes_is_refused() -> None:
    gateway = Mesh("m")
    gw = gateway.gateway("gw").http("*")
    gw.servers[0] = Server(port=ServerPort(number=80, name="http", protocol="HTTP"),
                           hosts=["*"], name="named")
    custom = Mesh("m").build()
    custom = custom.model_copy(update={"services": [
        Mesh("m").service("web").build().model_copy(update={"app_label": "k8s-app"})]})
    for spec in (gateway.build(), custom):
        with pytest.raises(NotExpressible):
            to_python(spec)
