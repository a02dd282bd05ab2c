"""A field equal to the API server's default is absent: the CRD schemas' ``default``s for
CRD kinds, the documented table for Kubernetes' own kinds; anything else stays."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshdsl.compile.compare import normalize
from meshdsl.compile.defaults import without_defaults

Manifest = dict[str, Any]


def _service(**spec: Any) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}


def _pod(**pod: Any) -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": pod}}}


def _route(**spec: Any) -> Manifest:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r"}, "spec": spec}


def _gateway(**listener: Any) -> Manifest:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "g"}, "spec": {"gatewayClassName": "istio", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", **listener}]}}


_LIVE_SERVICE = _service(
    ports=[{"name": "http", "protocol": "TCP", "port": 9080, "targetPort": 9080}],
    selector={"app": "ratings"}, clusterIP="10.0.0.17", clusterIPs=["10.0.0.17"],
    type="ClusterIP", sessionAffinity="None", ipFamilies=["IPv4"],
    ipFamilyPolicy="SingleStack")

_CASES: list[tuple[str, Manifest, Manifest]] = [
    ("a live Service is what was applied", _LIVE_SERVICE,
     _service(ports=[{"name": "http", "port": 9080}], selector={"app": "ratings"})),
    ("a headless Service keeps clusterIP None, other choices stay",
     _service(clusterIP="None", clusterIPs=["None"], type="NodePort",
              sessionAffinity="ClientIP",
              ports=[{"port": 53, "protocol": "UDP", "targetPort": 5353}]),
     _service(clusterIP="None", clusterIPs=["None"], type="NodePort",
              sessionAffinity="ClientIP",
              ports=[{"port": 53, "protocol": "UDP", "targetPort": 5353}])),
    ("a live pod template is what was applied",
     _pod(containers=[{"name": "app", "image": "shop/app:1.2", "imagePullPolicy": "IfNotPresent",
                       "terminationMessagePath": "/dev/termination-log",
                       "terminationMessagePolicy": "File", "resources": {},
                       "ports": [{"containerPort": 80, "protocol": "TCP"}],
                       "readinessProbe": {"httpGet": {"path": "/", "port": 80,
                                                      "scheme": "HTTP"},
                                          "timeoutSeconds": 1, "periodSeconds": 10,
                                          "successThreshold": 1, "failureThreshold": 3}}],
          restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler",
          securityContext={}, terminationGracePeriodSeconds=30, serviceAccountName="shop",
          serviceAccount="shop"),
     _pod(containers=[{"name": "app", "image": "shop/app:1.2",
                       "ports": [{"containerPort": 80}],
                       "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}],
          serviceAccountName="shop")),
    ("imagePullPolicy is the default of its image's tag only",
     _pod(containers=[{"name": "a", "image": "a", "imagePullPolicy": "Always"},
                      {"name": "b", "image": "b:latest", "imagePullPolicy": "IfNotPresent"},
                      {"name": "c", "image": "c@sha256:00", "imagePullPolicy": "IfNotPresent"},
                      {"name": "d", "image": "reg:5000/d", "imagePullPolicy": "Always"}]),
     _pod(containers=[{"name": "a", "image": "a"},
                      {"name": "b", "image": "b:latest", "imagePullPolicy": "IfNotPresent"},
                      {"name": "c", "image": "c@sha256:00"},
                      {"name": "d", "image": "reg:5000/d"}])),
    ("a strategy keeps only what differs from the default",
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
               "strategy": {"type": "RollingUpdate",
                            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}}}},
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
    ("a live Namespace's finalizer is the server's",
     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"},
      "spec": {"finalizers": ["kubernetes"]}},
     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
    ("a ServiceAccount's token Secrets are the cluster's, other Secrets are not",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop"},
      "secrets": [{"name": "shop-token-x7k2p"}]},
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop"}}),
    ("a Secret someone listed stays",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop"},
      "secrets": [{"name": "shop-token-x7k2p"}, {"name": "deploy-key"}]},
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop"},
      "secrets": [{"name": "shop-token-x7k2p"}, {"name": "deploy-key"}]}),
    ("a backendRef's group, kind and weight 1 are the CRD's defaults",
     _route(parentRefs=[{"group": "", "kind": "Service", "name": "reviews"}],
            rules=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "a",
                                     "port": 80, "weight": 1},
                                    {"group": "", "kind": "Service", "name": "b",
                                     "port": 80, "weight": 2}]}]),
     _route(parentRefs=[{"group": "", "kind": "Service", "name": "reviews"}],
            rules=[{"backendRefs": [{"name": "a", "port": 80},
                                    {"name": "b", "port": 80, "weight": 2}]}])),
    ("a match keeps its own path and headers; the default path type goes",
     _route(rules=[{"matches": [{"path": {"type": "Exact", "value": "/login"}},
                                {"path": {"type": "PathPrefix", "value": "/api"},
                                 "headers": [{"type": "Exact", "name": "x", "value": "1"}]}]}]),
     _route(rules=[{"matches": [{"path": {"type": "Exact", "value": "/login"}},
                                {"path": {"value": "/api"},
                                 "headers": [{"name": "x", "value": "1"}]}]}])),
    ("a listener's allowedRoutes Same is the default, All is not",
     _gateway(allowedRoutes={"namespaces": {"from": "Same"}}), _gateway()),
    ("All stays", _gateway(allowedRoutes={"namespaces": {"from": "All"}}),
     _gateway(allowedRoutes={"namespaces": {"from": "All"}})),
    ("tls emptied by its defaults stays: no tls is not the same",
     _gateway(tls={"mode": "Terminate"}), _gateway(tls={})),
    ("Istio's CRDs declare no defaults",
     {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "v"}, "spec": {"hosts": ["a"], "http": [{"route": [
          {"destination": {"host": "a"}, "weight": 100}]}]}},
     {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "v"}, "spec": {"hosts": ["a"], "http": [{"route": [
          {"destination": {"host": "a"}, "weight": 100}]}]}}),
    ("a kind nobody describes is left alone",
     {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
      "spec": {"type": "ClusterIP", "replicas": 1}},
     {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
      "spec": {"type": "ClusterIP", "replicas": 1}}),
]


@pytest.mark.parametrize(("live", "applied"), [c[1:] for c in _CASES],
                         ids=[c[0] for c in _CASES])
def test_fields_equal_to_their_default_are_absent(live: Manifest, applied: Manifest) -> None:
    before = copy.deepcopy(live)
    assert without_defaults(live) == applied
    assert live == before  # a copy: the input is not changed
    assert without_defaults(applied) == applied  # idempotent


def test_comparison_ignores_defaults_on_both_sides() -> None:
    compiled = _service(ports=[{"name": "http", "port": 9080, "protocol": "TCP"}],
                        selector={"app": "ratings"})
    assert normalize(compiled) == normalize(_LIVE_SERVICE)
    assert normalize(compiled) != normalize(_service(
        ports=[{"name": "http", "port": 9080, "protocol": "UDP"}], selector={"app": "ratings"}))
