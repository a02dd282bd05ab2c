"""Hostile programs and hostile -o for ``meshctl validate`` and ``render``: one line, exit
2, within seconds, nothing written anywhere."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.unit.cli.test_mesh_cli import meshctl, write

ESCAPING = ("mesh = Mesh('m', namespace='../../escaped')\n"
            "r = mesh.service('reviews', versions=['v1'])\nr.route(to=r.v1)\n")


def _one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.startswith("error: ")


def test_a_namespace_that_climbs_out_is_a_finding_and_never_written(tmp_path: Path) -> None:
    program = write(tmp_path, ESCAPING)
    out = tmp_path / "a" / "b" / "out"
    result = meshctl("render", str(program), "-o", str(out))
    assert result.returncode == 1 and "MD116" in result.stderr
    forced = meshctl("render", str(program), "-o", str(out), "--force")
    assert forced.returncode == 2 and "outside" in forced.stderr
    assert not (tmp_path / "a" / "escaped").exists()
    assert list(out.rglob("*")) == []


@pytest.mark.parametrize("target", ["file", "/proc/1/x", "/proc/self/status"])
def test_render_to_something_that_is_not_a_directory(tmp_path: Path, target: str) -> None:
    program = write(tmp_path, "mesh = Mesh('m', namespace='shop')\n"
                              "mesh.service('web', versions=['v1'])\n")
    out = tmp_path / "file" if target == "file" else Path(target)
    if target == "file":
        out.write_text("keep me")
    result = meshctl("render", str(program), "-o", str(out))
    assert result.returncode == 2, result.stderr
    _one_line_error(result.stderr)
    if target == "file":
        assert out.read_text() == "keep me"


def test_validate_applies_the_time_limit_flag(tmp_path: Path) -> None:
    program = write(tmp_path, "import signal\n"
                              "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                              "while True:\n    pass\n")
    started = time.monotonic()
    result = meshctl("validate", str(program), "--program-timeout", "1")
    assert result.returncode == 2 and "did not finish within 1 s" in result.stderr
    _one_line_error(result.stderr)
    assert time.monotonic() - started < 60
    # a duration, as meshctl reconcile takes it
    result = meshctl("render", str(program), "--program-timeout", "1500ms")
    assert result.returncode == 2 and "did not finish within 1.5 s" in result.stderr
    wrong = meshctl("validate", str(program), "--program-timeout", "soon")
    assert wrong.returncode == 2, wrong.stderr
    _one_line_error(wrong.stderr)
    assert "--program-timeout: 'soon' is not a duration" in wrong.stderr


def test_validate_applies_the_memory_flag_and_sandbox(tmp_path: Path) -> None:
    hog = write(tmp_path, "blob = bytearray(600 * 1024 * 1024)\n")
    result = meshctl("validate", str(hog), "--program-memory-mb", "300")
    assert result.returncode == 2 and "MemoryError" in result.stderr
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed: programs are not isolated here")
    peek = tmp_path / "peek.py"
    peek.write_text("from meshdsl import Mesh\nimport os\n"
                    "mesh = Mesh('m', namespace='shop')\n"
                    "open('/etc/passwd').read()\n")
    blocked = meshctl("validate", str(peek))
    assert blocked.returncode == 2 and "FileNotFoundError" in blocked.stderr
