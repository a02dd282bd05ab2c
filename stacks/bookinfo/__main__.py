"""Pulumi program of the bookinfo stacks: the same mesh.py the reconciler runs, set up for
this stack by the ``meshdsl:*`` keys of ``Pulumi.<stack>.yaml`` (see stacks/README.md)."""

from pathlib import Path

from stacks.program import deploy

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "bookinfo" / "mesh.py"

deploy(PROGRAM)
