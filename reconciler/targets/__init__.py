"""Targets: where desired resources are applied — the adapters at the end of the flow.

A target takes compiled resources (plain data) and makes a live system serve them: ``kube``
applies Istio custom resources to a Kubernetes API server with server-side apply; ``envoy``
runs the local mesh, real Envoy processes fed by configuration files. Targets are I/O
adapters: the pure core decides *what* to apply, a target only knows *how*.
"""
