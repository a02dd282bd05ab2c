"""What a service runs: ``svc.deploy(...)`` (a Deployment per version) and
``svc.run_locally(...)`` (the same version on a laptop, for the local Envoy mesh).

Kept apart from the routing and policy methods of :class:`~meshdsl.model.builder.Service`
because a Deployment carries much that the mesh does not care about (pull policy,
resources, probes, scratch directories, files from Secrets and ConfigMaps, env from them,
a grace period, containers beside the app, labels and annotations for other tools) and
real manifests need all of it to import as typed DSL rather than ``mesh.raw``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Self

from meshdsl.errors import ModelUsageError
from meshdsl.model.base import caller_location
from meshdsl.model.containers import Container, FileMount, PullPolicy, ValueFrom
from meshdsl.model.service import LocalRun, Probe, Workload


class Deployments:
    """The workload half of a service builder (mixed into ``Service``)."""

    name: str
    workloads: list[Workload]
    local_runs: dict[str, LocalRun]

    def deploy(self, version: str, *, image: str, replicas: int = 1,
               env: Mapping[str, str | ValueFrom] | None = None,
               container_port: int | Sequence[int] | None = None,
               local: LocalRun | None = None, command: Sequence[str] = (),
               args: Sequence[str] = (), image_pull_policy: PullPolicy | None = None,
               labels: Mapping[str, str] | None = None,
               annotations: Mapping[str, str] | None = None,
               pod_annotations: Mapping[str, str] | None = None,
               resources: Mapping[Literal["requests", "limits"], Mapping[str, str]]
               | None = None, readiness: Probe | None = None, liveness: Probe | None = None,
               scratch: Mapping[str, str] | None = None, files: Sequence[FileMount] = (),
               grace_period: int | None = None, containers: Sequence[Container] = (),
               strategy: Literal["RollingUpdate", "Recreate"] | None = None) -> Self:
        """A Deployment of ``version``: pods labelled ``app``/``version`` (what the mesh
        routes on) running ``image``. ``labels``/``annotations`` are the Deployment's own,
        ``pod_annotations`` its pods'; ``scratch`` maps emptyDir volume names to the
        paths they are mounted at, ``files`` mounts Secrets and ConfigMaps; ``env``
        values are strings or :class:`ValueFrom` (a Secret's or ConfigMap's key, a pod
        field); ``containers`` run beside the app's (named after the service);
        ``strategy="Recreate"`` stops the old pods before starting new ones."""
        if any(c.name == self.name for c in containers):
            raise ModelUsageError(f"a container beside the app cannot be named {self.name!r}:"
                                  " the app's container has the service's name")
        port = container_port if container_port is None or isinstance(
            container_port, int) else list(container_port)
        self.workloads.append(Workload(
            version=version, image=image, replicas=replicas, env=dict(env or {}),
            container_port=port, local=local, command=list(command),
            args=list(args), image_pull_policy=image_pull_policy,
            labels=dict(labels or {}), annotations=dict(annotations or {}),
            pod_annotations=dict(pod_annotations or {}),
            resources={k: dict(v) for k, v in (resources or {}).items()},
            readiness=readiness, liveness=liveness, scratch=dict(scratch or {}),
            files=list(files), grace_period=grace_period, containers=list(containers),
            strategy=strategy, source=caller_location()))
        return self

    def run_locally(self, version: str = "", *, command: Sequence[str] = (),
                    address: str | None = None, env: Mapping[str, str] | None = None
                    ) -> Self:
        """How this version runs in the local Envoy mesh (``meshctl up``)."""
        self.local_runs[version] = LocalRun(command=list(command), address=address,
                                            env=dict(env or {}))
        return self
