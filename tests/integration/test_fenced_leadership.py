"""Fenced leadership on the real API server (#12.6): an apply in flight stops at its next
write once this replica's Lease is gone, and another replica takes the Lease over.

The apply writes a mesh of many objects; part-way through (after a number of completed
writes, counted on the apply's own progress callback) this replica releases its Lease,
as a replica that lost it would, and a second replica acquires it. The first replica's
apply must stop with at most the writes already in flight (one per worker) after the cut,
and the deployer must report it as a transient *fenced* failure.
"""

from __future__ import annotations

import uuid

import pytest

from meshdsl.compile import compile_mesh
from meshdsl.compile.manifest import GroupKind
from meshdsl.model import Mesh
from reconciler.ports import DeployError
from reconciler.runtime.apply import FencedError, Options, Outcome, apply
from reconciler.runtime.deploy import KubeDeployer
from reconciler.runtime.leader import LeaderElector, api_client
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer

NET = "networking.istio.io"

pytestmark = pytest.mark.integration

WORKERS = 4
CUT_AFTER = 20


def _manifests(name: str, services: int) -> list[dict[str, object]]:
    mesh = Mesh(name, namespace=name)
    mesh.namespace(name)
    for i in range(services):
        svc = mesh.service(f"svc-{i:03d}", versions=["v1", "v2"])
        svc.route(to={svc.v1: 90, svc.v2: 10})
    return list(compile_mesh(mesh.build()))


def _elector(apiserver: LocalApiServer, lease: str, who: str) -> LeaderElector:
    return LeaderElector(api_client(str(apiserver.kubeconfig)), namespace="default",
                         name=lease, identity=who, lease_duration=15.0)


def test_an_apply_stops_at_the_next_write_when_the_lease_is_lost(
        apiserver: LocalApiServer) -> None:
    name = f"fence-{uuid.uuid4().hex[:6]}"
    lease = f"meshdsl-reconciler-{name}"
    first, second = _elector(apiserver, lease, "first"), _elector(apiserver, lease, "second")
    assert first.try_acquire_or_renew() and not second.try_acquire_or_renew()
    first.start()      # renews in the background, as a running reconciler does
    target = KubeTarget.from_kubeconfig(str(apiserver.kubeconfig))
    desired = _manifests(name, 60)
    done: list[Outcome] = []
    writes_at_cut: list[int] = []

    def progress(outcome: Outcome) -> None:
        done.append(outcome)
        if len(done) == CUT_AFTER:
            first.stop(release=True)                    # the Lease is gone …
            assert second.try_acquire_or_renew()        # … and another replica holds it
            second.start()
            writes_at_cut.append(target.write_calls)

    with pytest.raises(FencedError, match="leadership lost"):
        apply(target, desired, mesh=name,
              options=Options(prune=True, workers=WORKERS, fence=first.fence()),
              on_done=progress)
    assert writes_at_cut, "the cut never happened: the apply was too small"
    after_cut = target.write_calls - writes_at_cut[0]
    assert after_cut <= WORKERS, after_cut             # only writes already in flight
    assert CUT_AFTER <= target.write_calls < len(desired)   # stopped part-way
    assert target.list(GroupKind(NET, "VirtualService"), name) == []

    # the deployer reports it as a transient "fenced" failure; the new leader finishes
    with pytest.raises(DeployError) as caught:
        KubeDeployer(target, workers=WORKERS).deploy({"manifests": desired}, mesh=name,
                                                     heal=True, fence=first.fence())
    assert caught.value.kind == "fenced" and caught.value.transient
    result = KubeDeployer(target, workers=WORKERS).deploy(
        {"manifests": desired}, mesh=name, heal=True, fence=second.fence())
    assert result.write_calls > 0
    assert len(target.list(GroupKind(NET, "VirtualService"), name)) == 60
    second.stop(release=True)


def test_a_fence_does_not_survive_a_new_term(apiserver: LocalApiServer) -> None:
    """Leadership lost and won back: work started in the old term stays fenced."""
    lease = f"meshdsl-reconciler-term-{uuid.uuid4().hex[:6]}"
    elector = _elector(apiserver, lease, "only")
    assert elector.try_acquire_or_renew()
    old = elector.fence()
    assert old()
    elector.stop(release=True)
    assert elector.try_acquire_or_renew()
    assert elector.is_leader and elector.fence()() and not old()
    elector.stop(release=True)
