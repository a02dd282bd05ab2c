"""Which push deliveries were already accepted: a replayed request triggers nothing.

A signed request stays valid forever for GitHub and GitLab (their signatures carry no
time) and for ``tolerance`` seconds for the generic format. So every accepted delivery is
remembered by what the signature covers — the provider, the signature header (for the
generic format it holds the signed timestamp) and the body — never by an unsigned header
such as a delivery id, which a replayer could change. A second request with the same
identity is refused (a provider's manual "redeliver" of the same body is refused too; the
reconciler's poll still picks up the commit). Entries expire after ``keep`` seconds
(longer than the generic tolerance) and the cache is bounded.

Pure: the clock is passed in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["ReplayCache", "delivery_key"]

def delivery_key(provider: str, signature: str, body: bytes) -> str:
    """What identifies one delivery: only what its signature covers."""
    digest = hashlib.sha256()
    for part in (provider, signature):
        digest.update(part.encode(errors="replace") + b"\0")
    digest.update(body)
    return digest.hexdigest()


class ReplayCache:
    """Deliveries accepted in the last ``keep`` seconds, at most ``size`` of them."""

    def __init__(self, *, keep: float = 24 * 3600.0, size: int = 10_000) -> None:
        self.keep, self.size = keep, size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str, now: float) -> bool:
        """Record ``key``; ``False`` if it was seen (and not expired) before."""
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if now - when <= self.keep and len(self._seen) < self.size:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True
