"""The cluster rollout store against a real kube-apiserver 1.20.2: the store contract the
disk store passes too, the rollout driver's tests, the API server's compare-and-swap under
writers racing between our read and our write, readable errors, and ``meshctl canary`` on
rollouts kept in ConfigMaps.

Every test uses a reconciler name of its own, so its ConfigMaps in ``meshdsl-system`` are
its own (the server is shared by the session).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from meshdsl.compile.manifest import CONFIG_MAP, ResourceKey
from reconciler.cli import _register, app
from reconciler.delivery import machine
from reconciler.delivery.phases import Phase, RolloutState
from reconciler.ports import RolloutStoreError, StaleRolloutError
from reconciler.processes.ports import free_port
from reconciler.runtime.rollout_store import ClusterRolloutStore, DiskRolloutStore
from reconciler.runtime.status import ClusterStore, Status
from reconciler.targets.kube import KubeTarget
from reconciler.testing.apiserver import LocalApiServer
from tests.integration.conftest import unique
from tests.unit.runtime import test_rollouts
from tests.unit.runtime.rollout_store_contract import OpenStore, RolloutStoreContract, a_state

pytestmark = pytest.mark.integration

SYSTEM = "meshdsl-system"


@pytest.fixture
def targets(apiserver: LocalApiServer) -> Iterator[Callable[..., KubeTarget]]:
    """Opens targets on the test API server (each one a client of its own), closed after."""
    opened: list[KubeTarget] = []

    def open_target(**kwargs: Any) -> KubeTarget:
        opened.append(KubeTarget.from_kubeconfig(str(apiserver.kubeconfig), **kwargs))
        return opened[-1]

    yield open_target
    for target in opened:
        target.close()


class TestClusterContract(RolloutStoreContract):
    writes_per_writer = 10

    @pytest.fixture
    def open_store(self, targets: Callable[..., KubeTarget]) -> OpenStore:
        name = unique("contract")
        return lambda: ClusterRolloutStore(targets(), name=name)


DRIVER_TESTS = [test for name, test in vars(test_rollouts).items() if name.startswith("test_")
                and list(inspect.signature(test).parameters) == ["tmp_path"]]


@pytest.mark.parametrize("driver_test", DRIVER_TESTS, ids=lambda test: test.__name__)
def test_the_rollout_driver_on_the_cluster_store(
        driver_test: Callable[[Path], None], targets: Callable[..., KubeTarget],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The rollout driver's own tests (they run on the disk store in ``test_rollouts``),
    each with a cluster store of its own in place of the disk store."""
    name = unique("driver")
    monkeypatch.setattr(test_rollouts, "DiskRolloutStore",
                        lambda _directory: ClusterRolloutStore(targets(), name=name))
    driver_test(tmp_path)


def config_map(target: KubeTarget, name: str) -> dict[str, Any]:
    found = target.get(CONFIG_MAP.key(SYSTEM, name))
    assert found is not None, name
    return found


def test_one_labelled_config_map_per_rollout_holding_the_disk_json(
        targets: Callable[..., KubeTarget], tmp_path: Path) -> None:
    name, target = unique("layout"), targets()
    store = ClusterRolloutStore(target, name=name)
    state = a_state()
    store.save(state, expected_generation=None)
    disk = DiskRolloutStore(tmp_path)
    disk.save(state, expected_generation=None)

    cm_name = store.config_map_name("shop", "reviews")
    assert cm_name == f"meshdsl-rollout-{name}.shop.reviews"
    found = config_map(target, cm_name)
    assert found["data"] == {"rollout.json": disk.path("shop", "reviews").read_text()}
    assert found["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "meshdsl", "meshdsl.io/reconciler": name,
        "meshdsl.io/role": "rollout", "meshdsl.io/rollout-namespace": "shop",
        "meshdsl.io/rollout-service": "reviews"}
    assert store.describe() == (f"rollout ConfigMaps {SYSTEM}/meshdsl-rollout-{name}.* on "
                                f"{target.server}")


def test_names_that_cannot_name_a_config_map_are_refused(
        targets: Callable[..., KubeTarget]) -> None:
    longest = ClusterRolloutStore(targets(), name="r" * 63)
    assert len(longest.config_map_name("n" * 63, "s" * 63)) == 207  # always valid (<= 253)
    for name, namespace, service in [("Default", "shop", "x"), ("a..b", "shop", "x"),
                                     ("r", "shop.eu", "x"), ("r", "shop", "-x"),
                                     ("r" * 64, "shop", "x"), ("r", "shop", "")]:
        with pytest.raises(RolloutStoreError, match="cannot name a rollout ConfigMap"):
            ClusterRolloutStore(targets(), name=name).load(namespace, service)


# --- compare-and-swap against writers racing between our read and our write ----------------


def meddle_after_read(monkeypatch: pytest.MonkeyPatch, target: KubeTarget,
                      meddle: Callable[[], object]) -> None:
    """Right after the store's next read of a ConfigMap, someone else writes it."""
    real_get = target.get

    def get(key: ResourceKey) -> Any:
        found = real_get(key)
        monkeypatch.setattr(target, "get", real_get)
        meddle()
        return found

    monkeypatch.setattr(target, "get", get)


def kept(store: ClusterRolloutStore) -> tuple[RolloutState, int] | None:
    """The stored rollout of shop/reviews and its generation (None: none stored)."""
    stored = store.load("shop", "reviews")
    return None if stored is None else (stored.state, stored.generation)


def racing_stores(targets: Callable[..., KubeTarget], prefix: str
                  ) -> tuple[KubeTarget, ClusterRolloutStore, ClusterRolloutStore]:
    """Our target and store, and another writer's store, for one new reconciler name."""
    name, ours = unique(prefix), targets()
    return ours, ClusterRolloutStore(ours, name=name), ClusterRolloutStore(targets(), name=name)


def test_a_write_between_our_read_and_our_write_is_not_overwritten(
        targets: Callable[..., KubeTarget], monkeypatch: pytest.MonkeyPatch) -> None:
    ours = targets()
    store = ClusterRolloutStore(ours, name=unique("race"))
    state = a_state()
    store.save(state, expected_generation=None)
    cm_name = store.config_map_name("shop", "reviews")
    paused, _ = machine.pause(state, 99.0)
    # someone writes the ConfigMap directly (not through a store, another field manager)
    # with the generation our write is about to claim: only the resourceVersion tells
    someone = targets(field_manager="kubectl-edit")
    written = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": cm_name, "namespace": SYSTEM},
               "data": {"rollout.json": json.dumps({"generation": 2,
                                                    "state": paused.to_json()})}}
    meddle_after_read(monkeypatch, ours, lambda: someone.apply(written, force=True))
    aborted, _ = machine.abort(state, 99.0)
    with pytest.raises(StaleRolloutError, match=f"changed in ConfigMap {SYSTEM}/{cm_name}"):
        store.save(aborted, expected_generation=1)
    assert kept(store) == (paused, 2)


def test_a_creation_between_our_read_and_our_write_is_not_overwritten(
        targets: Callable[..., KubeTarget], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, store, theirs = racing_stores(targets, "create-race")
    state = a_state()
    paused, _ = machine.pause(state, 99.0)
    meddle_after_read(monkeypatch, ours,
                      lambda: theirs.save(paused, expected_generation=None))
    with pytest.raises(StaleRolloutError):
        store.save(state, expected_generation=None)
    assert kept(store) == (paused, 1)


def test_a_deletion_between_our_read_and_our_write_is_not_undone(
        targets: Callable[..., KubeTarget], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, store, theirs = racing_stores(targets, "delete-race")
    state = a_state()
    store.save(state, expected_generation=None)
    meddle_after_read(monkeypatch, ours, lambda: theirs.delete("shop", "reviews"))
    with pytest.raises(StaleRolloutError):
        store.save(state, expected_generation=1)
    assert store.load("shop", "reviews") is None


# --- what is listed -----------------------------------------------------------------------


def test_only_this_reconcilers_rollouts_are_listed(
        targets: Callable[..., KubeTarget]) -> None:
    name, other = unique("mine"), unique("other")
    mine = ClusterRolloutStore(targets(), name=name)
    theirs = ClusterRolloutStore(targets(), name=other)
    for service in ("reviews", "details"):
        mine.save(a_state(service), expected_generation=None)
    theirs.save(a_state("reviews"), expected_generation=None)
    theirs.save(a_state("ratings"), expected_generation=None)
    status = ClusterStore(targets(), name)  # the same reconciler's other ConfigMaps
    status.save_status(Status(name=name))
    status.save_output("0123abcd", {"manifests": []})
    status.prune_outputs(set())  # prunes outputs, never rollouts
    assert status.load_output("0123abcd") is None
    assert [s.state.key for s in mine.list_rollouts()] == [("shop", "details"),
                                                           ("shop", "reviews")]
    assert [s.state.key for s in theirs.list_rollouts()] == [("shop", "ratings"),
                                                             ("shop", "reviews")]
    mine.delete("shop", "reviews")
    assert [s.state.key for s in mine.list_rollouts()] == [("shop", "details")]
    assert theirs.load("shop", "reviews") is not None


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [{"rollout.json": "{not json"},
                                  {"rollout.json": json.dumps({"generation": 1,
                                                               "state": {"schema": "x"}})},
                                  {"something": "else"}])
def test_an_unreadable_config_map_says_which_and_how_to_recover(
        targets: Callable[..., KubeTarget], data: dict[str, str]) -> None:
    name, target = unique("corrupt"), targets()
    store = ClusterRolloutStore(target, name=name)
    store.save(a_state(), expected_generation=None)
    cm_name = store.config_map_name("shop", "reviews")
    labels = config_map(target, cm_name)["metadata"]["labels"]
    store.delete("shop", "reviews")  # and someone writes one of the same name and labels
    targets(field_manager="kubectl-edit").apply(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": cm_name, "namespace": SYSTEM, "labels": labels}, "data": data},
        force=True)
    pattern = (rf"rollout state ConfigMap {SYSTEM}/{cm_name} on https://127\.0\.0\.1:\d+ is "
               rf"unreadable \(.+\); fix or delete it \(kubectl -n {SYSTEM} delete configmap "
               rf"{cm_name}\) \(the rollout restarts from its first stage\)")
    for read in (lambda: store.load("shop", "reviews"), store.list_rollouts,
                 lambda: store.save(a_state(), expected_generation=1)):
        with pytest.raises(RolloutStoreError, match=pattern):
            read()
    store.delete("shop", "reviews")  # the way out: the rollout starts over
    assert store.save(a_state(), expected_generation=None) == 1


@pytest.fixture
def dead_kubeconfig(apiserver: LocalApiServer, tmp_path: Path) -> tuple[Path, str]:
    """The test server's kubeconfig, pointed at a 127.0.0.1 port nobody listens on."""
    config = yaml.safe_load(apiserver.kubeconfig.read_text())
    server = f"https://127.0.0.1:{free_port()}"
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    path = tmp_path / "dead.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, server


def test_an_unreachable_server_is_a_one_line_store_error(
        dead_kubeconfig: tuple[Path, str]) -> None:
    path, server = dead_kubeconfig
    with KubeTarget.from_kubeconfig(str(path), attempts=1) as target:
        store = ClusterRolloutStore(target, name="default")
        cm_name = store.config_map_name("shop", "reviews")
        for doing, call in [
                ("read", lambda: store.load("shop", "reviews")),
                ("read", lambda: store.save(a_state(), expected_generation=None)),
                ("delete", lambda: store.delete("shop", "reviews"))]:
            with pytest.raises(RolloutStoreError) as caught:
                call()
            message = str(caught.value)
            assert message.startswith(f"cannot {doing} rollout state ConfigMap "
                                      f"{SYSTEM}/{cm_name}: ")
            assert f"cannot reach the Kubernetes API server at {server}" in message
            assert "\n" not in message
        with pytest.raises(RolloutStoreError, match=f"cannot list rollout state ConfigMap "
                           f"{SYSTEM}/meshdsl-rollout-default\\.\\*: cannot reach"):
            store.list_rollouts()


def test_a_forbidden_read_names_the_config_map_and_the_server(
        targets: Callable[..., KubeTarget]) -> None:
    store = ClusterRolloutStore(targets(impersonate="nobody"), name="default")
    with pytest.raises(RolloutStoreError, match=(
            rf"^cannot read rollout state ConfigMap {SYSTEM}/meshdsl-rollout-default\.shop\."
            r"reviews on https://127\.0\.0\.1:\d+: 403 Forbidden: ")):
        store.load("shop", "reviews")


# --- meshctl canary on rollouts in the cluster ------------------------------------------


def meshctl(*args: str) -> tuple[int, str]:
    _register()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_canary_status_and_promote_in_the_cluster(
        apiserver: LocalApiServer, targets: Callable[..., KubeTarget]) -> None:
    name = unique("cli")
    store = ClusterRolloutStore(targets(), name=name)
    store.save(a_state(), expected_generation=None)
    ClusterRolloutStore(targets(), name=unique("cli-other")).save(
        a_state("ratings"), expected_generation=None)
    cluster = ["--state", "cluster", "--kubeconfig", str(apiserver.kubeconfig),
               "--name", name]

    code, out = meshctl("canary", "status", *cluster)
    assert code == 0, out
    assert "shop/reviews  progressing  stage 2/4 (weight 10%)" in out
    assert "v1=90%, v2=10%" in out and "ratings" not in out

    code, out = meshctl("canary", "promote", "reviews", *cluster)
    assert code == 0, out
    assert "promote -> promoting (v1=0%, v2=100%)" in out
    stored = store.load("shop", "reviews")
    assert stored is not None and stored.generation == 2
    assert stored.state.phase is Phase.PROMOTING

    # --kubeconfig alone selects the cluster; the system namespace can be named
    code, out = meshctl("canary", "status", "shop/reviews", "-o", "json",
                        "--kubeconfig", str(apiserver.kubeconfig), "--name", name,
                        "--system-namespace", SYSTEM)
    assert code == 0, out
    (rollout,) = json.loads(out)["rollouts"]
    assert rollout["phase"] == "promoting" and rollout["manual"] == "promote"

    code, out = meshctl("canary", "status", *cluster[:4], "--name", unique("nobody"))
    assert code == 0 and "no rollouts in rollout ConfigMaps meshdsl-system/" in out
    code, out = meshctl("canary", "abort", "shop/details", *cluster)
    assert code == 1 and "no rollout of shop/details" in out


def test_canary_commands_on_an_unreachable_cluster_exit_2(
        dead_kubeconfig: tuple[Path, str]) -> None:
    path, server = dead_kubeconfig
    for args in (["status"], ["pause", "shop/reviews"], ["resume", "reviews"]):
        code, out = meshctl("canary", *args, "--kubeconfig", str(path))
        assert code == 2, out
        assert f"cannot reach the Kubernetes API server at {server}" in out
        assert "Traceback" not in out
