"""The status/history model (pure) and both stores' persistence rules."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.runtime.status import (
    HISTORY_LIMIT,
    Attempt,
    Control,
    DiskStore,
    DriftReport,
    Failure,
    Result,
    StateLockedError,
    Status,
    outputs_to_keep,
)


def attempt(rev: str, result: Result = Result.APPLIED, *, failure: Failure | None = None,
            when: str = "2024-01-01T00:00:00") -> Attempt:
    return Attempt(revision=rev, trigger="webhook", started_at=when, duration=0.5,
                   result=result, failure=failure, mesh="demo", changes={"created": 1})


BROKEN = Failure("syntax", "syntax error in mesh.py: invalid syntax", location="mesh.py:3")


def test_success_moves_applied_failure_keeps_it() -> None:
    status = Status(name="default").record(attempt("a" * 40))
    assert status.applied_revision == "a" * 40
    status = status.record(attempt("b" * 40, Result.FAILED, failure=BROKEN))
    assert status.applied_revision == "a" * 40          # the last good state stays
    assert status.last is not None and status.last.failure == BROKEN
    status = status.record(attempt("c" * 40))
    assert status.applied_revision == "c" * 40
    assert [a.revision[0] for a in status.history] == ["c", "b", "a"]


def test_identical_failures_fold_into_one_entry() -> None:
    status = Status(name="default")
    for i in range(5):
        status = status.record(attempt("b" * 40, Result.FAILED, failure=BROKEN,
                                       when=f"2024-01-01T00:00:0{i}"))
    assert len(status.history) == 1
    assert status.history[0].count == 5
    assert status.history[0].started_at == "2024-01-01T00:00:00"
    other = Failure("exception", "boom", location="mesh.py:9")
    status = status.record(attempt("b" * 40, Result.FAILED, failure=other))
    assert len(status.history) == 2


def test_heal_does_not_move_applied_and_history_is_bounded() -> None:
    status = Status(name="default").record(attempt("a" * 40))
    healed = status.record(attempt("a" * 40, Result.HEALED))
    assert healed.applied == status.applied
    for i in range(HISTORY_LIMIT + 10):
        healed = healed.record(attempt(f"{i:040d}"))
    assert len(healed.history) == HISTORY_LIMIT


def test_json_round_trip_and_bounds() -> None:
    long = Failure("validation", "x" * 5000, location="mesh.py:1",
                   details=tuple(f"line {i}" for i in range(100)))
    status = (Status(name="n", source="s", target="t").record(attempt("a" * 40))
              .record(attempt("b" * 40, Result.FAILED, failure=long)))
    status = Status.from_dict(json.loads(json.dumps(status.to_dict())))
    assert status.applied_revision == "a" * 40
    assert status.last is not None and status.last.failure is not None
    assert len(status.last.failure.message) == 2000
    assert len(status.last.failure.details) == 30
    drifted = Status(name="n", drift=DriftReport("now", ("VirtualService/ns/a",), True),
                     suspended=True, suspend_reason="rollback", observed_control=3,
                     in_progress="c" * 40)
    assert Status.from_dict(json.loads(json.dumps(drifted.to_dict()))) == drifted


def test_find_and_outputs_to_keep() -> None:
    status = Status(name="n")
    for i in range(15):
        status = status.record(attempt(f"{i:x}" * 40))
    status = status.record(attempt("f" * 40, Result.FAILED, failure=BROKEN))
    assert status.find("e") is not None and status.find("f") is None
    keep = outputs_to_keep(status, limit=10)
    assert len(keep) == 10 and "e" * 40 in keep and "0" * 40 not in keep


def test_control_requests_count_generations() -> None:
    control = Control().request(suspended=True, reason="r", requested_by="me")
    control = control.request(suspended=False, reason=None)
    assert control.generation == 2 and not control.suspended
    assert Control.from_dict(json.loads(json.dumps(control.to_dict()))) == control


def test_disk_store(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "state")
    assert store.load_status() is None
    assert store.load_control() == Control()
    status = Status(name="n").record(attempt("a" * 40))
    store.save_status(status)
    assert store.load_status() == status
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith(".")]
    output = {"mesh": "demo", "manifests": [{"kind": "VirtualService", "n": i}
                                           for i in range(3)]}
    store.save_output("a" * 40, output)
    store.save_output("b" * 40, output)
    assert store.load_output("a" * 40) == output
    assert store.load_output("c" * 40) is None
    store.prune_outputs({"b" * 40})
    assert store.load_output("a" * 40) is None and store.load_output("b" * 40) == output


def test_disk_store_writes_are_atomic_under_concurrent_readers(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    stop = threading.Event()
    errors: list[Exception] = []

    def read() -> None:
        while not stop.is_set():
            try:
                store.load_status()
            except Exception as exc:  # a torn read would be a JSON error
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    status = Status(name="n")
    for i in range(200):
        status = status.record(attempt(f"{i:040d}"))
        store.save_status(status)
    stop.set()
    reader.join()
    assert errors == []


def test_disk_store_lock_is_exclusive(tmp_path: Path) -> None:
    first, second = DiskStore(tmp_path), DiskStore(tmp_path)
    first.lock()
    with pytest.raises(StateLockedError):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("{not json")
    with pytest.raises(Exception, match="cannot read"):
        DiskStore(tmp_path).load_status()


def test_old_failures_drop_their_details_so_the_status_stays_small() -> None:
    noisy = Failure("exception", "boom", location="mesh.py:1",
                    details=tuple("x" * 500 for _ in range(30)))
    status = Status(name="n")
    for i in range(HISTORY_LIMIT):
        status = status.record(attempt(f"{i:040d}", Result.FAILED,
                                       failure=replace(noisy, message=f"boom {i}")))
    assert status.history[0].failure is not None and status.history[0].failure.details
    assert all(a.failure is not None and not a.failure.details for a in status.history[5:])
    assert all(a.failure is not None and a.failure.location for a in status.history)
    assert len(json.dumps(status.to_dict())) < 200_000


def test_a_suspend_keeps_a_rollback_the_reconciler_has_not_seen() -> None:
    alice = Control().request(suspended=True, rollback="a" * 40, reason="rollback")
    bob = alice.request(suspended=True, rollback=None, reason="freeze")
    assert bob.generation == 2 and bob.rollback == "a" * 40
    assert bob.wants_rollback(observed=0) and not bob.wants_rollback(observed=1)
    resumed = bob.request(suspended=False, rollback=None)
    assert resumed.rollback is None and not resumed.wants_rollback(observed=0)


def test_disk_control_requests_are_compare_and_swap(tmp_path: Path) -> None:
    """Two writers at once, 50 requests each: every one lands (no lost update)."""
    import threading

    from reconciler.runtime.status import request_control

    store = DiskStore(tmp_path)

    def writer(who: str) -> None:
        for _ in range(50):
            request_control(DiskStore(tmp_path), suspended=True, reason=who, rollback=None)

    threads = [threading.Thread(target=writer, args=(w,)) for w in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.load_control().generation == 100


def test_a_corrupt_control_record_is_reported_and_replaced_by_a_request(
        tmp_path: Path) -> None:
    from reconciler.runtime.status import request_control

    store = DiskStore(tmp_path)
    store.save_status(Status(name="n", observed_control=7))
    (tmp_path / "control.json").write_text("{not json")
    control = store.load_control()
    assert control.problem.startswith("the control record cannot read") or (
        "not valid JSON" in control.problem)
    assert "meshctl resume" in control.problem
    repaired = request_control(store, suspended=False, rollback=None)
    assert repaired.generation == 8          # past what the reconciler observed
    assert store.load_control() == repaired and not store.load_control().problem
