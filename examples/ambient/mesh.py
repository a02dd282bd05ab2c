"""Bookinfo on Istio's ambient data plane: the same DSL, compiled to the Gateway API.

`bookinfo` runs in ambient mode (ztunnel + a waypoint), so its routes become HTTPRoutes
attached to their Services, versions become Services (`reviews-v1`…), authorization
attaches to Services through `targetRefs`, and a policy keeps callers from skipping the
waypoint. The ingress Gateway lives in its own namespace (class `istio`), so the
namespace it routes into grants it access with a ReferenceGrant. `meshctl render
examples/ambient/mesh.py` shows it; `meshctl validate` says what would not carry over.
"""

from meshdsl import (
    ConnectionPool,
    Header,
    HeaderOps,
    Headers,
    HttpPool,
    LoadBalancer,
    Mesh,
    Method,
    OutlierDetection,
    Query,
    Redirect,
    Retries,
    Rewrite,
    ServicePort,
    SuccessRate,
    To,
    TrafficPolicy,
    Uri,
    Version,
)

mesh = Mesh("bookinfo-ambient")
bookinfo = mesh.namespace("bookinfo", mode="ambient")
edge = mesh.namespace("bookinfo-edge", mode="ambient", waypoint=None)

IMAGE = "docker.io/istio/examples-bookinfo-{}:1.20.2"

productpage = bookinfo.service("productpage", port=9080, service_account="bookinfo-productpage")
productpage.deploy("v1", image=IMAGE.format("productpage-v1"))

details = bookinfo.service("details", port=9080)
details.deploy("v1", image=IMAGE.format("details-v1"))
details.route(match=Method("GET"), to=details, timeout="1.5s",
              headers=Headers(request=HeaderOps(set={"x-served-by": "waypoint"}),
                              response=HeaderOps(remove=["x-envoy-upstream-service-time"])))
details.route(to=details)

reviews = bookinfo.service("reviews", port=9080, versions=[
    "v1", "v2", Version("v3", traffic_policy=TrafficPolicy(
        load_balancer=LoadBalancer(simple="LEAST_REQUEST")))])
for version in ("v1", "v2", "v3"):
    reviews.deploy(version, image=IMAGE.format(f"reviews-{version}"))
# the more specific match first: the Gateway API would prefer it anyway (MD137)
reviews.route(match=Query("preview", exact="v3") & Header("x-canary", prefix="yes"),
              to=reviews.v3, mirror=reviews.v1, mirror_percent=12.5)
reviews.route(match=Header("end-user", exact="jason"), to=reviews.v2)
reviews.route(to={reviews.v1: 90, reviews.v3: 10}, timeout="10s",
              retries=Retries(attempts=3, per_try_timeout="2s", retry_on="503"))
reviews.policy(
    connection_pool=ConnectionPool(http=HttpPool(http1_max_pending_requests=100)),
    outlier_detection=OutlierDetection(consecutive_5xx_errors=5, interval="30s",
                                       base_ejection_time="30s"),
)
reviews.canary(target="v2", stable="v1", steps=[10, 50, 100],
               checks=[SuccessRate(min=99)])

ratings = bookinfo.service("ratings", port=9080, versions=["v1", "v2"])
ratings.deploy("v1", image=IMAGE.format("ratings-v1"))
ratings.deploy("v2", image=IMAGE.format("ratings-v2"))
ratings.route(match=Uri(prefix="/ratings/v2"), rewrite=Rewrite(uri="/ratings"),
              to=ratings.v2)
ratings.route(match=Uri(exact="/health"), redirect=Redirect(uri="/ratings/health"))
ratings.route(to=ratings.v1)

mongodb = bookinfo.service("mongodb", port=ServicePort(number=27017, name="tcp-mongo"))
mongodb.deploy("v1", image=IMAGE.format("mongodb"))
mongodb.tcp_route(to=mongodb)

stock = bookinfo.service("stock", port=ServicePort(number=9090, name="grpc"),
                         versions=["v1", "v2"])
stock.deploy("v1", image="example.org/stock:1")
stock.deploy("v2", image="example.org/stock:2")
stock.route(match=Uri(exact="/stock.Stock/Reserve"), to=stock.v2)
stock.route(to=stock.v1)

# --- who may call whom: attached to the Services the waypoint serves -----------------
reviews.allow(productpage, methods=["GET"])
ratings.allow(reviews, methods=["GET"], paths=["/ratings/*"])
bookinfo.authorization("no-admin", action="DENY").rule(
    to=To(paths=["/admin*"]))

# --- ingress: a Gateway of class istio in its own namespace --------------------------
gateway = edge.gateway("bookinfo-gateway")
gateway.http("bookinfo.example.com")
gateway.routes("bookinfo", hosts=["bookinfo.example.com"]).route(
    match=[Uri(prefix="/productpage"), Uri(prefix="/static"), Uri(exact="/login"),
           Uri(exact="/logout")],
    to=productpage)
