"""The two context-manager shapes every long-lived part uses: a Component starts on entry
and stops on exit (also when its start fails half way); a Closeable is ready when built and
closes on exit."""

from __future__ import annotations

import subprocess
import sys
from typing import Self

import pytest

from reconciler.processes.lifecycle import (
    ChildExited,
    Closeable,
    Component,
    NeverReady,
    NotReady,
    wait_ready,
)


class Parts(Component):
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[str] = []
        self._fail = fail

    def start(self) -> Self:
        with self.stopping_on_error():
            self.calls.append("start")
            if self._fail:
                raise RuntimeError("half way")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


class Client(Closeable):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_component_starts_on_entry_and_stops_on_exit_even_on_error() -> None:
    parts = Parts()
    with pytest.raises(ValueError), parts as entered:
        assert entered is parts and parts.calls == ["start"]
        raise ValueError("in the block")
    assert parts.calls == ["start", "stop"]


def test_a_start_that_fails_half_way_is_stopped() -> None:
    parts = Parts(fail=True)
    with pytest.raises(RuntimeError, match="half way"), parts:
        raise AssertionError("never entered")
    assert parts.calls == ["start", "stop"]


def test_a_closeable_is_given_as_it_is_and_closed_once_on_exit() -> None:
    client = Client()
    with pytest.raises(ValueError), client as entered:
        assert entered is client and client.closed == 0
        raise ValueError("in the block")
    assert client.closed == 1


def test_an_exit_and_a_timeout_are_both_never_ready() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait(timeout=30)
    with pytest.raises(NeverReady) as exited:
        wait_ready(lambda: False, timeout=5, what="the child", process=child)
    assert isinstance(exited.value, ChildExited) and exited.value.code == 3
    with pytest.raises(NeverReady) as late:
        wait_ready(lambda: False, timeout=0.05, what="the check")
    assert isinstance(late.value, NotReady) and isinstance(late.value, TimeoutError)
