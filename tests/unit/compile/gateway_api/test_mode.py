"""Data-plane mode per namespace: ambient where declared, sidecar everywhere else."""

from __future__ import annotations

import pytest

from meshdsl import Mesh, SuccessRate
from meshdsl.compile import render
from meshdsl.model.spec import MeshSpec
from tests.conftest import EXAMPLES


def test_sidecar_is_the_default_and_its_output_is_unchanged(bookinfo: MeshSpec) -> None:
    assert bookinfo.data_plane.default == "sidecar" and not bookinfo.data_plane.any_ambient
    assert render(bookinfo) == (EXAMPLES / "bookinfo/rendered.yaml").read_text()


def test_mode_per_namespace_and_mesh_default() -> None:
    mesh = Mesh("m", mode="ambient")
    mesh.namespace("classic", mode="sidecar")
    mesh.namespace("shop")
    mesh.namespace("l4", mode="ambient", waypoint=None)
    dp = mesh.build().data_plane
    assert [dp.mode_of(n) for n in ("default", "classic", "shop", "l4")] == [
        "ambient", "sidecar", "ambient", "ambient"]
    assert [dp.waypoint_of(n) for n in ("default", "classic", "shop", "l4")] == [
        "waypoint", None, "waypoint", None]


def test_an_ambient_namespace_gets_no_injection_label_and_the_ambient_labels() -> None:
    mesh = Mesh("m")
    mesh.namespace("side")
    mesh.namespace("amb", mode="ambient", waypoint="wp")
    spec = mesh.build()
    labels = {ns.name: ns.labels for ns in spec.namespaces}
    assert labels == {"side": {"istio-injection": "enabled"}, "amb": {}}
    text = render(spec)
    assert "istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: wp" in text


def test_an_unknown_mode_is_refused_at_the_users_line() -> None:
    with pytest.raises(ValueError, match="unknown data-plane mode 'ambiant'"):
        Mesh("m").namespace("x", mode="ambiant")
    with pytest.raises(ValueError, match="use one of sidecar, ambient"):
        Mesh("m", mode="istio")


def test_canaries_in_ambient_namespaces_are_judged_on_the_waypoint() -> None:
    from reconciler.delivery.queries import metric_queries

    mesh = Mesh("m")
    for ns, mode in (("amb", "ambient"), ("side", "sidecar")):
        svc = mesh.namespace(ns, mode=mode).service("r", port=80, versions=["v1", "v2"])
        svc.route(to=svc.v1)
        svc.canary(target="v2", steps=[50, 100], checks=[SuccessRate(99)])
    plans = {p.namespace: p for p in mesh.build().canaries}
    assert (plans["amb"].reporter, plans["side"].reporter) == ("waypoint", "destination")
    for ns, reporter in (("amb", "waypoint"), ("side", "destination")):
        queries = metric_queries(plans[ns])
        assert queries and all(f'reporter="{reporter}"' in q.promql for q in queries)
