"""`meshctl validate` and `meshctl render` as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES, REPO

MESHCTL = [sys.executable, "-c", "from reconciler.cli import main; main()"]


def meshctl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHCTL, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mesh.py"
    path.write_text("from meshdsl import *\n" + body)
    return path


def test_validate_bookinfo_is_clean() -> None:
    result = meshctl("validate", str(EXAMPLES / "bookinfo" / "mesh.py"))
    assert result.returncode == 0, result.stderr
    assert "0 error(s)" in result.stderr


def test_validate_errors_exit_1_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mesh = Mesh('m')\n"
                           "r = mesh.service('reviews', versions=['v1'])\n"
                           "r.route(to={r.v1: 90, r.subset('v2'): 20})\n")
    result = meshctl("validate", str(path), "-o", "json")
    assert result.returncode == 1
    findings = json.loads(result.stdout)["findings"]
    assert {f["code"] for f in findings} == {"MD101", "MD103"}
    assert all(f["line"] == 4 and f["file"].endswith("mesh.py") for f in findings)


def test_program_that_raises_exits_2_pointing_at_the_user_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mesh = Mesh('m')\n"
                           "def helper():\n"
                           "    raise RuntimeError('boom')\n"
                           "helper()\n")
    result = meshctl("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:4: ")  # where it was raised
    assert f"{path}:5 in <module>: helper()" in result.stderr  # and how it got there
    assert "RuntimeError: boom" in result.stderr
    assert "meshdsl/" not in result.stderr and "reconciler/" not in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_keyword_is_a_clear_error_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mesh = Mesh('m')\n"
                           "r = mesh.service('reviews', versions=['v1'])\n"
                           "r.route(to=r.v1, retries=Retries(attempts=3, per_try='2s'))\n")
    result = meshctl("validate", str(path))
    assert result.returncode == 2
    assert f"{path}:4" in result.stderr and "per_try" in result.stderr


def test_syntax_error_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "mesh = Mesh('m'\n")
    result = meshctl("validate", str(path))
    assert result.returncode == 2 and "syntax error" in result.stderr


def test_missing_file_and_no_mesh_exit_2(tmp_path: Path) -> None:
    assert meshctl("validate", str(tmp_path / "nope.py")).returncode == 2
    result = meshctl("validate", str(write(tmp_path, "x = 1\n")))
    assert result.returncode == 2 and "no Mesh" in result.stderr


def test_module_attribute_form(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(
        "from meshdsl import Mesh\nprod = Mesh('a')\nprod.service('web')\n"
        "staging = Mesh('b')\n")
    result = subprocess.run([*MESHCTL, "render", "shop:prod"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60, check=False,
                            env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert result.returncode == 0, result.stderr
    ambiguous = subprocess.run([*MESHCTL, "render", "shop"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=60, check=False,
                               env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert ambiguous.returncode == 2 and "several meshes" in ambiguous.stderr


def test_render_stream_and_directory(tmp_path: Path) -> None:
    program = str(EXAMPLES / "bookinfo" / "mesh.py")
    stream = meshctl("render", program)
    assert stream.returncode == 0
    docs = list(yaml.safe_load_all(stream.stdout))
    assert len(docs) == 22
    assert stream.stdout == (EXAMPLES / "bookinfo" / "rendered.yaml").read_text()
    out = tmp_path / "out"
    assert meshctl("render", program, "-o", str(out)).returncode == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert len(files) == 22 and "bookinfo/virtualservice-reviews.yaml" in files


def test_render_refuses_invalid_program_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "mesh = Mesh('m')\n"
                           "r = mesh.service('reviews', versions=['v1'])\n"
                           "r.route(to=r.subset('v2'))\n")
    out = tmp_path / "out"
    result = meshctl("render", str(path), "-o", str(out))
    assert result.returncode == 1 and "MD101" in result.stderr
    assert not out.exists()
