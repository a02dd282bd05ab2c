from __future__ import annotations

import pytest

from meshdsl.compile.envoy.protos import EnvoyCompileError, duration, fraction, whole_seconds


@pytest.mark.parametrize(("given", "expected"), [
    ("10s", "10s"),
    ("2s", "2s"),
    ("1.5s", "1.5s"),
    ("100ms", "0.1s"),
    ("250ms", "0.25s"),
    ("1m", "60s"),
    ("1h30m", "5400s"),
    ("24h", "86400s"),
    ("0s", "0s"),
    ("1500us", "0.0015s"),
])
def test_duration_is_protobuf_json(given: str, expected: str) -> None:
    assert duration(given) == expected


@pytest.mark.parametrize("bad", ["", "ten seconds", "10", "5x", "1s garbage"])
def test_bad_duration_says_how_to_write_one(bad: str) -> None:
    with pytest.raises(EnvoyCompileError, match="10s"):
        duration(bad)


@pytest.mark.parametrize(("percent", "numerator"), [
    (None, 1_000_000), (100, 1_000_000), (50, 500_000), (0.1, 1_000), (0, 0), (12.5, 125_000),
])
def test_fraction_is_in_millionths(percent: float | None, numerator: int) -> None:
    assert fraction(percent) == {"numerator": numerator, "denominator": "MILLION"}


def test_cors_max_age_is_whole_seconds() -> None:
    assert whole_seconds("24h") == "86400"
    assert whole_seconds("1.9s") == "1"
