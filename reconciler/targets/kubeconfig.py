"""The one way meshdsl connects to an API server: like kubectl.

``--kubeconfig`` (else ``$KUBECONFIG``, else ``~/.kube/config``), optionally another
``--context``, else the in-cluster service account; ``--as`` impersonates. The kube target
(:mod:`reconciler.targets.kube`) and leader election (:mod:`reconciler.runtime.leader`)
both build their client here, so they always talk to the same server as the same user.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from reconciler.targets.kube_http import KubeConfigError, one_line

__all__ = ["api_client"]


def api_client(kubeconfig: str | None = None, *, context: str | None = None,
               impersonate: str | None = None, pool_size: int | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for that connection, with the client's own
    retries off (ours are bounded and explicit). Raises :class:`KubeConfigError` with one
    line saying which configuration could not be loaded."""
    configuration = k8s_client.Configuration()
    # called through Any: the client's functions are unannotated
    load_kube_config: Any = k8s_config.load_kube_config
    load_incluster_config: Any = k8s_config.load_incluster_config
    try:
        try:
            load_kube_config(config_file=kubeconfig, context=context,
                             client_configuration=configuration, persist_config=False)
        except ConfigException:
            if kubeconfig is not None or context is not None:
                raise
            load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = kubeconfig or "the default kubeconfig"
        raise KubeConfigError(
            f"cannot load {where}{f' (context {context!r})' if context else ''}: "
            f"{one_line(str(exc))}") from exc
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    configuration.retries = False
    client: Any = k8s_client.ApiClient(configuration=configuration)
    if impersonate:
        client.set_default_header("Impersonate-User", impersonate)
    return client
