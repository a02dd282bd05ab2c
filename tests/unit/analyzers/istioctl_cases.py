"""istioctl's own analyzer test table, for the codes meshdsl claims: the checklist.

For each test file of ``pkg/config/analysis/analyzers/testdata`` that exercises a claimed
code, the messages ``analyzers_test.go`` expects (code and object) and the objects the
file holds to show they are *not* flagged, with the corpus file reproducing it. Objects
istioctl's test files leave without a namespace are in ``default`` here (the DestinationRule
cases: in a namespace named after the case). Out of the claimed scope and so not listed:
IST0101 on a Gateway whose selector matches no pod (``gateway-no-workload.yaml``) and
every message of other analyzers.
"""

from __future__ import annotations

Case = tuple[str, list[tuple[str, str]], list[tuple[str, str]]]

_VS = "VirtualService"


def _all(code: str, kind: str, *names: str) -> list[tuple[str, str]]:
    return [(code, f"{kind} {name}") for name in names]


_HOST_GATEWAY = ("istioctl-host-not-found-gateway.yaml", _all(
    "IST0132", _VS, "default/testing-service-02-test-01", "default/testing-service-02-test-02",
    "default/testing-service-02-test-03", "default/testing-service-03-test-04"), _all(
    "IST0132", _VS, "default/testing-service-01-test-01", "default/testing-service-01-test-02",
    "default/testing-service-01-test-03", "default/testing-service-01-test-04",
    "default/testing-service-02-test-04"))
_HOST_GATEWAY_NS = ("istioctl-host-not-found-gateway-ns.yaml", _all(
    "IST0132", _VS, "default/testing-service-01-test-01"), _all(
    "IST0132", _VS, "istio-system/testing-service-01-test-01",
    "istio-system/testing-service-01-test-02", "default/testing-service-01-test-02",
    "istio-system/testing-service-01-test-03", "default/testing-service-01-test-03",
    "istio-system/testing-service-01-test-04", "default/testing-service-01-test-04"))
_PORTS = "istioctl-port-names.yaml"


def _tls(testdata: str, namespace: str, name: str, *codes: str) -> tuple[str, Case]:
    flags = [(code, f"DestinationRule {namespace}/{name}") for code in codes]
    clean = [(code, f"DestinationRule {namespace}/{name}") for code in ("IST0128", "IST0129")
             if code not in codes]
    return testdata, ("istioctl-destination-rule-tls.yaml", flags, clean)


# istioctl test file -> (corpus file, expected messages, objects deliberately not flagged)
CASES: dict[str, Case] = {
    "virtualservice_destinationhosts.yaml": ("istioctl-destination-hosts.yaml", [
        *_all("IST0101", _VS, "default/reviews-bogushost", "default/reviews-bookinfo-other",
              "default/reviews-mirror-bogushost", "default/reviews-bogusport",
              "istio-system/cross-namespace-details", "hello/hello-export-to-bogus"),
        ("IST0112", f"{_VS} default/reviews-2port-missing")], [
        *_all("IST0101", _VS, "default/reviews", "default/reviews-fqdn",
              "default/reviews-external", "default/reviews-bookinfo-eu",
              "default/reviews-bookinfo-eu-wildcard", "default/reviews-mirror",
              "default/reviews-2port-present", "istio-system/cross-namespace",
              "banana/banana-details", "hello1/hello", "hello2/hello", "hello/hello",
              "default/vs-to-extporto-serviceentry"),
        ("IST0112", f"{_VS} default/reviews-2port-present")]),
    "virtualservice_destinationrules.yaml": ("istioctl-destination-rules.yaml", _all(
        "IST0101", _VS, "default/reviews-bogussubset", "default/reviews-mirror-bogussubset"),
        _all("IST0101", _VS, "default/reviews", "default/reviews-fqdn",
             "default/reviews-mirror")),
    "virtualservice_gateways.yaml": ("istioctl-gateways.yaml", [
        ("IST0101", f"{_VS} default/httpbin-bogus"),
        *_all("IST0132", _VS, "default/cross-test", "default/httpbin-bogus",
              "default/httpbin")], [
        ("IST0101", f"{_VS} default/httpbin"), ("IST0101", f"{_VS} default/cross-test"),
        ("IST0101", f"{_VS} default/httpbin-mesh"), ("IST0132", f"{_VS} default/httpbin-mesh")]),
    "virtualservice_kubernetes_gateways.yaml": ("istioctl-kubernetes-gateways.yaml", _all(
        "IST0132", _VS, "default/my-vs-host-mismatch"), _all("IST0132", _VS, "default/my-vs")),
    "virtualservice_internal_gateway_ref.yaml": ("istioctl-internal-gateway-ref.yaml", [], [
        ("IST0101", f"{_VS} default/httpbin"), ("IST0132", f"{_VS} default/httpbin")]),
    "virtualservice_host_not_found_gateway.yaml": _HOST_GATEWAY,
    "virtualservice_host_not_found_gateway_beta.yaml": _HOST_GATEWAY,
    "virtualservice_host_not_found_gateway_with_ns_prefix.yaml": _HOST_GATEWAY_NS,
    "virtualservice_host_not_found_gateway_with_ns_prefix_beta.yaml": _HOST_GATEWAY_NS,
    "virtualservice_conflictingmeshgatewayhosts.yaml": ("istioctl-mesh-conflicts.yaml", _all(
        "IST0109", _VS, "team3/ratings", "team4/ratings", "foo/ratings", "bar/ratings",
        "foo/productpage", "foo/bogus-productpage", "team2/ratings"), _all(
        "IST0109", _VS, "foo/reviews", "bar/reviews", "team1/ratings")),
    "virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml": (
        "istioctl-mesh-conflicts-exportto.yaml", _all(
            "IST0109", _VS, "foo/productpage", "bar/productpage", "foo/productpage-c",
            "bar/productpage-c", "foo/productpage-d", "bar/productpage-d"), _all(
            "IST0109", _VS, "foo/productpage-b", "bar/productpage-b")),
    "virtualservice_dupmatches.yaml": ("istioctl-duplicate-matches.yaml", [
        *_all("IST0130", _VS, "default/duplicate-match", "foo/sample-foo-cluster01",
              "default/duplicate-tcp-match", "default/duplicate-empty-tcp",
              "none/tls-routing"),
        *_all("IST0131", _VS, "default/almost-duplicate-match", "default/duplicate-match",
              "default/duplicate-tcp-match", "default/almost-duplicate-tcp-match",
              "none/tls-routing-almostmatch", "none/tls-routing")], [
        ("IST0130", f"{_VS} default/almost-duplicate-match"),
        ("IST0130", f"{_VS} default/almost-duplicate-tcp-match"),
        ("IST0130", f"{_VS} none/tls-routing-almostmatch"),
        ("IST0131", f"{_VS} foo/sample-foo-cluster01"),
        ("IST0131", f"{_VS} default/duplicate-empty-tcp")]),
    "virtualservice_overlappingmatches.yaml": ("istioctl-duplicate-matches.yaml", _all(
        "IST0131", _VS, "default/non-method-get", "default/overlapping-in-single-match",
        "default/overlapping-in-two-matches",
        "default/overlapping-mathes-with-different-methods"), _all(
        "IST0131", _VS, "default/uri-with-prefix-exact")),
    "conflicting-gateways.yaml": ("istioctl-conflicting-gateways.yaml", _all(
        "IST0145", "Gateway", "default/alpha", "default/beta"), []),
    "gateway-different-port.yaml": ("istioctl-gateways-different-port.yaml", [], _all(
        "IST0145", "Gateway", "default/alpha", "default/beta")),
    "conflicting-gateways-multiple-ports.yaml": ("istioctl-conflicting-gateways-ports.yaml",
                                                 _all("IST0145", "Gateway", "default/alpha",
                                                      "default/beta"), []),
    "conflicting-gateways-subSelector.yaml": ("istioctl-conflicting-gateways-subselector.yaml",
                                              _all("IST0145", "Gateway", "default/alpha",
                                                   "default/beta"), []),
    "conflicting-gateways-invalid-port.yaml": ("istioctl-conflicting-gateways-no-port.yaml",
                                               [], _all("IST0145", "Gateway", "default/alpha",
                                                        "default/beta")),
    "analyze-list-type.yaml": ("istioctl-conflicting-gateways-list.yaml", _all(
        "IST0145", "Gateway", "default/alpha", "default/alpha-l", "default/beta-l"), []),
    "gateway-no-port.yaml": ("istioctl-gateway-port-missing.yaml", _all(
        "IST0162", "Gateway", "default/httpbin-gateway"), []),
    "gateway-correct-port.yaml": ("istioctl-gateway-port-present.yaml", [], _all(
        "IST0162", "Gateway", "default/httpbin-gateway")),
    "gateway-custom-ingressgateway.yaml": ("istioctl-custom-ingress.yaml", [], _all(
        "IST0162", "Gateway", "default/httpbin-gateway")),
    "gateway-custom-ingressgateway-badport.yaml": ("istioctl-custom-ingress-bad-port.yaml",
                                                   _all("IST0162", "Gateway",
                                                        "default/httpbin-gateway"), []),
    "gateway-custom-ingressgateway-badport-notarget.yaml": (
        "istioctl-custom-ingress-bad-port-no-target.yaml",
        _all("IST0162", "Gateway", "default/httpbin-gateway"), []),
    "gateway-custom-ingressgateway-translation.yaml": (
        "istioctl-custom-ingress-port-translation.yaml", [],
        _all("IST0162", "Gateway", "default/httpbin-gateway")),
    "gateway-custom-ingressgateway-svcselector.yaml": (
        "istioctl-custom-ingress-service-selector.yaml",
        _all("IST0162", "Gateway", "default/httpbin8002-gateway"),
        _all("IST0162", "Gateway", "default/httpbin8001-gateway")),
    "service-no-port-name.yaml": (_PORTS, _all(
        "IST0118", "Service", "my-namespace1/my-service1", "my-namespace2/my-service2"), []),
    "service-port-name.yaml": (_PORTS, [], _all(
        "IST0118", "Service", "my-namespace/my-service", "ambient/reviews-istio-waypoint",
        "istio-ingress/gateway-istio")),
    "service-no-port-name-system-namespace.yaml": (_PORTS, [], _all(
        "IST0118", "Service", "kube-system/my-service1", "istio-system/my-service2",
        "kube-public/my-service3", "istio-system/my-service4")),
    "incorrect-port-name-external-name-service-type.yaml": (_PORTS, [], _all(
        "IST0118", "Service", "nginx-ns/nginx", "nginx-ns2/nginx-svc2", "nginx-ns3/nginx-svc3")),
    "correct-port-name-external-name-service-type.yaml": (_PORTS, [], _all(
        "IST0118", "Service", "nginx-ns4/nginx-svc4")),
    **dict([
        _tls("destinationrule-simple-destination.yaml", "simple-destination", "db-tls",
             "IST0128"),
        _tls("destinationrule-mutual-destination.yaml", "mutual-destination", "db-mtls",
             "IST0128"),
        _tls("destinationrule-simple-port.yaml", "simple-port", "db-tls", "IST0129"),
        _tls("destinationrule-simple-destination-credentialname.yaml",
             "simple-destination-credential", "db-tls", "IST0128"),
        _tls("destinationrule-simple-destination-credentialname-selector.yaml",
             "simple-destination-credential-selector", "db-tls"),
        _tls("destinationrule-simple-port-credentialname.yaml", "simple-port-credential",
             "db-tls", "IST0129"),
        _tls("destinationrule-simple-port-credentialname-selector.yaml",
             "simple-port-credential-selector", "db-tls"),
        _tls("destinationrule-mutual-port.yaml", "mutual-port", "db-mtls", "IST0129"),
        _tls("destinationrule-compound-simple-mutual.yaml", "compound-simple-mutual",
             "db-mtls", "IST0128", "IST0129"),
        _tls("destinationrule-compound-mutual-simple.yaml", "compound-mutual-simple",
             "db-mtls", "IST0128", "IST0129"),
        _tls("destinationrule-with-ca.yaml", "with-ca", "db-mtls"),
    ]),
}
