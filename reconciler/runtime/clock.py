"""The system clock behind the :class:`~reconciler.ports.Clock` port.

The loop reads time only through the port (timers, durations, timestamps), so a test can
drive it with a fake clock and the decisions in :mod:`.decide` stay pure.
"""

from __future__ import annotations

import time

from reconciler.runtime.records import now_iso

__all__ = ["SystemClock"]


class SystemClock:
    """``monotonic()`` for timers and durations, ``now_iso()`` for recorded timestamps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_iso(self) -> str:
        return now_iso()
