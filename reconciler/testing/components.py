"""Where the local Kubernetes components come from, and the errors when they are missing.

kube-apiserver and kubectl 1.20.2 are built once per machine by
``scripts/install-components`` and cached under ``~/.cache/meshdsl/k8s-1.20.2/bin``; etcd
is the Debian package; the CRDs served by default (Istio's and Gateway API's) come from
the shared test-data directory: ``$MESHDSL_SHARED_DIR``, else ``../shared`` beside the
checkout (``scripts/local-apiserver up --crds PATH`` names other files).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "1.20.2"

__all__ = [
    "K8S_VERSION", "Binaries", "ComponentsMissingError", "LocalApiServerError", "cache_root",
    "default_crd_files", "find_binaries", "gateway_api_crds_file", "istio_crds_file",
    "k8s_bin_dir", "repo_root", "shared_dir", "state_dir", "write_private",
]


class LocalApiServerError(RuntimeError):
    """The local etcd/kube-apiserver pair could not be started, used or stopped."""


class ComponentsMissingError(LocalApiServerError):
    """A required binary is not installed; run ``scripts/install-components``."""


class PortInUseError(LocalApiServerError):
    """A picked port was taken between choosing it and the process binding it."""


# --- locations ---------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$MESHDSL_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/meshdsl`` (as install-components)."""
    env = os.environ.get("MESHDSL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "meshdsl"


def k8s_bin_dir() -> Path:
    """Where install-components caches kube-apiserver and kubectl."""
    return cache_root() / f"k8s-{K8S_VERSION}" / "bin"


def repo_root() -> Path:
    """The meshdsl repository (this file is ``<repo>/reconciler/testing/apiserver.py``)."""
    return Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared test-data directory: ``$MESHDSL_SHARED_DIR``, else ``<repo>/../shared``."""
    env = os.environ.get("MESHDSL_SHARED_DIR")
    return Path(env) if env else repo_root().parent / "shared"


def istio_crds_file() -> Path:
    """Istio's CRD bundle (``crd-all.gen.yaml``, 15 CRDs) in the shared directory."""
    return shared_dir() / "istio" / "crd-all.gen.yaml"


def gateway_api_crds_file(channel: str = "standard") -> Path:
    """Gateway API v1.6.1 CRDs (``standard`` or ``experimental`` channel) in the shared directory."""
    return shared_dir() / "gateway-api" / f"{channel}-install.yaml"


def default_crd_files() -> list[Path]:
    """What a test cluster serves by default: Istio's CRDs and Gateway API's standard channel."""
    return [istio_crds_file(), gateway_api_crds_file()]


def state_dir() -> Path:
    """State of the detached server managed by ``local-apiserver up/down``."""
    return cache_root() / "local-apiserver"


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kubectl: Path
    etcd: Path


def find_binaries() -> Binaries:
    """Locate kube-apiserver/kubectl (cache) and etcd (PATH) or raise a clear error."""
    bin_dir = k8s_bin_dir()
    apiserver, kubectl = bin_dir / "kube-apiserver", bin_dir / "kubectl"
    missing = [str(p) for p in (apiserver, kubectl) if not os.access(p, os.X_OK)]
    etcd = shutil.which("etcd")
    if etcd is None:
        missing.append("etcd (Debian package etcd-server)")
    if missing:
        raise ComponentsMissingError(
            f"missing {', '.join(missing)}; run scripts/install-components once on this "
            f"machine (it installs etcd and builds kube-apiserver/kubectl {K8S_VERSION}, "
            "about 6 minutes the first time)"
        )
    assert etcd is not None
    return Binaries(kube_apiserver=apiserver, kubectl=kubectl, etcd=Path(etcd))


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file readable by the owner only (keys, tokens, kubeconfig)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
