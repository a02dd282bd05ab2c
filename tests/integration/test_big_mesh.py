"""Big meshes on the real kube-apiserver: a 5,000-object output beyond one ConfigMap's 1 MiB
is stored chunked and read back whole; the inventory of 5,000 objects fits its record; a
payload no ConfigMap set can hold is a permanent failure, not a retry."""

from __future__ import annotations

import secrets
import uuid

import pytest

from meshdsl.compile.manifest import CONFIG_MAP
from reconciler.core.inventory import Inventory
from reconciler.runtime import configmap_blob
from reconciler.runtime.status import ClusterStore
from reconciler.targets.kube import KubeError, KubeTarget

pytestmark = pytest.mark.integration

OBJECTS = 5000


def _output(mesh: str, count: int) -> dict[str, object]:
    """A compiled output of ``count`` objects whose bytes do not compress away (a random
    token each, like certificates or hashes in real manifests)."""
    return {"mesh": mesh, "manifests": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 10}",
                      "annotations": {"example.com/token": secrets.token_hex(160)}},
         "spec": {"ports": [{"port": 80}]}} for i in range(count)]}


def _chunks(target: KubeTarget, namespace: str, name: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in target.list(CONFIG_MAP, namespace)
                  if o["metadata"]["name"].startswith(name))


def test_a_5000_object_output_is_stored_chunked_and_read_back(target: KubeTarget) -> None:
    name = f"big-{uuid.uuid4().hex[:6]}"
    store = ClusterStore(target, name)
    output = _output(name, OBJECTS)
    store.save_output("rev1", output)
    head = f"meshdsl-output-{name}-rev1"
    stored = _chunks(target, "meshdsl-system", head)
    assert len(stored) >= 2, stored  # beyond one ConfigMap: chunked
    assert store.load_output("rev1") == output

    # a smaller output under the same name drops the chunks it no longer needs
    small = _output(name, 10)
    store.save_output("rev1", small)
    assert _chunks(target, "meshdsl-system", head) == [head]
    assert store.load_output("rev1") == small

    # chunks of kept outputs survive pruning, those of dropped ones go
    store.save_output("rev2", output)
    store.prune_outputs({"rev2"})
    assert _chunks(target, "meshdsl-system", f"meshdsl-output-{name}-rev1") == []
    assert len(_chunks(target, "meshdsl-system", f"meshdsl-output-{name}-rev2")) >= 2


def test_an_inventory_of_5000_objects_fits_its_record(target: KubeTarget) -> None:
    mesh = f"big-{uuid.uuid4().hex[:6]}"
    manifests = _output(mesh, OBJECTS)["manifests"]
    assert isinstance(manifests, list)
    record = Inventory.of(mesh, manifests).to_manifest()
    target.apply(record, force=True)
    back = target.get(CONFIG_MAP.key("meshdsl-system", f"meshdsl-inventory-{mesh}"))
    assert back is not None and len(Inventory.from_manifest(back, mesh)) == OBJECTS


def test_what_cannot_be_stored_is_a_permanent_failure(target: KubeTarget) -> None:
    name = f"huge-{uuid.uuid4().hex[:6]}"
    with pytest.raises(configmap_blob.BlobTooLarge) as too_big:
        configmap_blob.write(target, namespace="meshdsl-system", name=name, labels={},
                             key="x", payload=secrets.token_bytes(
                                 configmap_blob.CHUNK * (configmap_blob.MAX_CHUNKS + 1)))
    assert too_big.value.transient is False and "more than the" in str(too_big.value)
    assert _chunks(target, "meshdsl-system", name) == []  # refused before any write
    # the server's own limit on a single ConfigMap is a 4xx, never retried as transient
    with pytest.raises(KubeError) as refused:
        target.apply({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": name, "namespace": "meshdsl-system"},
                      "data": {"x": "x" * ((1 << 20) + 1)}}, force=True)
    assert refused.value.status in (413, 422), refused.value
