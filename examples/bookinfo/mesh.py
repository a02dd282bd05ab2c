"""Bookinfo and the `users` examples from the Istio guide, as one meshdsl program.

Every Istio and Kubernetes resource of the guide is declared here; `meshctl render`
produces YAML semantically equal to it (tests/unit/compile/test_seed_golden.py proves it).
`meshctl up examples/bookinfo/mesh.py` runs it on this machine: every version of every
service is the tiny demo app (examples/apps/demo_app.py) behind its own Envoy sidecar,
productpage calls reviews and reviews v2/v3 call ratings, as in Bookinfo.
"""

import sys
from pathlib import Path

from meshdsl import (
    ConnectionPool,
    ConsistentHash,
    Header,
    HttpCookie,
    HttpPool,
    LatencyP99,
    LoadBalancer,
    Mesh,
    OutlierDetection,
    Retries,
    SuccessRate,
    TcpPool,
    TrafficPolicy,
    Uri,
    Version,
)

mesh = Mesh("bookinfo")  # the `users` examples live in the default namespace

DEMO_APP = str(Path(__file__).resolve().parent.parent / "apps" / "demo_app.py")


def demo_app(*calls: str) -> list[str]:
    """The local stand-in for a service version (`{service}`, `{version}` and `{port}` are
    filled in by `meshctl up`); each of `calls` is requested through the mesh per request."""
    command = [sys.executable, DEMO_APP, "--name", "{service}", "--version", "{version}",
               "--port", "{port}"]
    for call in calls:
        command += ["--call", call]
    return command


# --- users: path and header routing, a 90/10 canary, timeouts and retries ------------
users = mesh.service(
    "users",
    port=8080,
    explicit_port=True,  # every destination names port 8080, as in the guide
    versions=[
        Version("v1", traffic_policy=TrafficPolicy(
            connection_pool=ConnectionPool(http=HttpPool(http1_max_pending_requests=50)))),
        "v2",
        "v3",
    ],
)
users.route(match=Uri(prefix="/users/admin"), to={users.v2: 100})
users.route(match=Header("user-type", exact="premium"), to={users.v3: 100})
users.route(to={users.v1: 90, users.v2: 10}, timeout="10s",
            retries=Retries(attempts=3, per_try_timeout="2s"))
users.policy(
    connection_pool=ConnectionPool(
        tcp=TcpPool(max_connections=100),
        http=HttpPool(http1_max_pending_requests=100, http2_max_requests=1000,
                      max_requests_per_connection=2),
    ),
    load_balancer=LoadBalancer(simple="LEAST_REQUEST"),
    outlier_detection=OutlierDetection(consecutive_5xx_errors=5, interval="30s",
                                       base_ejection_time="30s", max_ejection_percent=50),
)

orders = mesh.service("orders", port=8080, explicit_port=True)

# --- frontend: day one of a gradual rollout, 95/5 ------------------------------------
frontend = mesh.service("frontend", versions=["v1", "v2"])
frontend.route(to={frontend.v1: 95, frontend.v2: 5})
frontend.canary(target="v2", stable="v1", steps=[5, 10, 50, 100], interval="1m",
                checks=[SuccessRate(min=99), LatencyP99(max_ms=500)])

# --- the API gateway: HTTP and HTTPS for api.example.com -----------------------------
main_gateway = mesh.gateway("main-gateway", selector={"istio": "ingressgateway"})
main_gateway.http("api.example.com")
main_gateway.https("api.example.com", credential="api-cert")
api = main_gateway.routes("api-routes", hosts=["api.example.com"])
api.route(match=Uri(prefix="/users/"), to=users)
api.route(match=Uri(prefix="/orders/"), to=orders)

# --- security: strict mTLS in the namespace, and who may call users ------------------
mesh.mtls("STRICT")
users_authz = users.authorization("users-authz", workload=False)
users_authz.allow(orders, methods=["GET"], paths=["/users/*"])
users_authz.allow(namespaces=["default"], methods=["POST", "PUT"], paths=["/users/*"])

# --- sticky sessions and keep-alive tuning -------------------------------------------
my_service = mesh.service("my-service")
my_service.policy(
    load_balancer=LoadBalancer(consistent_hash=ConsistentHash(
        http_cookie=HttpCookie(name="session", ttl="3600s"))),
    connection_pool=ConnectionPool(http=HttpPool(http1_max_pending_requests=1000,
                                                 max_requests_per_connection=2)),
)

# --- Bookinfo ------------------------------------------------------------------------
bookinfo = mesh.namespace("bookinfo", injection=True)

productpage = bookinfo.service("productpage", port=9080)
productpage.deploy("v1", image="istio/examples-bookinfo-productpage-v1:1.16.2")

reviews = bookinfo.service("reviews", port=9080, versions=["v1", "v2", "v3"])
reviews.deploy("v1", image="istio/examples-bookinfo-reviews-v1:1.16.2")
reviews.deploy("v2", image="istio/examples-bookinfo-reviews-v2:1.16.2")
reviews.route(to={reviews.v1: 100})
reviews.rate_limit(max_tokens=100, tokens_per_fill=100, fill_interval="1s",
                   name="filter-ratelimit")

ratings = bookinfo.service("ratings", port=9080)
ratings.deploy("v1", image="istio/examples-bookinfo-ratings-v1:1.16.2")

bookinfo_gateway = bookinfo.gateway("bookinfo-gateway")
bookinfo_gateway.http("*")
bookinfo_gateway.routes("productpage", hosts=["*"]).route(
    match=[Uri(prefix="/productpage"), Uri(prefix="/static"),
           Uri(exact="/login"), Uri(exact="/logout")],
    to=productpage.on(9080),
)

# --- meshctl up: how each version runs locally (not part of the rendered YAML) --------
for service in (users, orders, frontend, my_service, ratings):
    service.run_locally(command=demo_app())  # every declared version (v1 if none)
productpage.run_locally("v1", command=demo_app("reviews/reviews/0"))
reviews.run_locally("v1", command=demo_app())
reviews.run_locally("v2", command=demo_app("ratings/ratings/0"))
reviews.run_locally("v3", command=demo_app("ratings/ratings/0"))
