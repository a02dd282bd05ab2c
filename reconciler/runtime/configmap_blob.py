"""A payload larger than one ConfigMap (1 MiB), stored compressed and chunked.

A big mesh's compiled output and status outgrow a single ConfigMap. The payload is
gzip-compressed, then cut into chunks of :data:`CHUNK` bytes (base64 in ``binaryData``
makes them 4/3 larger, still under the limit): the first chunk lives in the ConfigMap
``name`` itself with the chunk count and a SHA-256 of the compressed bytes, the others in
``name.1``, ``name.2``… (same labels). Chunks are written before the head, so a reader
never sees a head whose chunks are missing — a crash between the writes leaves the
previous head (and its digest) in force, or a digest mismatch reported as unreadable, never
a silently truncated payload. Chunks beyond the new count are deleted after the head.

A payload that would need more than :data:`MAX_CHUNKS` ConfigMaps is refused with
:class:`BlobTooLarge` (permanent: retrying cannot help), as is a write the API server
rejects as too large (413) or invalid (422).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Mapping
from typing import Any

from meshdsl.compile.manifest import CONFIG_MAP
from reconciler.ports import Target, TargetError

__all__ = ["CHUNK", "MAX_CHUNKS", "BlobError", "BlobTooLarge", "read", "write"]

CHUNK = 700 * 1024
MAX_CHUNKS = 32
_CHUNKS = "meshdsl.io/chunks"
_DIGEST = "meshdsl.io/sha256"
_PERMANENT = {413, 422}


class BlobError(Exception):
    """The stored payload is unreadable (missing chunk, digest mismatch, bad gzip)."""


class BlobTooLarge(BlobError):
    """The payload cannot be stored at all; retrying will not help."""

    transient = False


def _chunk_name(name: str, index: int) -> str:
    return name if index == 0 else f"{name}.{index}"


def _manifest(namespace: str, name: str, labels: Mapping[str, str], key: str, part: bytes,
              annotations: Mapping[str, str] | None = None,
              data: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                           "binaryData": {key: base64.b64encode(part).decode()}}
    if data:
        out["data"] = dict(data)
    return out


def _status(exc: TargetError) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def write(target: Target, *, namespace: str, name: str, labels: Mapping[str, str], key: str,
          payload: bytes, data: Mapping[str, str] | None = None) -> int:
    """Store ``payload`` under ConfigMap ``name`` (plus chunks); returns the chunk count.
    ``data`` adds small plain entries to the head ConfigMap."""
    packed = gzip.compress(payload, mtime=0)
    parts = [packed[i:i + CHUNK] for i in range(0, len(packed), CHUNK)] or [b""]
    if len(parts) > MAX_CHUNKS:
        raise BlobTooLarge(f"ConfigMap {namespace}/{name}: {len(payload):,} bytes "
                           f"({len(packed):,} compressed) need {len(parts)} ConfigMaps, more "
                           f"than the {MAX_CHUNKS} allowed")
    previous = target.get(CONFIG_MAP.key(namespace, name))
    before = int(((previous or {}).get("metadata", {}).get("annotations") or {})
                 .get(_CHUNKS, "1") or 1)
    head = {_CHUNKS: str(len(parts)), _DIGEST: hashlib.sha256(packed).hexdigest()}
    try:
        for index in range(1, len(parts)):
            target.apply(_manifest(namespace, _chunk_name(name, index), labels, key,
                                   parts[index]), force=True)
        target.apply(_manifest(namespace, name, labels, key, parts[0], head, data), force=True)
    except TargetError as exc:
        if _status(exc) in _PERMANENT:
            raise BlobTooLarge(f"ConfigMap {namespace}/{name} refused by the API server: "
                               f"{exc}") from exc
        raise
    for index in range(len(parts), before):
        target.delete(CONFIG_MAP.key(namespace, _chunk_name(name, index)))
    return len(parts)


def read(target: Target, *, namespace: str, name: str, key: str) -> bytes | None:
    """The payload stored by :func:`write`, or ``None`` when there is none."""
    head = target.get(CONFIG_MAP.key(namespace, name))
    if head is None:
        return None
    annotations = (head.get("metadata") or {}).get("annotations") or {}
    try:
        count = int(annotations.get(_CHUNKS, "1"))
    except ValueError as exc:
        raise BlobError(f"ConfigMap {namespace}/{name}: bad chunk count") from exc
    blobs = [head]
    for index in range(1, count):
        chunk = target.get(CONFIG_MAP.key(namespace, _chunk_name(name, index)))
        if chunk is None:
            raise BlobError(f"ConfigMap {namespace}/{name}: chunk {index} of {count} is "
                            "missing")
        blobs.append(chunk)
    try:
        packed = b"".join(base64.b64decode((b.get("binaryData") or {}).get(key) or "")
                          for b in blobs)
        digest = annotations.get(_DIGEST)
        if digest is not None and hashlib.sha256(packed).hexdigest() != digest:
            raise BlobError(f"ConfigMap {namespace}/{name}: chunks do not match the digest "
                            "(written by an interrupted store?)")
        return gzip.decompress(packed)
    except (ValueError, OSError) as exc:
        raise BlobError(f"ConfigMap {namespace}/{name} is unreadable: {exc}") from exc
