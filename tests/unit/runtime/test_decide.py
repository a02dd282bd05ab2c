"""The reconcile decisions, table-driven: (status, control, revision, triggers) -> step."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reconciler.runtime import decide as decide_module
from reconciler.runtime.decide import Decision, Step, Timers, Trigger, decide, due, trigger_name
from reconciler.runtime.records import Attempt, Control, Failure, Result, Status

A, B = "a" * 40, "b" * 40


def attempt(revision: str, result: Result = Result.APPLIED, *, kind: str = "",
            transient: bool = False) -> Attempt:
    failure = Failure(kind, "boom", transient=transient) if kind else None
    return Attempt(revision=revision, trigger="webhook", started_at="t", duration=0.0,
                   result=result, failure=failure)


APPLIED = Status(name="n", applied=attempt(A), last=attempt(A), observed_control=3)
FAILED_B = Status(name="n", applied=attempt(A), last=attempt(B, Result.FAILED, kind="syntax"),
                  observed_control=3)
REJECTED_B = Status(name="n", applied=attempt(A),
                    last=attempt(B, Result.FAILED, kind="rejected"), observed_control=3)
DOWN = Status(name="n", applied=attempt(A),
              last=attempt(A, Result.FAILED, kind="unreachable", transient=True),
              observed_control=3)
SUSPENDED = Status(name="n", applied=attempt(A), last=attempt(A), suspended=True,
                   observed_control=3)
SEEN = Control(generation=3)

TABLE = [
    # status, control, revision, triggers, leading -> decision
    (APPLIED, SEEN, None, {"webhook"}, False, Decision(Step.STAND_BY)),
    (APPLIED, Control(generation=4, suspended=True), None, {"control"}, True,
     Decision(Step.OBEY)),
    (APPLIED, Control(generation=4, suspended=True, rollback=A, rollback_generation=4),
     None, {"control"}, True, Decision(Step.OBEY, rollback=True)),
    (APPLIED, Control(generation=4, suspended=True, rollback=A, rollback_generation=2),
     None, {"control"}, True, Decision(Step.OBEY)),            # that rollback was done
    (APPLIED, Control(generation=9, problem="corrupt"), None, {"webhook"}, True,
     Decision(Step.FETCH)),                                    # a corrupt record: ignored
    (SUSPENDED, SEEN, None, {"drift"}, True, Decision(Step.CHECK_ONLY)),
    (SUSPENDED, SEEN, None, {"webhook"}, True, Decision(Step.IDLE)),
    (APPLIED, SEEN, None, {"control"}, True, Decision(Step.IDLE)),
    (APPLIED, SEEN, None, {"poll"}, True, Decision(Step.FETCH)),
    (APPLIED, SEEN, A, {"poll"}, True, Decision(Step.UNCHANGED, settle=True)),
    (APPLIED, SEEN, A, {"drift"}, True, Decision(Step.RECHECK, heal=True, settle=True)),
    (DOWN, SEEN, A, {"retry"}, True, Decision(Step.RECHECK, heal=True, settle=True)),
    (APPLIED, SEEN, B, {"webhook"}, True, Decision(Step.APPLY)),
    (FAILED_B, SEEN, B, {"poll"}, True, Decision(Step.WAIT)),
    (FAILED_B, SEEN, B, {"drift"}, True, Decision(Step.WAIT)),  # a program error stays
    (REJECTED_B, SEEN, B, {"drift"}, True, Decision(Step.APPLY)),  # the server may change
    (REJECTED_B, SEEN, B, {"poll"}, True, Decision(Step.WAIT)),
]


@pytest.mark.parametrize(("status", "control", "revision", "triggers", "leading", "want"),
                         TABLE)
def test_decide(status: Status, control: Control, revision: str | None,
                triggers: set[str], leading: bool, want: Decision) -> None:
    assert decide(status, control, revision, triggers, leading=leading) == want


def test_without_self_heal_a_recheck_only_reports() -> None:
    got = decide(APPLIED, SEEN, A, {"drift"}, self_heal=False)
    assert got == Decision(Step.RECHECK, heal=False, settle=True)


def test_the_trigger_recorded_is_the_most_specific() -> None:
    assert trigger_name({"drift", "webhook", "retry"}) == "webhook"
    assert trigger_name({Trigger.RETRY, Trigger.DRIFT}) == "retry"
    assert trigger_name(set()) == "none"


def test_timers_fire_what_is_due_and_reschedule_it() -> None:
    timers = Timers.start(100.0, poll=60.0, drift=None)
    assert (timers.poll, timers.drift, timers.control) == (160.0, float("inf"), 100.0)
    timers, fired = due(timers, 100.0, poll=60.0, drift=None, control=2.0)
    assert fired == {Trigger.CONTROL} and timers.control == 102.0
    timers, fired = due(timers, 161.0, poll=60.0, drift=None, control=2.0)
    assert fired == {Trigger.POLL, Trigger.CONTROL} and timers.poll == 221.0


def test_decide_is_pure() -> None:
    """No I/O, no clock: the module imports only the records and the standard library's
    pure parts."""
    tree = ast.parse(Path(decide_module.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "math", "collections.abc", "dataclasses", "enum",
                        "reconciler.runtime.records"}, imported
