"""What metadata alone proves: that a live object is still exactly what we applied.

A reconcile of an unchanged mesh should not have to read every object whole. Two pieces of
metadata settle it:

- the ``meshdsl.io/desired-hash`` annotation equals the hash of the desired manifest — the
  live object holds what the program says now (see :mod:`reconciler.core.diff`);
- ``metadata.managedFields`` shows that our field manager's ``Apply`` entry still owns
  every field we set, and no other manager owns anything but ``status`` or labels and
  annotations we do not set. Any other writer leaves a trace there: a field someone
  changed moves to their entry, a field someone removed leaves ours.

So the runtime lists objects as ``PartialObjectMetadata`` and reads whole only those whose
proof fails. The proof is conservative: anything it cannot match up counts as "not
proven", which costs a read, never a missed change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.core.diff import applied_hash, scalar_equal

__all__ = ["settled"]

_IDENTITY = ("apiVersion", "kind")
_STATUS = "f:status"


def _owns(desired: Any, node: Mapping[str, Any], *, granular: bool = False) -> bool:
    """Does a ``fieldsV1`` node own every field of ``desired``? Conservative: anything it
    cannot match up (an index-keyed list, an unmatched list element) counts as "no".
    ``granular``: maps known never to be atomic (``metadata``, labels, annotations)."""
    kind = type(desired)
    if kind is dict or (kind is not list and isinstance(desired, Mapping)):
        if not granular and not any(k.startswith("f:") for k in node):
            return True  # an atomic map or struct (a label selector): owned whole
        for key, value in desired.items():
            if value is None or (not value and type(value) in (dict, list)):
                continue  # the server may drop it; nothing to own
            child = node.get("f:" + key)
            if child is None or (type(value) in (dict, list) and not _owns(
                    value, child, granular=granular)):
                return False
        return True
    if kind is list:
        elements = {k: v for k, v in node.items() if k != "."}
        if not elements:
            return True  # an atomic list: owned whole
        if len(elements) != len(desired):
            return False
        for item in desired:
            if isinstance(item, Mapping):
                match = next((sub for k, sub in elements.items() if k.startswith("k:")
                              and _key_matches(k[2:], item)), None)
                if match is None or not _owns(item, match):
                    return False
            elif f"v:{json.dumps(item, separators=(',', ':'))}" not in elements:
                return False
        return True
    return True


def _key_matches(key_json: str, item: Mapping[str, Any]) -> bool:
    try:
        key = json.loads(key_json)
    except ValueError:
        return False
    # a key field we did not set was defaulted by the server (``protocol: TCP``)
    return isinstance(key, dict) and all(
        scalar_equal(item[f], v) for f, v in key.items() if f in item)


def _harmless(fields: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Another manager's fields that cannot be drift: ``status``, and labels or
    annotations whose keys we do not set."""
    for name, sub in fields.items():
        if name in (".", _STATUS):
            continue
        if name != "f:metadata" or not isinstance(sub, Mapping):
            return False
        meta = desired.get("metadata") or {}
        for part, keys in sub.items():
            if part == ".":
                continue
            if part not in ("f:labels", "f:annotations") or not isinstance(keys, Mapping):
                return False
            ours = meta.get(part[2:]) or {}
            if any(k.startswith("f:") and k[2:] in ours for k in keys):
                return False
    return True


def settled(desired: Mapping[str, Any], live: Mapping[str, Any], *, manager: str) -> bool:
    """Is the live object certainly what we last applied, judging by metadata alone?

    Yes when its hash annotation is the desired one, our field manager's ``Apply`` entry
    still owns every field we set (a field someone else changed or removed leaves it), and
    no other manager owns anything but ``status`` or labels/annotations we do not set.
    This lets a reconcile read ``PartialObjectMetadata`` lists and fetch whole objects only
    when the proof fails — and it is conservative: "no" only means "compare field by field".
    """
    want = applied_hash(desired)
    if want is None or applied_hash(live) != want:
        return False
    ours: Mapping[str, Any] | None = None
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        if entry.get("manager") == manager:
            if entry.get("operation") == "Apply":
                ours = fields
            continue
        if not _harmless(fields, desired):
            return False
    if ours is None or not any(k.startswith("f:") for k in ours):
        return False
    body = {k: v for k, v in desired.items() if k not in _IDENTITY and k != "metadata"}
    meta = desired.get("metadata") or {}
    granular = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    return _owns(body, ours) and _owns(granular, ours.get("f:metadata") or {}, granular=True)
