"""The sandbox with tiny programs: results, the user's file:line, limits, a clean env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.records import FailureKind, ProgramError
from reconciler.runtime.sandbox import Limits, Sandbox

GOOD = '''from meshdsl import Mesh
print("stdout noise must not corrupt the result")
mesh = Mesh("demo", namespace="demo")
web = mesh.service("web", versions=["v1", "v2"])
web.route(to={web.v1: 90, web.v2: 10})
'''

PROGRAMS = {
    "good.py": GOOD,
    "helper_user.py": "from helpers import build\nmesh = build()\n",
    "helpers.py": "from meshdsl import Mesh\n\ndef build():\n    return Mesh('lib')\n",
    "syntax.py": "from meshdsl import Mesh\nmesh = Mesh('x'\n",
    "raises.py": "from meshdsl import Mesh\n\n\ndef make():\n    raise ValueError('no')\n\n"
                 "mesh = make()\n",
    "loops.py": "from meshdsl import Mesh\nn = 0\nwhile True:\n    n += 1\n",
    "swallows.py": "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n"
                   "    except Exception:\n        pass\n",
    "deaf.py": "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
               "while True:\n    pass\n",
    "hog.py": "blob = bytearray(4 * 1024 ** 3)\n",
    "invalid.py": "from meshdsl import Mesh\nmesh = Mesh('demo')\n"
                  "web = mesh.service('web', versions=['v1'])\n"
                  "web.route(to={web.v1: 50})\n",
    "nomesh.py": "x = 1\n",
    "env.py": "import os\nfrom meshdsl import Mesh\nmesh = Mesh('env-' + '-'.join("
              "sorted(k.lower().replace('_', '') for k in os.environ))[:60])\n",
    "exits.py": "import os\nos._exit(3)\n",
    "leaks.py": "import builtins, sys\nbuiltins.LEAKED = True\nsys.modules['meshdsl'].X = 1\n"
                "from meshdsl import Mesh\nmesh = Mesh('leaky')\n",
    "checks.py": "import builtins, meshdsl\nfrom meshdsl import Mesh\n"
                 "assert not hasattr(builtins, 'LEAKED') and not hasattr(meshdsl, 'X')\n"
                 "mesh = Mesh('clean')\n",
    "nested/mesh.py": "from meshdsl import Mesh\nmesh = Mesh('nested')\n",
}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    for name, text in PROGRAMS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(Limits(timeout=3.0, memory_mb=768))
    box.prepare()
    yield box
    box.close()


def fail(sandbox: Sandbox, checkout: Path, program: str) -> ProgramError:
    with pytest.raises(ProgramError) as info:
        sandbox.run(checkout, program)
    return info.value


def test_good_program_returns_manifests(sandbox: Sandbox, checkout: Path) -> None:
    result = sandbox.run(checkout, "good.py", spec=True)
    assert result.mesh == "demo"
    assert [m["kind"] for m in result.manifests] == ["DestinationRule", "VirtualService"]
    assert "stdout noise" in result.stderr
    assert result.spec is not None and result.spec["name"] == "demo"
    assert sandbox.run(checkout, "helper_user.py").mesh == "lib"
    assert sandbox.run(checkout, "nested/mesh.py").mesh == "nested"


@pytest.mark.parametrize(("program", "kind", "location", "text"), [
    ("syntax.py", FailureKind.SYNTAX, "syntax.py:2", "was never closed"),
    ("raises.py", FailureKind.EXCEPTION, "raises.py:5", "ValueError: no"),
    ("loops.py", FailureKind.TIMEOUT, "loops.py:3|loops.py:4", "did not finish within 3 s"),
    ("invalid.py", FailureKind.VALIDATION, "invalid.py:4", "1 validation error"),
    ("hog.py", FailureKind.MEMORY, "hog.py:1", "MemoryError"),
    ("nomesh.py", FailureKind.INVALID, None, "defines no Mesh"),
    ("missing.py", FailureKind.INVALID, None, "does not exist"),
    ("../outside.py", FailureKind.INVALID, None, "outside the repository"),
])
def test_failures_name_the_users_line(sandbox: Sandbox, checkout: Path, program: str,
                                      kind: FailureKind, location: str | None, text: str
                                      ) -> None:
    error = fail(sandbox, checkout, program)
    assert error.kind is kind
    assert error.location in (location.split("|") if location else [None])
    assert text in error.message
    assert str(checkout) not in str(error) + "".join(error.details)


def test_a_loop_that_swallows_exceptions_is_still_interrupted(
        sandbox: Sandbox, checkout: Path) -> None:
    # SIGALRM's exception is a BaseException, so `except Exception` does not stop it
    error = fail(sandbox, checkout, "swallows.py")
    assert error.kind is FailureKind.TIMEOUT
    assert error.location in ("swallows.py:3", "swallows.py:4", "swallows.py:5",
                              "swallows.py:6")   # somewhere in the loop


def test_a_program_deaf_to_the_alarm_is_killed_by_the_wall_clock(
        sandbox: Sandbox, checkout: Path) -> None:
    error = fail(sandbox, checkout, "deaf.py")
    assert error.kind is FailureKind.TIMEOUT and "was killed" in error.message


def test_os_exit_is_a_crash(sandbox: Sandbox, checkout: Path) -> None:
    error = fail(sandbox, checkout, "exits.py")
    assert error.kind is FailureKind.CRASH and "status 3" in error.message


def test_environment_is_scrubbed(sandbox: Sandbox, checkout: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/etc/kubeconfig")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    monkeypatch.setenv("MESHDSL_WEBHOOK_SECRET", "nope")
    cold = Sandbox(Limits(timeout=10), warm=False)   # spawned now, with the env above
    try:
        mesh = cold.run(checkout, "env.py").mesh
    finally:
        cold.close()
    assert "kubeconfig" not in mesh and "aws" not in mesh and "webhook" not in mesh
    assert mesh.startswith("env-home-lang-path-pwd-pythondontwritebytecode")
    assert "KUBECONFIG" in os.environ


def test_each_program_starts_clean_and_fast(sandbox: Sandbox, checkout: Path) -> None:
    assert sandbox.run(checkout, "leaks.py").mesh == "leaky"
    nxt = sandbox._worker             # the next sandbox is started as soon as a run ends
    assert nxt is not None and nxt.wait_ready(60)        # … with meshdsl imported already
    assert sandbox.run(checkout, "checks.py").mesh == "clean"   # nothing leaked across runs
    assert sandbox._worker is not nxt and nxt.process.poll() is not None   # one per run


def test_checkout_gets_no_bytecode(sandbox: Sandbox, checkout: Path) -> None:
    sandbox.run(checkout, "helper_user.py")
    assert not (checkout / "__pycache__").exists()


def test_without_bubblewrap_it_still_runs_and_warns_loudly(
        checkout: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.runtime.sandbox as module

    monkeypatch.setattr(module, "_warned", False)
    bare = Sandbox(Limits(timeout=10), warm=False, mode="none")
    try:
        assert not bare.isolated
        assert bare.run(checkout, "good.py").mesh == "demo"
    finally:
        bare.close()
    assert "WARNING: mesh programs run WITHOUT a sandbox" in capsys.readouterr().err
    refusing = Sandbox(Limits(timeout=10), warm=False, mode="require")
    monkeypatch.setattr(module, "probe", lambda: None)
    try:
        with pytest.raises(ProgramError, match="bubblewrap is required") as info:
            refusing.run(checkout, "good.py")
        assert info.value.kind is FailureKind.SANDBOX
    finally:
        refusing.close()
