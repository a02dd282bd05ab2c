"""A reconciler process for the SIGKILL test: the rollout driver with the disk store and
Prometheus, writing the routes it computes to ``<state_dir>/routes.json`` (the test
process applies them to its local mesh). Ticks until every rollout is terminal.

    python rollout_worker.py STATE_DIR SPEC_JSON PROMETHEUS_URL
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from meshdsl.compile import Weights
from meshdsl.model.spec import MeshSpec
from reconciler.metrics import PrometheusSource
from reconciler.runtime.rollout_store import DiskRolloutStore
from reconciler.runtime.rollouts import RolloutDriver


def main() -> int:
    state_dir, spec_path, prometheus = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    spec = MeshSpec.model_validate_json(spec_path.read_text())
    routes = state_dir / "routes.json"

    def apply(_: MeshSpec, weights: Weights) -> None:
        body = json.dumps({f"{ns}/{svc}": dict(split) for (ns, svc), split in weights.items()},
                          sort_keys=True)
        fd, temp = tempfile.mkstemp(dir=state_dir, prefix=".routes.")
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.replace(temp, routes)

    with PrometheusSource(prometheus) as metrics:
        driver = RolloutDriver(DiskRolloutStore.in_state_dir(state_dir), metrics, apply)
        driver.set_program(spec, "r1")
        stop = threading.Event()
        for _ in range(2400):  # bounded: 10 minutes at most
            driver.tick()
            if driver.finished():
                break
            stop.wait(0.25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
