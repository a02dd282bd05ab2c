"""Helpers that start real components (etcd + kube-apiserver, ...) for tests and local use.

Nothing here is a fake: each helper runs the real binary on 127.0.0.1 with free ports and a
private temporary directory. Install the components once per machine with
``scripts/install-components``.
"""
