"""Services, their versions (subsets) and the workloads (Deployments) that run them."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from meshdsl.model.base import Declared, Frozen
from meshdsl.model.containers import (
    Container,
    FileMount,
    PortNumber,
    PullPolicy,
    Resources,
    ValueFrom,
)
from meshdsl.model.policy import TrafficPolicy


class ServicePort(Frozen):
    number: int = Field(ge=1, le=65535)
    name: str = "http"
    protocol: str | None = None
    target_port: int | None = Field(default=None, ge=1, le=65535)

    @property
    def is_http(self) -> bool:
        """Istio decides the protocol from the port name prefix (or appProtocol)."""
        proto = (self.protocol or self.name).lower()
        return proto.split("-")[0] in {"http", "http2", "grpc", "grpc-web", "https"}


class Version(Frozen):
    """A subset of the service's endpoints, usually selected by the ``version`` label."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**data)


class LocalRun(Frozen):
    """How a version runs on a laptop for the local Envoy mesh: a command to start (with
    ``{port}`` substituted) or an address that already serves it."""

    command: list[str] = Field(default_factory=list)
    address: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Probe(Frozen):
    """A readiness or liveness check of the container: an HTTP GET of ``path`` on
    ``port``, or (without ``path``) a TCP connection to ``port``."""

    port: int = Field(ge=1, le=65535)
    path: str | None = None
    initial_delay: int | None = Field(default=None, ge=0)
    period: int | None = Field(default=None, ge=1)


class Workload(Declared):
    """A Deployment of one version of a service: the app's container (image, pull policy,
    ports, env, resources, probes, scratch directories, files from Secrets and
    ConfigMaps), the containers beside it, and the labels and annotations real
    manifests carry besides the ``app``/``version`` ones the mesh needs."""

    version: str
    image: str
    replicas: int = Field(default=1, ge=0)
    env: dict[str, str | ValueFrom] = Field(default_factory=dict)  # in the order written
    # None: the target of the service's first port; a list: these ([]: none at all)
    container_port: PortNumber | list[PortNumber] | None = None
    local: LocalRun | None = None
    command: list[str] = Field(default_factory=list)  # the image's entrypoint, replaced
    args: list[str] = Field(default_factory=list)
    image_pull_policy: PullPolicy | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # the Deployment's own
    annotations: dict[str, str] = Field(default_factory=dict)  # the Deployment's own
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=dict)
    readiness: Probe | None = None
    liveness: Probe | None = None
    scratch: dict[str, str] = Field(default_factory=dict)  # emptyDir volume -> mount path
    files: list[FileMount] = Field(default_factory=list)
    grace_period: int | None = Field(default=None, ge=0)  # seconds to stop before SIGKILL
    containers: list[Container] = Field(default_factory=list)  # beside the app's
    strategy: Literal["RollingUpdate", "Recreate"] | None = None  # how pods are replaced

    @model_validator(mode="after")
    def _volumes_exist(self) -> Self:
        names = [*self.scratch, *(f.volume_name for f in self.files)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"volume {twice[0]!r} is declared twice (scratch and files "
                             "share the pod's volume names)")
        extras = [c.name for c in self.containers]
        if len(set(extras)) != len(extras):
            raise ValueError("two containers beside the app have the same name")
        for extra in self.containers:
            unknown = sorted(set(extra.mounts) - set(names))
            if unknown:
                raise ValueError(f"container {extra.name!r} mounts {unknown[0]!r}, which is "
                                 "not a volume of the pod; declare it in scratch= or files=")
        return self

    @property
    def container_ports(self) -> list[int]:
        port = self.container_port
        return [] if port is None else [port] if isinstance(port, int) else list(port)


class ServiceSpec(Declared):
    """A service of the mesh. Istio routing for it lives in VirtualService and
    DestinationRule objects that the builder derives; this keeps identity and workloads."""

    name: str
    namespace: str
    ports: list[ServicePort] = Field(default_factory=list)
    versions: list[Version] = Field(default_factory=list)
    workloads: list[Workload] = Field(default_factory=list)
    service_account: str | None = None
    app_label: str = "app"
    version_label: str = "version"
    kube_service: bool | None = None
    local: dict[str, LocalRun] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)  # of the Service object
    annotations: dict[str, str] = Field(default_factory=dict)  # of the Service object
    account_labels: dict[str, str] = Field(default_factory=dict)  # of its ServiceAccount
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None

    @property
    def account(self) -> str:
        return self.service_account or self.name

    def principal(self, trust_domain: str) -> str:
        return f"{trust_domain}/ns/{self.namespace}/sa/{self.account}"

    def pod_labels(self, workload: Workload) -> dict[str, str]:
        """The labels of a version's pods: app and version, and what the version's subset
        selects on (what selectors, Istio's included, see)."""
        labels = {self.app_label: self.name, self.version_label: workload.version}
        for version in self.versions:
            if version.name == workload.version:
                labels.update(version.labels)
        return labels

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def version_names(self) -> list[str]:
        return [v.name for v in self.versions]

    def emits_kube_service(self) -> bool:
        if self.kube_service is not None:
            return self.kube_service
        return bool(self.workloads) and bool(self.ports)


class NamespaceSpec(Declared):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    create: bool = True
