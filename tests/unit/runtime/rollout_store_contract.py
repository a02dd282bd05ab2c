"""What every :class:`~reconciler.ports.RolloutStore` must do, written once for all of them.

A test module subclasses :class:`RolloutStoreContract` (the class name starting with
``Test``) and gives it an ``open_store`` fixture: a callable that opens a store over one
backing of its own for the test (a directory, a reconciler name in the cluster). Calling it
twice opens two stores over the same backing — a restarted reconciler, or ``meshctl
canary`` next to the running loop. The disk store runs it in
``tests/unit/runtime/test_rollout_store.py``, the cluster store against a real API server
in ``tests/integration/test_rollout_store_cluster.py`` (which also runs the rollout
driver's tests, ``tests/unit/runtime/test_rollouts.py``, on the cluster store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.delivery import machine
from reconciler.delivery.phases import RolloutState
from reconciler.ports import RolloutStore, StaleRolloutError
from reconciler.runtime.rollout_store import ClusterRolloutStore, DiskRolloutStore
from tests.unit.delivery.scenario import drive, make_plan, obs

OpenStore = Callable[[], DiskRolloutStore | ClusterRolloutStore]


def a_state(service: str = "reviews", namespace: str = "shop") -> RolloutState:
    """A rollout two steps in (stage 2/4, 10% to v2)."""
    return drive(make_plan(service=service, namespace=namespace), [obs(), obs()]).final


class RolloutStoreContract:
    writers = 4
    writes_per_writer = 20

    def test_save_load_round_trip_and_generations(self, open_store: OpenStore) -> None:
        store = open_store()
        assert isinstance(store, RolloutStore)
        state = a_state()
        assert store.load("shop", "reviews") is None
        assert store.save(state, expected_generation=None) == 1
        stored = store.load("shop", "reviews")
        assert stored is not None and stored.state == state and stored.generation == 1
        assert store.save(state, expected_generation=1) == 2
        assert [s.generation for s in store.list_rollouts()] == [2]
        again = open_store().load("shop", "reviews")  # persisted, not cached
        assert again is not None and (again.state, again.generation) == (state, 2)

    def test_a_stale_writer_is_refused(self, open_store: OpenStore) -> None:
        store, cli = open_store(), open_store()
        state = a_state()
        store.save(state, expected_generation=None)
        paused, _ = machine.pause(state, 99.0)
        cli.save(paused, expected_generation=1)  # the CLI wrote in between
        with pytest.raises(StaleRolloutError, match="generation 2, not 1"):
            store.save(state, expected_generation=1)
        with pytest.raises(StaleRolloutError):
            store.save(state, expected_generation=None)
        stored = store.load("shop", "reviews")
        assert stored is not None and stored.state == paused and stored.generation == 2

    def test_concurrent_writers_never_lose_an_update(self, open_store: OpenStore) -> None:
        open_store().save(a_state(), expected_generation=None)
        wins: list[int] = []

        def writer() -> None:
            store = open_store()
            for _ in range(self.writes_per_writer):
                while True:
                    current = store.load("shop", "reviews")
                    assert current is not None
                    try:
                        wins.append(store.save(current.state,
                                               expected_generation=current.generation))
                        break
                    except StaleRolloutError:
                        continue

        threads = [threading.Thread(target=writer) for _ in range(self.writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        total = self.writers * self.writes_per_writer
        assert sorted(wins) == list(range(2, total + 2))

    def test_list_is_sorted_and_delete_is_idempotent(self, open_store: OpenStore) -> None:
        store = open_store()
        for namespace, service in [("shop", "reviews"), ("books", "ratings"),
                                   ("shop", "details"), ("books", "reviews")]:
            store.save(a_state(service, namespace), expected_generation=None)
        assert [s.state.key for s in store.list_rollouts()] == [
            ("books", "ratings"), ("books", "reviews"), ("shop", "details"),
            ("shop", "reviews")]
        store.delete("shop", "details")
        store.delete("shop", "details")
        store.delete("shop", "never-stored")
        assert store.load("shop", "details") is None
        assert [s.state.key for s in open_store().list_rollouts()] == [
            ("books", "ratings"), ("books", "reviews"), ("shop", "reviews")]
        assert store.save(a_state("details"), expected_generation=None) == 1  # starts over

    def test_export_for_pulumi_stacks_lists_rollouts_in_progress(
            self, open_store: OpenStore, tmp_path: Path) -> None:
        from stacks.rollout import JsonRolloutState
        store = open_store()
        store.save(a_state(), expected_generation=None)
        done = drive(make_plan(service="ratings"), [obs()] * 8).final
        store.save(done, expected_generation=None)
        store.export_stack_state(tmp_path / "stack.json")
        weights = JsonRolloutState(tmp_path / "stack.json").current_weights()
        assert weights == {("shop", "reviews"): {"v1": 90, "v2": 10}}
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
