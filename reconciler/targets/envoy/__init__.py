"""The local mesh target: real Envoy processes fed by files, with a local CA for mTLS.

Instead of istiod and an xDS server, each local Envoy reads its listeners, routes and
clusters from DiscoveryResponse files (``path_config_source``) that are replaced atomically;
Envoy reloads them live, without a restart or a dropped request. The pieces:

- :mod:`.files` — the bootstrap and xDS file formats (pure) and the atomic writer;
- :mod:`.binary` — finding ``envoy`` and ``envoy --mode validate``;
- :mod:`.admin` — the admin API client (versions, stats, ``/stats/prometheus``);
- :mod:`.process` — :class:`EnvoyProcess`: start, update (make before break), stop;
- :mod:`.pki` — :class:`LocalCA` issuing SPIFFE workload certificates;
- :mod:`.allocation` — ports (outside the ephemeral range) and certificates, stable while
  the mesh changes;
- :mod:`.apps` — the workloads' own processes (``run_locally`` commands);
- :mod:`.routes` — RDS or inline route tables (the inotify budget), config digests;
- :mod:`.report` — ``meshctl up``'s rows and what an apply did;
- :mod:`.mesh` — :class:`LocalMesh`: the whole local mesh, started, live-updated, stopped
  (what ``meshctl up`` runs; also a ``Deployer`` for the GitOps loop);
- :mod:`.errors` — the :class:`EnvoyError` ladder.
"""

from reconciler.targets.envoy.admin import EnvoyAdmin
from reconciler.targets.envoy.binary import find_envoy, validate_config, validate_resources
from reconciler.targets.envoy.errors import (
    EnvoyConfigError,
    EnvoyError,
    EnvoyNotFoundError,
    EnvoyStartError,
    EnvoyTimeoutError,
    EnvoyUpdateRejectedError,
    LocalAppError,
    LocalMeshError,
)
from reconciler.targets.envoy.mesh import Applied, LocalMesh, Row
from reconciler.targets.envoy.process import EnvoyProcess, XdsVersions

__all__ = [
    "Applied",
    "EnvoyAdmin",
    "EnvoyConfigError",
    "EnvoyError",
    "EnvoyNotFoundError",
    "EnvoyProcess",
    "EnvoyStartError",
    "EnvoyTimeoutError",
    "EnvoyUpdateRejectedError",
    "LocalAppError",
    "LocalMesh",
    "LocalMeshError",
    "Row",
    "XdsVersions",
    "find_envoy",
    "validate_config",
    "validate_resources",
]
