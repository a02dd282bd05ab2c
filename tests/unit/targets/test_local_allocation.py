"""Placement of the local mesh across updates (ports stay put), its port range, and what
a workload's app is told (command placeholders, environment)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from meshdsl.compile.envoy import Address, WaypointKey, WorkloadKey
from meshdsl.model import Mesh
from meshdsl.model.spec import MeshSpec
from reconciler.targets.envoy.allocation import ephemeral_range, extend, listener_ports
from reconciler.targets.envoy.apps import app_environment, expand

KEY = WorkloadKey("shop", "reviews", "v1")


def counter(start: int = 20000) -> Iterator[int]:
    return itertools.count(start)


def ports_from(source: Iterator[int]):  # type: ignore[no-untyped-def]
    return lambda n: [next(source) for _ in range(n)]


def shop(*, ratings: bool = False, address: str | None = None) -> MeshSpec:
    mesh = Mesh("t", namespace="shop")
    reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
    reviews.run_locally(command=["app", "{port}"])
    if address:
        reviews.run_locally("v2", address=address)
    if ratings:
        mesh.service("ratings", port=[9080, 9090]).run_locally(command=["app"])
    gateway = mesh.gateway("gw")
    gateway.http("*")
    gateway.routes("r", hosts=["*"]).route(to=reviews)
    return mesh.build()


def test_existing_workloads_keep_their_ports_and_new_ones_get_fresh_ports() -> None:
    source = counter()
    first = extend(shop(), ports=ports_from(source))
    second = extend(shop(ratings=True), first, previous_spec=shop(), ports=ports_from(source))
    for key, where in first.sidecars.items():
        again = second.sidecars[key]
        assert (again.app, again.inbound) == (where.app, where.inbound)
        assert {k: v for k, v in again.outbound.items() if k in where.outbound} == where.outbound
        assert set(again.outbound) - set(where.outbound) == {("shop", "ratings", 9080),
                                                            ("shop", "ratings", 9090)}
    assert second.gateways == first.gateways
    every = [p for w in second.sidecars.values()
             for p in (w.app.port, w.inbound.port, *w.outbound.values())]
    every += [p for g in second.gateways.values() for p in g.ports.values()]
    assert len(every) == len(set(every))  # no port used twice


def test_waypoint_listeners_keep_their_ports_and_a_new_subset_gets_one() -> None:
    def ambient(versions: list[str]) -> MeshSpec:
        mesh = Mesh("t", namespace="shop")
        mesh.namespace("shop", mode="ambient")
        mesh.service("reviews", port=9080, versions=versions).run_locally(command=["app"])
        return mesh.build()

    source = counter()
    first = extend(ambient(["v1"]), ports=ports_from(source))
    second = extend(ambient(["v1", "v2"]), first, previous_spec=ambient(["v1"]),
                    ports=ports_from(source))
    key = WaypointKey("shop", "waypoint")
    assert set(first.waypoints) == {key}
    before, after = first.waypoints[key].listeners, second.waypoints[key].listeners
    assert set(before) == {("reviews", 9080, ""), ("reviews", 9080, "v1")}
    assert {t: p for t, p in after.items() if t in before} == before
    assert set(after) - set(before) == {("reviews", 9080, "v2")}
    every = [p for w in second.sidecars.values()
             for p in (w.app.port, w.inbound.port, *w.outbound.values())]
    every += list(after.values())
    assert len(every) == len(set(every))


def test_a_fixed_app_address_is_used_and_a_dropped_one_is_replaced() -> None:
    source = counter()
    fixed = extend(shop(address="127.0.0.1:7000"), ports=ports_from(source))
    v2 = WorkloadKey("shop", "reviews", "v2")
    assert fixed.sidecars[v2].app == Address(7000)
    moved = extend(shop(), fixed, previous_spec=shop(address="127.0.0.1:7000"),
                   ports=ports_from(source))
    assert moved.sidecars[v2].app != Address(7000)
    assert moved.sidecars[v2].inbound == fixed.sidecars[v2].inbound


def test_gateway_port_fixes_the_ingress_gateways_first_port() -> None:
    placement = extend(shop(), gateway_port=8080, ports=ports_from(counter()))
    assert placement.gateways["istio-ingressgateway"].ports == {80: 8080}


def test_without_credentials_there_is_no_pki() -> None:
    placement = extend(shop(), ports=ports_from(counter()))
    assert placement.ca_cert is None and not placement.identities


def test_listener_ports_avoid_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = listener_ports(50)
    assert len(set(ports)) == 50
    assert all(not low <= p <= high and p >= 10000 for p in ports)


def test_expand_replaces_only_known_placeholders() -> None:
    values = {"port": "1234", "host": "127.0.0.1", "service": "reviews", "version": "v2",
              "namespace": "shop"}
    assert expand("--listen={host}:{port}", values) == "--listen=127.0.0.1:1234"
    assert expand('{"json": {port}, "x": {other}}', values) == '{"json": 1234, "x": {other}}'


def test_app_environment_points_at_its_own_sidecar() -> None:
    placement = extend(shop(ratings=True), ports=ports_from(counter()))
    where = placement.sidecars[KEY]
    env = app_environment(KEY, where, {("shop", "ratings", 9080): "http",
                                       ("shop", "ratings", 9090): "grpc-api"})
    assert env["PORT"] == str(where.app.port)
    assert (env["MESH_SERVICE"], env["MESH_VERSION"], env["MESH_NAMESPACE"]) == (
        "reviews", "v1", "shop")
    assert env["RATINGS_SERVICE_HOST"] == "127.0.0.1"
    assert env["RATINGS_SERVICE_PORT"] == str(where.outbound[("shop", "ratings", 9080)])
    assert env["RATINGS_SERVICE_PORT_GRPC_API"] == str(where.outbound[("shop", "ratings", 9090)])
