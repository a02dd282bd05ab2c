"""The offline replay: the example recordings, and the recording format's rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.delivery.errors import RecordingError
from reconciler.delivery.phases import Phase
from reconciler.delivery.simulate import Recording, simulate
from tests.conftest import EXAMPLES, load_example


def recording(name: str) -> Recording:
    return Recording.from_json(json.loads((EXAMPLES / "canary" / name).read_text()))


def test_the_canary_example_is_a_valid_program() -> None:
    from meshdsl.validate import validate
    assert validate(load_example("canary")) == []


def test_healthy_recording_promotes_the_canary_example() -> None:
    spec = load_example("canary")
    sim = simulate(spec, spec.canaries[0], recording("recorded-healthy.json"))
    assert sim.finished and sim.final.phase is Phase.SUCCEEDED and not sim.warnings
    assert [s.stage for s in sim.steps] == [
        "initializing", "mirror 50% 1/1", "header 1/1", "weight 10%", "weight 50%",
        "weight 100%", "weight 100%", "weight 100%", "weight 100%"]
    assert [s.phase.value for s in sim.steps][-3:] == ["halted", "promoting", "succeeded"]
    changed = [s for s in sim.steps if s.virtual_services]
    assert [s.traffic.canary_weight for s in changed] == [0, 0, 0, 10, 50, 100]
    header = next(s for s in sim.steps if s.stage == "header 1/1")
    http = header.virtual_services[0]["spec"]["http"]
    assert http[0]["name"] == "reviews-canary"


def test_faulty_recording_rolls_back() -> None:
    spec = load_example("canary")
    sim = simulate(spec, spec.canaries[0], recording("recorded-faulty.json"))
    assert sim.final.phase is Phase.FAILED
    assert sim.final.traffic.weights == {"v1": 100, "v2": 0}
    assert [s.phase.value for s in sim.steps].count("halted") == 2
    assert "2 failed checks (max 2)" in sim.final.reason


@pytest.mark.parametrize("name", ["recorded-healthy.json", "recorded-faulty.json"])
def test_recordings_also_drive_the_bookinfo_frontend(name: str) -> None:
    spec = load_example("bookinfo")
    sim = simulate(spec, spec.canaries[0], recording(name))
    expected = Phase.SUCCEEDED if "healthy" in name else Phase.FAILED
    assert sim.final.phase is expected
    assert all(vs["metadata"]["name"] == "frontend"
               for s in sim.steps for vs in s.virtual_services)


def test_exhausted_or_missing_values_are_no_data() -> None:
    spec = load_example("bookinfo")
    short = Recording.from_json({"checks": {"request-count": [100],
                                            "request-success-rate": [100]}})
    sim = simulate(spec, spec.canaries[0], short)
    assert sim.final.phase is Phase.FAILED
    assert "no data" in sim.final.reason
    assert any("has no 'request-duration'" in w for w in sim.warnings)
    assert any("ran out after 1 values" in w for w in sim.warnings)


def test_a_gate_that_never_says_yes_stops_the_replay() -> None:
    spec = load_example("canary")
    data: dict[str, Any] = json.loads((EXAMPLES / "canary" / "recorded-healthy.json")
                                      .read_text())
    data["webhooks"] = {"release-gate": [False]}
    data["checks"] = {k: v * 100 for k, v in data["checks"].items()}
    sim = simulate(spec, spec.canaries[0], Recording.from_json(data), max_steps=30)
    assert not sim.finished and sim.final.phase is Phase.HALTED


@pytest.mark.parametrize(("data", "message"), [
    ([], "a recording is a JSON object"),
    ({"checks": {"a": "x"}}, "checks.a must be a list"),
    ({"checks": {"a": [True]}}, "checks.a must be a list"),
    ({"checks": {}, "webhooks": {"g": []}}, "webhooks.g must be a non-empty list"),
    ({"checks": {}, "extra": 1}, "unknown keys"),
])
def test_bad_recordings(data: object, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        Recording.from_json(data)
