"""What meshctl prints, read the way a script or a CI log reads it: through a pipe.

User text of every kind (a program's exception, YAML names and keys, file names, commit
subjects, a suspend reason) comes out literally — rich markup in it is never interpreted —
and tables and records come out whole, one per line, never cut at 80 columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler.runtime.status import Attempt, Control, DiskStore, Result, Status
from tests.conftest import EXAMPLES, REPO

MESHCTL = [sys.executable, "-c", "from reconciler.cli import main; main()"]
MARKUP = "[/oops] [bold]not bold[/bold] [red]"


def meshctl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([*MESHCTL, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False, env=env)


def test_a_programs_exception_text_and_file_name_are_literal(tmp_path: Path) -> None:
    folder = tmp_path / "[b]programs"
    folder.mkdir()
    (folder / "mesh.py").write_text(f"raise RuntimeError({MARKUP!r})\n")
    result = meshctl("validate", str(folder / "mesh.py"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"RuntimeError: {MARKUP}" in result.stderr
    assert f"{folder}/mesh.py:1" in result.stderr


def test_an_output_directory_name_is_literal(tmp_path: Path) -> None:
    out = tmp_path / "[x]out"
    result = meshctl("render", str(EXAMPLES / "bookinfo" / "mesh.py"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"objects to {out} (" in result.stdout.replace("\n", "")


def test_yaml_names_and_keys_are_literal(tmp_path: Path) -> None:
    source = tmp_path / "[i]mport.yaml"
    source.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: '[/oops]', namespace: shop}\n"
        "spec:\n  hosts: [reviews]\n  '[/weird]': 1\n"
        "  http:\n  - route:\n    - destination: {host: reviews}\n")
    result = meshctl("import", str(source))
    assert result.returncode == 0, result.stderr
    assert f"{source}:6: warning VirtualService shop/[/oops] spec.[/weird]" in result.stderr
    result = meshctl("analyze", str(source))
    assert result.returncode == 0, result.stderr
    assert f"{source}: 0 error(s)" in result.stderr


def _attempt(revision: str, summary: str) -> Attempt:
    return Attempt(revision=revision, trigger="webhook",
                   started_at="2024-05-01T10:00:00.000+00:00", duration=0.42,
                   result=Result.APPLIED, summary=summary, mesh="[m]esh",
                   changes={"created": 2, "updated": 1})


def test_commit_subjects_and_suspend_reasons_are_literal_and_whole(tmp_path: Path) -> None:
    subject = f"{MARKUP} " + "a commit subject far longer than any terminal " * 3
    revisions = [f"{n:x}" * 40 for n in range(1, 4)]
    status = Status(name="default", source="[git] repo", target="kube")
    for revision in revisions:
        status = status.record(_attempt(revision, subject.strip()))
    store = DiskStore(tmp_path)
    store.save_status(status)

    result = meshctl("suspend", "--state-dir", str(tmp_path), "--reason", MARKUP)
    assert result.returncode == 0, result.stderr
    assert store.load_control().reason == MARKUP
    # the running reconciler records the request; here it is written as it would be
    store.save_status(Status(**{**status.__dict__, "suspended": True,
                                "suspend_reason": MARKUP}))
    assert isinstance(store.load_control(), Control)

    result = meshctl("status", "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"SUSPENDED: {MARKUP} — run" in result.stdout
    assert f'"{subject.strip()}"' in result.stdout
    assert "default: [git] repo → kube" in result.stdout and "(mesh [m]esh)" in result.stdout

    result = meshctl("history", "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == len(revisions)                   # one record per line
    for row, revision in zip(rows, reversed(revisions), strict=True):
        assert row.startswith(revision[:12]) and row.endswith(f'"{subject.strip()}"')


def test_canary_simulate_through_a_pipe_is_one_complete_row_per_decision() -> None:
    args = ("canary", "simulate", str(EXAMPLES / "canary" / "mesh.py"), "--service",
            "shop/reviews", "--metrics", str(EXAMPLES / "canary" / "recorded-healthy.json"))
    steps = json.loads(meshctl(*args, "-o", "json").stdout)["steps"]
    result = meshctl(*args)
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("Decisions\n"):].splitlines()
    assert table[1].split() == ["#", "time", "phase", "stage", "weights", "decision"]
    rows = table[2:2 + len(steps)]
    for index, (row, step) in enumerate(zip(rows, steps, strict=True)):
        assert row.startswith(f"{index} ") and row.endswith(step["decision"])
        assert "…" not in row and "│" not in row
    assert max(len(row) for row in rows) > 80


def test_help_through_a_pipe_is_plain_and_whole() -> None:
    result = meshctl("--help")
    assert result.returncode == 0
    assert "╭" not in result.stdout
    commands = result.stdout[result.stdout.index("Commands:"):].splitlines()[1:]
    assert len(commands) >= 15 and not [c for c in commands if c.endswith("...")]
    assert ("  apply      Make the cluster match the program: server-side apply of what "
            "differs, in a safe order, after the API server validated everything (dry run)."
            in result.stdout)
    result = meshctl("install", "--help")
    assert ("  kubectl -n meshdsl-system create secret generic meshdsl-webhook \\\n"
            in result.stdout)
