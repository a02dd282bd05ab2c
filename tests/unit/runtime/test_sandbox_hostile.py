"""The hostile corpus straight through the sandbox: what each attack saw, and that nothing
of it reached this process or the machine (the same corpus runs through ``meshctl
reconcile`` in tests/integration/test_hostile_programs.py)."""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.records import FailureKind, ProgramError
from reconciler.runtime.sandbox import Limits, Sandbox
from tests.hostile_corpus import evidence, render

SECRET = "s3cr3t-hostile-corpus"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(Limits(timeout=4.0, memory_mb=512))
    if not box.isolated:
        box.close()
        pytest.skip("bubblewrap cannot create a sandbox on this machine")
    yield box
    box.close()


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    yield server
    server.close()


def attack(sandbox: Sandbox, tmp_path: Path, name: str, **values: object) -> ProgramError:
    checkout = tmp_path / "repo"
    checkout.mkdir(exist_ok=True)
    (checkout / "mesh.py").write_text(render(name, **values))
    with pytest.raises(ProgramError) as info:
        sandbox.run(checkout, "mesh.py")
    return info.value


def test_environment_and_proc_hold_no_secret(sandbox: Sandbox, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHDSL_WEBHOOK_SECRET", SECRET)
    fresh = Sandbox(Limits(timeout=4.0))     # started with the secret in our environment
    try:
        seen = evidence(attack(fresh, tmp_path, "environ", secret=SECRET).message)
    finally:
        fresh.close()
    assert "MESHDSL_WEBHOOK_SECRET" not in seen["self"]          # type: ignore[operator]
    assert seen["any"] is False and int(seen["procs"]) <= 4      # type: ignore[call-overload]
    assert all(str(seen[k]).startswith(("ok:False", "blocked:"))
               for k in ("self", "1", "2") if k in seen and k != "self")


def test_no_kubeconfig_no_host_files(sandbox: Sandbox, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"token: {SECRET}\n")
    seen = evidence(attack(sandbox, tmp_path, "kubeconfig", kubeconfig=kubeconfig).message)
    assert all(str(v).startswith("blocked:") for v in seen.values()), seen


def test_no_writes_outside(sandbox: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    seen = evidence(attack(sandbox, tmp_path, "write_outside", outside=outside).message)
    assert str(seen["outside"]).startswith("blocked:")
    assert str(seen["checkout"]).startswith("blocked:")    # the checkout is read-only
    assert str(seen["tmp"]).startswith("ok:")              # its own scratch space
    assert not (outside / "escaped.txt").exists()
    assert not (tmp_path / "repo" / "mesh_written.txt").exists()


def test_no_network_not_even_loopback(sandbox: Sandbox, tmp_path: Path,
                                      listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    seen = evidence(attack(sandbox, tmp_path, "network", port=port, secret=SECRET).message)
    assert str(seen["loopback"]).startswith("blocked:")
    assert str(seen["dns"]).startswith("blocked:")
    with pytest.raises(TimeoutError):
        listener.accept()


def _alive(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def test_a_detached_child_dies_with_the_run(sandbox: Sandbox, tmp_path: Path) -> None:
    nonce = str(time.time_ns())[-9:]
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / "mesh.py").write_text(render("detached_child", nonce=nonce, name="detached"))
    # succeeds: the children holding its pipes open do not make the run a timeout
    assert sandbox.run(checkout, "mesh.py").mesh == "detached"
    deadline = time.monotonic() + 5
    while _alive(nonce) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(nonce) == []


def test_a_fork_bomb_is_bounded(sandbox: Sandbox, tmp_path: Path) -> None:
    seen = evidence(attack(sandbox, tmp_path, "fork_bomb").message)
    assert 0 < int(seen["forked"]) < 64 and seen["error"]   # type: ignore[call-overload]


def test_a_memory_bomb_is_a_memory_error(sandbox: Sandbox, tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = attack(sandbox, tmp_path, "memory_bomb")
    assert error.kind is FailureKind.MEMORY
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000   # KiB


def test_a_result_flood_is_refused_and_bounded(sandbox: Sandbox, tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = attack(sandbox, tmp_path, "result_flood")
    assert error.kind is FailureKind.INVALID and "more than 16 MiB" in error.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000   # KiB


def test_a_forged_result_is_not_a_verdict(sandbox: Sandbox, tmp_path: Path) -> None:
    error = attack(sandbox, tmp_path, "forged_result")
    assert error.kind in (FailureKind.INVALID, FailureKind.CRASH)
    assert "pwned" not in str(error) and "ClusterRoleBinding" not in str(error)


def test_an_output_flood_is_cut_to_its_tail(sandbox: Sandbox, tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / "mesh.py").write_text(render("output_flood", name="loud"))
    result = sandbox.run(checkout, "mesh.py")
    assert result.mesh == "loud" and 0 < len(result.stderr) <= 4000


def test_a_program_deaf_to_signals_is_killed(sandbox: Sandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    error = attack(sandbox, tmp_path, "deaf_to_signals")
    assert error.kind is FailureKind.TIMEOUT and "was killed" in error.message
    assert time.monotonic() - started < 4.0 + 8


def test_a_normal_program_runs_after_the_corpus(sandbox: Sandbox, tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / "mesh.py").write_text(render("normal", name="after"))
    assert sandbox.run(checkout, "mesh.py").mesh == "after"
