"""The disk rollout store: atomic files, compare-and-swap, readable errors."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from reconciler.delivery import machine
from reconciler.delivery.phases import RolloutState
from reconciler.ports import RolloutStore, RolloutStoreError, StaleRolloutError
from reconciler.runtime.rollout_store import DiskRolloutStore
from tests.unit.delivery.scenario import drive, make_plan, obs


def a_state(service: str = "reviews") -> RolloutState:
    return drive(make_plan(service=service), [obs(), obs()]).final


def test_save_load_round_trip_and_generations(tmp_path: Path) -> None:
    store = DiskRolloutStore.in_state_dir(tmp_path)
    assert isinstance(store, RolloutStore)
    state = a_state()
    assert store.load("shop", "reviews") is None
    assert store.save(state, expected_generation=None) == 1
    stored = store.load("shop", "reviews")
    assert stored is not None and stored.state == state and stored.generation == 1
    assert (tmp_path / "rollouts" / "shop" / "reviews.json").is_file()
    assert store.save(state, expected_generation=1) == 2
    assert [s.generation for s in store.list_rollouts()] == [2]


def test_a_stale_writer_is_refused(tmp_path: Path) -> None:
    store = DiskRolloutStore(tmp_path)
    state = a_state()
    store.save(state, expected_generation=None)
    paused, _ = machine.pause(state, 99.0)
    store.save(paused, expected_generation=1)  # the CLI wrote in between
    with pytest.raises(StaleRolloutError, match="generation 2, not 1"):
        store.save(state, expected_generation=1)
    with pytest.raises(StaleRolloutError):
        store.save(state, expected_generation=None)
    stored = store.load("shop", "reviews")
    assert stored is not None and stored.state == paused


def test_concurrent_writers_never_lose_an_update(tmp_path: Path) -> None:
    store = DiskRolloutStore(tmp_path)
    state = a_state()
    store.save(state, expected_generation=None)
    wins: list[int] = []

    def writer() -> None:
        for _ in range(20):
            while True:
                current = store.load("shop", "reviews")
                assert current is not None
                try:
                    wins.append(store.save(state, expected_generation=current.generation))
                    break
                except StaleRolloutError:
                    continue

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(wins) == list(range(2, 82))


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    store = DiskRolloutStore(tmp_path)
    store.save(a_state(), expected_generation=None)
    store.save(a_state("ratings"), expected_generation=None)
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["ratings.json",
                                                                     "reviews.json"]
    assert [s.state.service for s in store.list_rollouts()] == ["ratings", "reviews"]
    store.delete("shop", "ratings")
    store.delete("shop", "ratings")
    assert [s.state.service for s in store.list_rollouts()] == ["reviews"]


def test_unreadable_files_say_how_to_recover(tmp_path: Path) -> None:
    store = DiskRolloutStore(tmp_path)
    path = tmp_path / "shop" / "reviews.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(RolloutStoreError, match=r"unreadable .*delete the file"):
        store.load("shop", "reviews")
    path.write_text(json.dumps({"generation": 1, "state": {"schema": "x"}}))
    with pytest.raises(RolloutStoreError, match="schema"):
        store.list_rollouts()


@pytest.mark.parametrize(("namespace", "service"), [("../etc", "x"), ("shop", "a/b"),
                                                    ("Shop", "x"), ("shop", "")])
def test_names_cannot_escape_the_directory(tmp_path: Path, namespace: str,
                                           service: str) -> None:
    with pytest.raises(RolloutStoreError, match="not a Kubernetes name"):
        DiskRolloutStore(tmp_path).load(namespace, service)


def test_export_for_pulumi_stacks_lists_rollouts_in_progress(tmp_path: Path) -> None:
    from stacks.rollout import JsonRolloutState
    store = DiskRolloutStore(tmp_path / "rollouts")
    store.save(a_state(), expected_generation=None)
    done = drive(make_plan(service="ratings"), [obs()] * 8).final
    store.save(done, expected_generation=None)
    store.export_stack_state(tmp_path / "stack.json")
    weights = JsonRolloutState(tmp_path / "stack.json").current_weights()
    assert weights == {("shop", "reviews"): {"v1": 90, "v2": 10}}
    assert not [p for p in (tmp_path).iterdir() if p.name.endswith(".tmp")]
    assert os.access(tmp_path / "stack.json", os.R_OK)
