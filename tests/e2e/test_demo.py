"""The README's main job: ``meshctl demo bookinfo`` tells the whole story and exits 0.

A real Git repository, the reconcile loop, the sandbox, 13 Envoys, the bookinfo demo apps
and Prometheus — reviews v2 promoted on live metrics, a faulty v3 rolled back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

MESHCTL = str(Path(sys.executable).parent / "meshctl")


def test_demo_bookinfo_promotes_v2_rolls_back_v3_and_exits_0() -> None:
    result = subprocess.run([MESHCTL, "demo", "bookinfo"], capture_output=True, text=True,
                            timeout=400, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin",
                                              "HOME": str(Path.home())})
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "story complete" in out
    assert "rollout of v2 started" in out and "v2 serves all traffic" in out
    assert "rolled back to v2" in out and "request-success-rate" in out
    assert "reviews answered from: reviews-v2 (expected reviews-v2)" in out
    # piped at 80 columns, each summary row is still one whole line (nothing cut to "…")
    assert "…" not in out
    rows = {line.split()[2]: line for line in out.splitlines()
            if line.startswith("reviews -> ")}
    assert set(rows) == {"v2", "v3"}, out[-3000:]
    assert " succeeded " in rows["v2"] and rows["v2"].endswith(" promoted")
    assert " failed " in rows["v3"] and "request-success-rate" in rows["v3"]
    assert len(rows["v3"]) > 80
    assert any(line.startswith("after the story, reviews answered from: reviews-v2 ")
               and line.endswith("s") and "; total " in line for line in out.splitlines())
