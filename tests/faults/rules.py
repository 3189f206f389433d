"""Duplicate-effect rules for the scenarios where runners die by themselves (fault crash points).

A crash point writes {"fault", "pid", "detail", "at"} to WORKFLOW_FAULT_LOG before the runner
SIGKILLs itself (wf_platform.faults). A repeated Idempotency-Key is explained when every copy but
the last was sent by a runner that then died that way (`runner_pid` comes from the User-Agent).
"""
import json
from pathlib import Path
from typing import Callable

from tests.faults.invariants import default_duplicate_rule


def fault_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def died_runner_rule(cluster, log_path: Path) -> Callable[[str, list[dict]], bool]:
    """Allowed: the earlier copies came from runners that crashed at a fault point, or the
    harness's own rule (runner SIGKILLed or frozen between the copies) explains them."""
    default = default_duplicate_rule(cluster)

    def allowed(key: str, reqs: list[dict]) -> bool:
        died = {e["pid"] for e in fault_log(log_path)}
        ordered = sorted(reqs, key=lambda r: r["t_in"])
        return all(r.get("runner_pid") in died for r in ordered[:-1]) or default(key, reqs)

    return allowed
