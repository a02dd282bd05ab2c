"""Every DSL feature compiles to the Istio field it stands for, and the result passes
Istio's CRD schemas (offline)."""

from __future__ import annotations

from typing import Any

from meshdsl import (
    Abort,
    Authority,
    Caller,
    ClientTls,
    ConnectionPool,
    ConsistentHash,
    Cors,
    Delay,
    Fault,
    From,
    Header,
    HeaderOps,
    Headers,
    HttpPool,
    L4Match,
    LoadBalancer,
    Match,
    Mesh,
    Method,
    OutlierDetection,
    Port,
    Query,
    Redirect,
    Retries,
    Rewrite,
    ServerTls,
    ServicePort,
    StringMatch,
    TcpPool,
    To,
    TrafficPolicy,
    Uri,
    Version,
    When,
    WithoutHeader,
)
from meshdsl.compile import compile_mesh
from meshdsl.validate import Severity, validate
from tests.unit.compile.test_schema import istio_schemas


def kitchen_sink() -> Mesh:
    mesh = Mesh("sink", mtls="STRICT")
    shop = mesh.namespace("shop")
    api = shop.service("api", port=8080, versions=[
        "v1", Version("v2", labels={"track": "canary"}, traffic_policy=TrafficPolicy(
            load_balancer=LoadBalancer(simple="RANDOM")))])
    web = shop.service("web", port=80, service_account="web-sa")
    db = shop.service("db", port=ServicePort(number=5432, name="tcp-postgres"),
                      versions=["primary", "replica"])
    api.route(name="by-header",
              match=Header("x-user", regex="^a.*") & Method("GET") & Query("debug", exact="1"),
              to=api.v2, headers=Headers(request=HeaderOps(set={"x-a": "1"}, add={"x-b": "2"},
                                                             remove=["x-c"]),
                                         response=HeaderOps(remove=["server"])))
    api.route(match=[Uri(regex="/v[0-9]+/.*", ignore_case=True), Authority(prefix="api.")],
              to=api.v1, rewrite=Rewrite(uri="/", authority="api.internal"))
    api.route(match=Caller(labels={"app": "web"}, namespace="shop") & Port(8080)
              & WithoutHeader("x-skip", exact="1"), to=api.v1,
              fault=Fault(delay=Delay(fixed="2s", percent=10),
                          abort=Abort(status=503, percent=5.5)))
    api.route(match=Match(gateways=["mesh"], uri=StringMatch(prefix="/old")),
              redirect=Redirect(uri="/new", authority="example.com", redirect_code=301))
    api.route(to={api.v1: 80, api.v2: 20}, timeout="3s", mirror=api.v2, mirror_percent=12.5,
              retries=Retries(attempts=2, per_try_timeout="1s", retry_on="5xx,reset"),
              cors=Cors(allow_origins=[StringMatch(exact="https://a.example.com")],
                        allow_methods=["GET"], allow_headers=["x-a"], expose_headers=["x-b"],
                        max_age="24h", allow_credentials=True))
    api.policy(connection_pool=ConnectionPool(
        tcp=TcpPool(max_connections=10, connect_timeout="1s"),
        http=HttpPool(http1_max_pending_requests=1, http2_max_requests=2,
                      max_requests_per_connection=3, max_retries=4, idle_timeout="30s")),
        load_balancer=LoadBalancer(consistent_hash=ConsistentHash(http_header_name="x-user")),
        outlier_detection=OutlierDetection(consecutive_5xx_errors=1,
                                           consecutive_gateway_errors=2, interval="1s",
                                           base_ejection_time="3m", max_ejection_percent=100,
                                           min_health_percent=0),
        tls=ClientTls(mode="ISTIO_MUTUAL"))
    db.tcp_route(port=5432, to={db.primary: 90, db.replica: 10})
    db.tcp_route(match=L4Match(source_labels={"app": "api"}), to=db.replica)
    db.policy(load_balancer=LoadBalancer(consistent_hash=ConsistentHash(use_source_ip=True)))
    gw = shop.gateway("edge", selector={"istio": "edge"})
    gw.http("shop.example.com", https_redirect=True)
    gw.https("shop.example.com", credential="shop-cert")
    gw.server(port=8443, name="mtls", protocol="HTTPS", hosts=["partner.example.com"],
              tls=ServerTls(mode="MUTUAL", credential_name="partner-ca"))
    gw.server(port=9443, name="tls", protocol="TLS", hosts=["pass.example.com"],
              tls=ServerTls(mode="PASSTHROUGH"))
    gw.routes("edge-web", hosts=["shop.example.com"]).route(to=web)
    shop.mtls("PERMISSIVE", ports={8080: "DISABLE"})
    api.mtls("STRICT", ports={9090: "PERMISSIVE"})
    api.allow(web, methods=["GET", "POST"], paths=["/api/*"], ports=[8080])
    deny = api.authorization("api-deny", action="DENY")
    deny.rule(from_=From(not_namespaces=["shop"], ip_blocks=["10.0.0.0/8"],
                         not_ip_blocks=["10.1.0.0/16"], not_principals=["x"]),
              to=To(not_paths=["/health"], hosts=["api"], not_methods=["OPTIONS"]),
              when=When(key="request.headers[x-env]", values=["prod"], not_values=["dev"]))
    shop.authorization("audit-all", action="AUDIT").rule(to=To(paths=["/admin/*"]))
    db.authorization().allow(api, ports=[5432])
    api.rate_limit(max_tokens=10, tokens_per_fill=5, fill_interval="1s")
    api.deploy("v1", image="api:1", replicas=2, env={"MODE": "a"})
    web.deploy("v1", image="web:1")
    api.canary(target="v2", steps=[10, 50, 100])
    return mesh


def by_name(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def test_kitchen_sink_is_clean_and_schema_valid() -> None:
    spec = kitchen_sink().build()
    assert [f for f in validate(spec) if f.severity is Severity.ERROR] == []
    manifests = compile_mesh(spec)
    for m in manifests:
        if "istio.io" in m["apiVersion"]:
            assert istio_schemas().errors(m) == [], (m["kind"], m["metadata"]["name"])


def test_http_route_fields() -> None:
    manifests = compile_mesh(kitchen_sink().build())
    http = by_name(manifests, "VirtualService", "api")["spec"]["http"]
    assert http[0]["name"] == "by-header"
    assert http[0]["match"] == [{"headers": {"x-user": {"regex": "^a.*"}},
                                 "method": {"exact": "GET"},
                                 "queryParams": {"debug": {"exact": "1"}}}]
    assert http[0]["headers"] == {"request": {"set": {"x-a": "1"}, "add": {"x-b": "2"},
                                              "remove": ["x-c"]},
                                  "response": {"remove": ["server"]}}
    assert http[1]["match"][0] == {"uri": {"regex": "/v[0-9]+/.*"}, "ignoreUriCase": True}
    assert http[1]["rewrite"] == {"uri": "/", "authority": "api.internal"}
    assert http[2]["match"][0]["sourceLabels"] == {"app": "web"}
    assert http[2]["match"][0]["sourceNamespace"] == "shop"
    assert http[2]["match"][0]["withoutHeaders"] == {"x-skip": {"exact": "1"}}
    assert http[2]["fault"] == {"delay": {"fixedDelay": "2s", "percentage": {"value": 10.0}},
                                "abort": {"httpStatus": 503, "percentage": {"value": 5.5}}}
    assert http[3]["redirect"] == {"uri": "/new", "authority": "example.com",
                                   "redirectCode": 301}
    assert "route" not in http[3]
    last = http[4]
    assert [(d["destination"]["subset"], d["weight"]) for d in last["route"]] == [
        ("v1", 80), ("v2", 20)]
    assert last["mirror"] == {"host": "api", "subset": "v2"}
    assert last["mirrorPercentage"] == {"value": 12.5}
    assert last["retries"] == {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx,reset"}
    assert last["corsPolicy"]["allowOrigins"] == [{"exact": "https://a.example.com"}]
    assert last["corsPolicy"]["maxAge"] == "24h"


def test_tcp_routes_and_policies() -> None:
    manifests = compile_mesh(kitchen_sink().build())
    tcp = by_name(manifests, "VirtualService", "db")["spec"]["tcp"]
    assert tcp[0] == {"match": [{"port": 5432}], "route": [
        {"destination": {"host": "db", "subset": "primary"}, "weight": 90},
        {"destination": {"host": "db", "subset": "replica"}, "weight": 10}]}
    dr = by_name(manifests, "DestinationRule", "api")["spec"]
    assert dr["trafficPolicy"]["connectionPool"] == {
        "tcp": {"maxConnections": 10, "connectTimeout": "1s"},
        "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 2,
                 "maxRequestsPerConnection": 3, "maxRetries": 4, "idleTimeout": "30s"}}
    assert dr["trafficPolicy"]["loadBalancer"] == {"consistentHash": {"httpHeaderName": "x-user"}}
    assert dr["trafficPolicy"]["outlierDetection"]["consecutiveGatewayErrors"] == 2
    assert dr["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert dr["subsets"][1] == {"name": "v2", "labels": {"track": "canary"},
                                "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}


def test_gateway_security_and_workloads() -> None:
    manifests = compile_mesh(kitchen_sink().build())
    servers = by_name(manifests, "Gateway", "edge")["spec"]["servers"]
    assert servers[0]["tls"] == {"httpsRedirect": True}
    assert servers[2]["tls"] == {"mode": "MUTUAL", "credentialName": "partner-ca"}
    assert servers[3]["tls"] == {"mode": "PASSTHROUGH"}
    mesh_pa = [m for m in manifests if m["kind"] == "PeerAuthentication"
               and m["metadata"]["namespace"] == "istio-system"]
    assert mesh_pa[0]["spec"] == {"mtls": {"mode": "STRICT"}}
    workload_pa = by_name(manifests, "PeerAuthentication", "api")["spec"]
    assert workload_pa == {"selector": {"matchLabels": {"app": "api"}},
                           "mtls": {"mode": "STRICT"},
                           "portLevelMtls": {"9090": {"mode": "PERMISSIVE"}}}
    allow = by_name(manifests, "AuthorizationPolicy", "api")["spec"]
    assert allow["selector"] == {"matchLabels": {"app": "api"}}
    assert allow["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/shop/sa/web-sa"]
    assert allow["rules"][0]["to"][0]["operation"]["ports"] == ["8080"]
    deny = by_name(manifests, "AuthorizationPolicy", "api-deny")["spec"]
    assert deny["action"] == "DENY"
    assert deny["rules"][0]["when"] == [{"key": "request.headers[x-env]", "values": ["prod"],
                                         "notValues": ["dev"]}]
    assert deny["rules"][0]["from"][0]["source"]["notIpBlocks"] == ["10.1.0.0/16"]
    ef = by_name(manifests, "EnvoyFilter", "api-ratelimit")["spec"]
    bucket = ef["configPatches"][0]["patch"]["value"]["typedConfig"]["value"]["token_bucket"]
    assert bucket == {"max_tokens": 10, "tokens_per_fill": 5, "fill_interval": "1s"}
    deployment = by_name(manifests, "Deployment", "api-v1")["spec"]
    assert deployment["replicas"] == 2
    assert deployment["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODE", "value": "a"}]
    sa = by_name(manifests, "ServiceAccount", "web-sa")
    assert sa["metadata"]["namespace"] == "shop"
    assert by_name(manifests, "Deployment", "web-v1")["spec"]["template"]["spec"][
        "serviceAccountName"] == "web-sa"


def test_weights_override_replaces_only_the_canary_route() -> None:
    spec = kitchen_sink().build()
    manifests = compile_mesh(spec, weights={("shop", "api"): {"v1": 95, "v2": 5}})
    http = by_name(manifests, "VirtualService", "api")["spec"]["http"]
    assert [(d["destination"]["subset"], d["weight"]) for d in http[4]["route"]] == [
        ("v1", 95), ("v2", 5)]
    assert http[0]["route"] == [{"destination": {"host": "api", "subset": "v2"}}]


def test_lookups_follow_model_copy() -> None:
    spec = kitchen_sink().build()
    assert spec.service("shop", "api") is not None
    moved = spec.model_copy(update={"services": [
        s.model_copy(update={"namespace": "other"}) for s in spec.services]})
    assert moved.service("shop", "api") is None
    assert moved.service("other", "api") is not None


def test_pods_carry_the_labels_their_subset_selects() -> None:
    mesh = Mesh("m")
    api = mesh.service("api", port=80, versions=[Version("v2", labels={"track": "canary"})])
    api.deploy("v2", image="api:2")
    (dep,) = [m for m in compile_mesh(mesh.build()) if m["kind"] == "Deployment"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app": "api", "version": "v2", "track": "canary"}
    assert dep["spec"]["selector"]["matchLabels"] == pod_labels
