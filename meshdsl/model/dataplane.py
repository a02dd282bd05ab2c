"""Which data plane runs each namespace: Envoy sidecars (the classic APIs) or ambient
(ztunnel at L4 plus a waypoint Envoy for L7, configured through the Gateway API).

The mode is a property of a namespace, with a mesh-wide default; ``sidecar`` is the
default so that a program that never says ``mode=`` compiles exactly as before. The choice
lives beside the namespaces (not inside :class:`NamespaceSpec`) because a namespace can be
ambient without meshdsl creating it — the mesh's own namespace, for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from meshdsl.model.base import Frozen, SourceLocation
from meshdsl.model.canary import CanaryPlan

Mode = Literal["sidecar", "ambient"]
MODES: tuple[Mode, ...] = ("sidecar", "ambient")
DEFAULT_WAYPOINT = "waypoint"


class NamespaceMode(Frozen):
    """One namespace's data plane; ``waypoint`` names its waypoint Gateway (None: L4 only,
    no waypoint — then nothing at L7 can be enforced)."""

    mode: Mode
    waypoint: str | None = DEFAULT_WAYPOINT
    source: SourceLocation | None = Field(default=None, exclude=True, repr=False)


class DataPlane(Frozen):
    default: Mode = "sidecar"
    default_waypoint: str | None = DEFAULT_WAYPOINT
    namespaces: dict[str, NamespaceMode] = Field(default_factory=dict)

    def mode_of(self, namespace: str) -> Mode:
        declared = self.namespaces.get(namespace)
        return declared.mode if declared is not None else self.default

    def is_ambient(self, namespace: str) -> bool:
        return self.mode_of(namespace) == "ambient"

    def waypoint_of(self, namespace: str) -> str | None:
        """The waypoint Gateway that serves an ambient namespace (None for sidecar or L4)."""
        if not self.is_ambient(namespace):
            return None
        declared = self.namespaces.get(namespace)
        if declared is not None and declared.mode == "ambient":
            return declared.waypoint
        return self.default_waypoint

    @property
    def any_ambient(self) -> bool:
        return self.default == "ambient" or any(
            n.mode == "ambient" for n in self.namespaces.values())

    def judged(self, plans: Sequence[CanaryPlan]) -> list[CanaryPlan]:
        """Canary plans judged on the metrics of the proxy that sees their traffic: the
        waypoint in an ambient namespace, the destination's sidecar otherwise."""
        return [p.model_copy(update={"reporter": "waypoint" if self.is_ambient(p.namespace)
                                     else "destination"}) for p in plans]

    def source_of(self, namespace: str) -> SourceLocation | None:
        declared = self.namespaces.get(namespace)
        return declared.source if declared is not None else None


def check_mode(mode: str) -> Mode:
    """The mode a user wrote, or a ValueError naming the accepted ones."""
    for known in MODES:
        if mode == known:
            return known
    raise ValueError(f"unknown data-plane mode {mode!r}: use one of {', '.join(MODES)}")
