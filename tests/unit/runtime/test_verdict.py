"""The parent's judgement: a forged or malformed claim is never a verdict."""

from __future__ import annotations

import pytest

from meshdsl import Mesh
from reconciler.runtime.verdict import Rejected, judge


def _spec() -> dict[str, object]:
    mesh = Mesh("shop", namespace="shop")
    web = mesh.service("web", versions=["v1", "v2"])
    web.route(to={web.v1: 90, web.v2: 10})
    return mesh.build().model_dump(mode="json")


def test_a_forged_ok_without_a_spec_is_rejected() -> None:
    with pytest.raises(Rejected, match="no mesh spec"):
        judge({"ok": True, "mesh": "x", "manifests": [{"kind": "ClusterRoleBinding"}]})


def test_a_spec_with_extra_fields_is_rejected() -> None:
    spec = _spec()
    spec["manifests"] = [{"kind": "ClusterRoleBinding"}]
    with pytest.raises(Rejected, match="not a valid mesh spec"):
        judge({"ok": True, "spec": spec})


def test_the_parent_validates_and_compiles_itself() -> None:
    spec = _spec()
    spec["virtual_services"][0]["http"][0]["to"][0]["weight"] = 95  # type: ignore[index]
    judged = judge({"ok": True, "spec": spec, "sources": []})
    assert [f.code for f in judged.errors] == ["MD103"]
    good = judge({"ok": True, "spec": _spec()})
    assert {m["kind"] for m in good.manifests()} == {"VirtualService", "DestinationRule"}


def test_sources_are_display_data_only() -> None:
    spec = _spec()
    spec["virtual_services"][0]["http"][0]["to"][0]["weight"] = 95  # type: ignore[index]
    path = judge({"spec": spec}).errors[0].path
    ok = judge({"spec": spec, "sources": [["MD103", path, "mesh.py", 4]]})
    assert str(ok.errors[0].source) == "mesh.py:4"
    for bad in (["MD103", path, "/etc/passwd", 4], ["MD103", path, "m.py", True],
                ["MD103", path, "m\n.py", 4], "garbage"):
        assert judge({"spec": spec, "sources": [bad]}).errors[0].source is None


def test_declared_locations_come_back_and_bogus_ones_are_ignored() -> None:
    from meshdsl.model.base import declared_sources

    mesh = Mesh("shop", namespace="shop")
    web = mesh.service("web", versions=["v1", "v2"])
    web.route(to={web.v1: 90, web.v2: 10})
    built = mesh.build()
    declared = [[list(path), "mesh.py", loc.line] for path, loc in declared_sources(built)]
    assert declared, "the builder records where each object was declared"
    route = next(d for d in declared if d[0][:3] == ["virtual_services", 0, "http"])
    bogus = [[["virtual_services", 99], "mesh.py", 3], [["manifests"], "mesh.py", 3],
             [["virtual_services", 0], "/etc/passwd", 1], "junk"]
    judged = judge({"ok": True, "spec": built.model_dump(mode="json"),
                    "declared": declared + bogus})
    http = judged.spec.virtual_services[0].http[0]
    assert http.source is not None and (http.source.file, http.source.line) == (
        "mesh.py", route[2])
    assert judged.spec.virtual_services[0].source is not None
    assert judged.spec.virtual_services[0].source.file == "mesh.py"  # not /etc/passwd
    without = judge({"ok": True, "spec": built.model_dump(mode="json")})
    assert without.spec.virtual_services[0].http[0].source is None
