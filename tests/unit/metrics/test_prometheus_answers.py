"""Turning Prometheus query answers into one number or no data."""

from __future__ import annotations

import pytest

from reconciler.metrics.prometheus import series_of, value_of
from reconciler.ports import MetricsError


@pytest.mark.parametrize(("data", "expected"), [
    ({"resultType": "vector", "result": []}, None),
    ({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "99.5"]}]}, 99.5),
    ({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "NaN"]}]}, None),
    ({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "+Inf"]}]}, None),
    ({"resultType": "scalar", "result": [1.0, "3"]}, 3.0),
])
def test_values(data: dict[str, object], expected: float | None) -> None:
    assert value_of(data, "q") == expected


@pytest.mark.parametrize(("data", "message"), [
    ({"resultType": "vector", "result": [{"metric": {"a": "1"}, "value": [1, "1"]},
                                         {"metric": {"a": "2"}, "value": [1, "2"]}]},
     "returned 2 series"),
    ({"resultType": "matrix", "result": []}, "returned a matrix"),
    ({"resultType": "vector", "result": [{"metric": {}}]}, "unexpected Prometheus answer"),
    (None, "unexpected Prometheus answer"),
])
def test_errors(data: object, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        value_of(data, "q")


def test_series_keep_labels_and_drop_empty_windows() -> None:
    data = {"resultType": "vector", "result": [
        {"metric": {"destination_version": "v1"}, "value": [1.0, "2.5"]},
        {"metric": {"destination_version": "v2"}, "value": [1.0, "NaN"]}]}
    assert series_of(data, "q") == [({"destination_version": "v1"}, 2.5)]


@pytest.mark.parametrize(("data", "message"), [
    ({"resultType": "scalar", "result": [1.0, "3"]}, "returned a scalar, not a vector"),
    ({"resultType": "vector", "result": [{"value": [1, "1"]}]},
     "unexpected Prometheus answer"),
])
def test_series_errors(data: object, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        series_of(data, "q")
