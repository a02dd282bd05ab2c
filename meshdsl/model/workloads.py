"""What a service runs: ``svc.deploy(...)`` (a Deployment per version) and
``svc.run_locally(...)`` (the same version on a laptop, for the local Envoy mesh).

Kept apart from the routing and policy methods of :class:`~meshdsl.model.builder.Service`
because a Deployment carries much that the mesh does not care about (pull policy,
resources, probes, scratch directories, labels and annotations for other tools) and real
manifests need all of it to import as typed DSL rather than ``mesh.raw``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Self

from meshdsl.model.base import caller_location
from meshdsl.model.service import LocalRun, Probe, Workload

PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class Deployments:
    """The workload half of a service builder (mixed into ``Service``)."""

    workloads: list[Workload]
    local_runs: dict[str, LocalRun]

    def deploy(self, version: str, *, image: str, replicas: int = 1,
               env: Mapping[str, str] | None = None, container_port: int | None = None,
               local: LocalRun | None = None, command: Sequence[str] = (),
               args: Sequence[str] = (), image_pull_policy: PullPolicy | None = None,
               labels: Mapping[str, str] | None = None,
               annotations: Mapping[str, str] | None = None,
               pod_annotations: Mapping[str, str] | None = None,
               resources: Mapping[Literal["requests", "limits"], Mapping[str, str]]
               | None = None, readiness: Probe | None = None, liveness: Probe | None = None,
               scratch: Mapping[str, str] | None = None) -> Self:
        """A Deployment of ``version``: pods labelled ``app``/``version`` (what the mesh
        routes on) running ``image``. ``labels``/``annotations`` are the Deployment's own,
        ``pod_annotations`` its pods'; ``scratch`` maps emptyDir volume names to the
        paths they are mounted at."""
        self.workloads.append(Workload(
            version=version, image=image, replicas=replicas, env=dict(env or {}),
            container_port=container_port, local=local, command=list(command),
            args=list(args), image_pull_policy=image_pull_policy,
            labels=dict(labels or {}), annotations=dict(annotations or {}),
            pod_annotations=dict(pod_annotations or {}),
            resources={k: dict(v) for k, v in (resources or {}).items()},
            readiness=readiness, liveness=liveness, scratch=dict(scratch or {}),
            source=caller_location()))
        return self

    def run_locally(self, version: str = "", *, command: Sequence[str] = (),
                    address: str | None = None, env: Mapping[str, str] | None = None
                    ) -> Self:
        """How this version runs in the local Envoy mesh (``meshctl up``)."""
        self.local_runs[version] = LocalRun(command=list(command), address=address,
                                            env=dict(env or {}))
        return self
