"""``pulumi up`` mid-rollout keeps the current step, read where a kube reconciler keeps it:
its rollout ConfigMaps (``ClusterRolloutStore``) on a real kube-apiserver, found with
``meshdsl:rollout_state: cluster:<name>`` and the provider's ``kubernetes:kubeconfig``.

Every test uses a reconciler name of its own (the server is shared by the session).
"""

from __future__ import annotations

import pytest

from meshdsl.compile.manifest import CONFIG_MAP
from meshdsl.model.spec import MeshSpec
from reconciler.runtime.rollout_store import ClusterRolloutStore
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from stacks.program import deploy
from stacks.testing import Run, run_program
from tests.integration.conftest import unique
from tests.unit.stacks.projects import BOOKINFO_PROGRAM
from tests.unit.stacks.rollouts import in_progress, store_rollout, succeeded

pytestmark = pytest.mark.integration

CANARY_ON = {"meshdsl:canary": "true"}


def up(config: dict[str, str], stack: str = "prod") -> Run:
    return run_program(lambda: deploy(BOOKINFO_PROGRAM), config=config, stack=stack)


def error(config: dict[str, str]) -> str:
    import pulumi

    with pytest.raises(pulumi.RunError) as excinfo:
        up(config)
    return str(excinfo.value)


def frontend_split(run: Run) -> list[tuple[str, int]]:
    vs = run.named("virtualservice-default-frontend").inputs
    return [(r["destination"]["subset"], int(r["weight"]))
            for r in vs["spec"]["http"][-1]["route"]]


def test_mid_rollout_up_keeps_the_step_the_reconciler_keeps_in_the_cluster(
        apiserver: LocalApiServer, target: KubeTarget, bookinfo: MeshSpec) -> None:
    name = unique("prod")
    store = ClusterRolloutStore(target, name=name)
    store_rollout(store, in_progress(bookinfo))
    config = {**CANARY_ON, "meshdsl:rollout_state": f"cluster:{name}",
              "kubernetes:kubeconfig": str(apiserver.kubeconfig)}

    run = up(config)
    assert frontend_split(run) == [("v1", 90), ("v2", 10)]
    assert run.exports["weights"] == {"default/frontend": {"v1": 90, "v2": 10}}
    (info,) = [m for m in run.messages("info") if "mid-rollout" in m]
    assert info == ("default/frontend is mid-rollout: keeping the rollout's current weights "
                    f"v1=90%, v2=10% from cluster:{name} instead of the program's; the "
                    "reconciler owns them until the rollout ends")

    store_rollout(store, in_progress(bookinfo, 3))  # the reconciler moves on
    assert frontend_split(up(config)) == [("v1", 50), ("v2", 50)]
    store_rollout(store, succeeded(bookinfo))  # and finishes: the program's weights again
    done = up(config)
    assert frontend_split(done) == [("v1", 95), ("v2", 5)]
    assert not any("mid-rollout" in m for m in done.messages())


def test_the_kubeconfig_may_be_given_inline_and_the_namespace_set(
        apiserver: LocalApiServer, target: KubeTarget, bookinfo: MeshSpec) -> None:
    """``kubernetes:kubeconfig`` holding the kubeconfig itself (as the provider allows),
    and a reconciler keeping its state outside meshdsl-system (``--system-namespace``)."""
    name, namespace = unique("ops"), unique("meshdsl-ops")
    store_rollout(ClusterRolloutStore(target, namespace=namespace, name=name),
                  in_progress(bookinfo, 1))
    run = up({**CANARY_ON, "meshdsl:rollout_state": f"cluster:{name}",
              "meshdsl:system_namespace": namespace,
              "kubernetes:kubeconfig": apiserver.kubeconfig.read_text()})
    assert frontend_split(run) == [("v1", 95), ("v2", 5)]
    assert any("mid-rollout" in m for m in run.messages("info"))


def test_a_reconciler_that_keeps_nothing_there_stops_the_update(
        apiserver: LocalApiServer, target: KubeTarget, bookinfo: MeshSpec) -> None:
    """A mistyped name or namespace must not read as "no rollouts" and reset a canary."""
    name, namespace = unique("real"), unique("meshdsl-elsewhere")
    store_rollout(ClusterRolloutStore(target, namespace=namespace, name=name),
                  in_progress(bookinfo))
    kubeconfig = {"kubernetes:kubeconfig": str(apiserver.kubeconfig)}
    message = error({**CANARY_ON, **kubeconfig, "meshdsl:rollout_state": "cluster:typo"})
    assert message.startswith(
        f"no reconciler named 'typo' keeps state in namespace meshdsl-system on "
        f"{target.server} (no ConfigMap labelled meshdsl.io/reconciler=typo); give "
        "meshdsl:rollout_state cluster:<the name of meshctl reconcile --name>")
    message = error({**CANARY_ON, **kubeconfig, "meshdsl:rollout_state": f"cluster:{name}"})
    assert message.startswith(f"no reconciler named {name!r} keeps state in namespace "
                              "meshdsl-system")


def test_unreadable_rollout_state_in_the_cluster_stops_the_update(
        apiserver: LocalApiServer, target: KubeTarget, bookinfo: MeshSpec) -> None:
    name = unique("broken")
    store = ClusterRolloutStore(target, name=name)
    store_rollout(store, in_progress(bookinfo))
    cm = store.config_map_name("default", "frontend")
    found = target.get(CONFIG_MAP.key("meshdsl-system", cm))
    assert found is not None
    target.apply({"apiVersion": "v1", "kind": "ConfigMap",  # same labels, broken data
                  "metadata": {"name": cm, "namespace": "meshdsl-system",
                               "labels": found["metadata"]["labels"]},
                  "data": {"rollout.json": "{not json"}}, force=True)
    message = error({**CANARY_ON, "meshdsl:rollout_state": f"cluster:{name}",
                     "kubernetes:kubeconfig": str(apiserver.kubeconfig)})
    assert message.startswith(f"cannot read the rollouts in {store.describe()}: rollout "
                              f"state ConfigMap meshdsl-system/{cm} on {target.server} is "
                              "unreadable")
