"""Plans flattened into stages, durations, and the stage-shape digest."""

from __future__ import annotations

import pytest

from meshdsl.model.canary import HeaderStage, Step
from meshdsl.model.matching import Header, Match, Uri
from reconciler.delivery.errors import PlanError
from reconciler.delivery.stages import StageKind, parse_duration, stages, stages_digest
from tests.unit.delivery.scenario import make_plan


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("1.5s", 1.5),
    (" 5m ", 300), ("0s", 0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1d", "1m 30s", "-1s", "1mm"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(PlanError, match="not a duration"):
        parse_duration(text)


def test_stage_order_and_waits() -> None:
    plan = make_plan(mirror_stage=True, header_stage=True, interval="30s",
                     steps=[Step(weight=10, pause="5m"), Step(weight=100)])
    shape = stages(plan)
    assert [(s.kind, s.weight, s.wait, s.label) for s in shape] == [
        (StageKind.MIRROR, 0, 30, "mirror 30% 1/1"),
        (StageKind.HEADER, 0, 30, "header 1/1"),
        (StageKind.WEIGHT, 10, 300, "weight 10%"),
        (StageKind.WEIGHT, 100, 30, "weight 100%")]


def test_a_header_stage_must_select_something() -> None:
    for match in (Match(), Uri(prefix="/")):
        with pytest.raises(PlanError, match="selects every request"):
            stages(make_plan(header_stage=HeaderStage(match=match)))


def test_interval_must_be_positive() -> None:
    with pytest.raises(PlanError, match="more than 0s"):
        stages(make_plan(interval="0s"))


def test_digest_follows_shape_not_timing_or_thresholds() -> None:
    base = stages_digest(make_plan())
    assert stages_digest(make_plan(interval="5m", max_failed_checks=5)) == base
    assert stages_digest(make_plan(steps=[Step(weight=w, pause="9m")
                                          for w in (5, 10, 50, 100)])) == base
    assert stages_digest(make_plan(steps=[5, 10, 100])) != base
    assert stages_digest(make_plan(header_stage=True)) != base
    other = make_plan(header_stage=HeaderStage(match=Header("x-beta", exact="yes")))
    assert stages_digest(other) != stages_digest(make_plan(header_stage=True))
