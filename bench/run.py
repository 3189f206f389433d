"""`make bench`: benchmarks on real processes; results go to bench/results/*.json.

step_chain: a 10-step sequential chain of trivial http_request steps (a local HTTP target that
answers at once); per-step time = run duration / 10, from the run's own timestamps.
Machines are noisy: we report medians and p90 over many runs, never assert on them.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.infra import nats_for_tests, postgres_for_tests, wait_for  # noqa: E402
from tests.support.stack import Stack  # noqa: E402
from tests.support.target import Target  # noqa: E402


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def step_chain(stack: Stack, target: Target, runs: int, steps: int = 10) -> dict:
    chain = [{"id": f"s{i}", "type": "http_request", "config": {"url": f"{target.url}/x"},
              **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(steps)]
    c = stack.client
    wf = c.post("/api/workflows", json={"definition": {"name": "bench-chain", "steps": chain}}).json()["id"]
    per_step, wall = [], []
    for i in range(runs + 2):
        t0 = time.perf_counter()
        run_id = c.post(f"/api/workflows/{wf}/run", json={}).json()["run_id"]

        def done():
            r = c.get(f"/api/workflows/runs/{run_id}").json()["run"]
            return r if r["status"] in ("completed", "failed") else None

        run = wait_for(done, timeout=120, interval=0.002)
        t1 = time.perf_counter()
        assert run["status"] == "completed", run
        if i < 2:
            continue  # warm-up: connections, caches, consumer creation
        d = (_ts(run["completed_at"]) - _ts(run["started_at"])).total_seconds()
        per_step.append(d / steps * 1000)
        wall.append((t1 - t0) * 1000)
    per_step.sort()
    return {
        "runs": runs, "steps_per_run": steps,
        "per_step_ms_median": round(statistics.median(per_step), 3),
        "per_step_ms_p90": round(per_step[int(len(per_step) * 0.9) - 1], 3),
        "per_step_ms_min": round(per_step[0], 3),
        "run_wall_ms_median": round(statistics.median(wall), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--nats-nosync", action="store_true", help="JetStream without sync_interval: always")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = ap.parse_args()
    results: dict = {"when": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        tmp = Path(tmp)
        with postgres_for_tests(tmp / "pg") as pg, nats_for_tests(tmp / "nats", sync_always=not args.nats_nosync) as nats, \
                Target() as target:
            with Stack(tmp, pg.dsn, nats.url, orchestrators=1, runners=1, schedulers=0) as stack:
                results["step_chain"] = step_chain(stack, target, args.runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
