"""The disk rollout store: the store contract, atomic files, readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.ports import RolloutStoreError
from reconciler.runtime.rollout_store import DiskRolloutStore
from tests.unit.runtime.rollout_store_contract import OpenStore, RolloutStoreContract, a_state


class TestDiskContract(RolloutStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        return lambda: DiskRolloutStore.in_state_dir(tmp_path / "state")


def test_one_file_per_rollout_in_the_state_directory(tmp_path: Path) -> None:
    store = DiskRolloutStore.in_state_dir(tmp_path)
    store.save(a_state(), expected_generation=None)
    path = tmp_path / "rollouts" / "shop" / "reviews.json"
    assert json.loads(path.read_text())["generation"] == 1


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
