"""CRDs that ship with meshdsl: Istio's bundle and Gateway API's experimental channel.

They are the default schemas of the offline check (``meshdsl.crdcheck``); see README.md
beside this file for where they come from.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

BUNDLES = ("istio-crd-all.gen.json", "gateway-api-experimental-install.json")


@functools.cache
def bundled() -> tuple[dict[str, Any], ...]:
    """Every CustomResourceDefinition document of the bundles (parsed once per process)."""
    out: list[dict[str, Any]] = []
    for name in BUNDLES:
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        out += [doc for doc in json.loads(text) if isinstance(doc, dict)]
    return tuple(out)
