"""The replay cache: once per delivery, expiry, bound; keys only from signed content."""

from __future__ import annotations

from reconciler.sources.replay import ReplayCache, delivery_key


def test_first_time_then_replayed_then_expired() -> None:
    cache = ReplayCache(keep=10.0, size=100)
    assert cache.first_time("a", now=0.0)
    assert not cache.first_time("a", now=5.0)
    assert cache.first_time("a", now=20.0)         # expired, then seen afresh


def test_bounded() -> None:
    cache = ReplayCache(keep=1e9, size=3)
    for key in "abcd":
        assert cache.first_time(key, now=0.0)
    assert len(cache._seen) <= 3
    assert cache.first_time("a", now=0.0)           # the oldest was dropped


def test_key_covers_provider_signature_and_body_only() -> None:
    base = delivery_key("github", "sha256=x", b"{}")
    assert base == delivery_key("github", "sha256=x", b"{}")
    assert base != delivery_key("generic", "sha256=x", b"{}")
    assert base != delivery_key("github", "sha256=y", b"{}")
    assert base != delivery_key("github", "sha256=x", b"{ }")
