"""What every fake Deployer of the loop's tests shares: a target of compiled manifests (the
kube kind, no spec needed) that runs nothing of its own."""

from __future__ import annotations


class ManifestTarget:
    needs_spec = False

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def stop(self) -> None:
        """Nothing runs, nothing to stop."""
