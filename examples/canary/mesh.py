"""A canary of reviews v2 through every stage: mirror, header match, then 10 → 50 → 100.

Rehearse it offline against recorded metrics (no cluster, no Prometheus)::

    meshctl canary simulate examples/canary/mesh.py --service shop/reviews \
        --metrics examples/canary/recorded-healthy.json
    meshctl canary simulate examples/canary/mesh.py --service shop/reviews \
        --metrics examples/canary/recorded-faulty.json

The checks are Flagger's Istio defaults (success rate and p99 of the canary) plus a
comparison with stable: the canary's p99 may be at most 100 ms above the stable's.
Promotion waits for a confirm-promotion webhook (in the recordings: its answers).
"""

from meshdsl import (
    Header,
    LatencyP99,
    Mesh,
    MetricCheck,
    MirrorStage,
    SuccessRate,
    Webhook,
)

mesh = Mesh("shop", namespace="shop")
mesh.namespace("shop")

reviews = mesh.service("reviews", port=9080, versions=["v1", "v2"])
reviews.deploy("v1", image="docker.io/istio/examples-bookinfo-reviews-v1:1.20.2")
reviews.deploy("v2", image="docker.io/istio/examples-bookinfo-reviews-v2:1.20.2")
reviews.route(to=reviews.v1, timeout="5s")

reviews.canary(
    target="v2",
    stable="v1",
    mirror_stage=MirrorStage(percent=50),
    header_stage=Header("x-canary", exact="always"),
    steps=[10, 50, 100],
    interval="1m",
    checks=[
        SuccessRate(min=99),
        LatencyP99(max_ms=500),
        MetricCheck(name="latency-vs-stable", builtin="request-duration", max=100,
                    compare_to_stable=True),
    ],
    min_requests=50,
    max_failed_checks=2,
    no_data_limit=3,
    webhooks=[
        Webhook(name="release-gate", url="http://127.0.0.1:8089/gate",
                kind="confirm-promotion"),
        Webhook(name="chat", url="http://127.0.0.1:8089/notify", kind="event"),
    ],
)
