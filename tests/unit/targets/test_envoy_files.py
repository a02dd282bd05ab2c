"""The pure file-format helpers of the local Envoy target."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.targets.envoy.files import (
    CLUSTER_TYPE,
    LISTENER_TYPE,
    bind_rds,
    bootstrap,
    discovery_response,
    inline_rds,
    rds_file_name,
    referenced_route_names,
    render,
    typed,
    write_atomic,
)
from reconciler.testing.envoy_config import http_listener, route_table, weighted_route


def test_discovery_response_types_every_resource_and_keeps_input_intact() -> None:
    cluster = {"name": "v1", "type": "STATIC"}
    doc = discovery_response(CLUSTER_TYPE, [cluster], "7")
    assert doc == {"version_info": "7", "resources": [{"@type": CLUSTER_TYPE, **cluster}]}
    assert "@type" not in cluster


def test_typed_refuses_a_resource_of_another_type() -> None:
    with pytest.raises(ValueError, match="expected"):
        typed(LISTENER_TYPE, {"name": "c", "@type": CLUSTER_TYPE})


def test_render_is_deterministic_yaml() -> None:
    doc = discovery_response(CLUSTER_TYPE, [{"name": "b", "type": "STATIC"}], "1")
    assert render(doc) == render(dict(reversed(list(doc.items()))))
    assert yaml.safe_load(render(doc)) == doc


def test_write_atomic_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "lds.yaml"
    write_atomic(target, "a")
    write_atomic(target, "b")
    assert target.read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["lds.yaml"]


def test_rds_binding_and_inlining() -> None:
    listener = http_listener("in", 1000, route_config_name="reviews.default:9080")
    assert referenced_route_names([listener]) == {"reviews.default:9080"}
    [bound] = bind_rds([listener], lambda name: Path("/rds") / rds_file_name(name))
    source = bound["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["config_source"]
    assert source["path_config_source"]["path"].startswith("/rds/reviews.default_9080-")
    assert "config_source" not in listener["filter_chains"][0]["filters"][0]["typed_config"]["rds"]

    table = route_table("reviews.default:9080", [weighted_route({"v1": 1})])
    [inlined] = inline_rds([listener], [table])
    hcm = inlined["filter_chains"][0]["filters"][0]["typed_config"]
    assert "rds" not in hcm and hcm["route_config"]["name"] == "reviews.default:9080"
    with pytest.raises(ValueError, match="not among the routes"):
        inline_rds([listener], [])


def test_rds_file_names_are_distinct_for_names_that_sanitise_alike() -> None:
    assert rds_file_name("a:b") != rds_file_name("a/b")


def test_bootstrap_flushes_stats_every_second(tmp_path: Path) -> None:
    """Histograms reach ``/stats/prometheus`` only at a stats flush: Envoy's default 5 s
    would keep a canary's latency check without data for most of a short interval."""
    config = bootstrap(
        node_id="n",
        node_cluster="c",
        lds_path=tmp_path / "lds.yaml",
        cds_path=tmp_path / "cds.yaml",
    )
    assert config["stats_flush_interval"] == "1s"
    assert (
        bootstrap(
            node_id="n",
            node_cluster="c",
            lds_path=tmp_path / "lds.yaml",
            cds_path=tmp_path / "cds.yaml",
            stats_flush_interval="250ms",
        )["stats_flush_interval"]
        == "250ms"
    )
