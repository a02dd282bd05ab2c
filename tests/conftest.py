"""Shared test helpers: paths of the repository, the examples and ../shared."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from meshdsl.model.spec import MeshSpec

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHARED = REPO.parent / "shared"


def load_example(name: str) -> MeshSpec:
    namespace = runpy.run_path(str(EXAMPLES / name / "mesh.py"))
    return namespace["mesh"].build()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def bookinfo() -> MeshSpec:
    return load_example("bookinfo")
