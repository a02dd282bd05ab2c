"""Where the bookinfo stack project and its mesh program live (shared with the
integration tests)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLES, REPO

BOOKINFO_PROGRAM = EXAMPLES / "bookinfo" / "mesh.py"
BOOKINFO_PROJECT = REPO / "stacks" / "bookinfo"


def stack_file(stack: str) -> Path:
    """``stacks/bookinfo/Pulumi.<stack>.yaml``."""
    return BOOKINFO_PROJECT / f"Pulumi.{stack}.yaml"
