"""Orchestrator settings, read from the environment in main() (SPEC §9)."""
import os
from dataclasses import dataclass

from wf_platform.settings import CommonSettings


@dataclass(frozen=True)
class OrchestratorSettings:
    common: CommonSettings
    max_concurrent_runs: int      # deployment-wide: every replica must be given the same value
    concurrency: int              # bus messages handled at once by this replica
    timer_poll_seconds: float
    admission_sweep_seconds: float
    reconcile_grace_seconds: float   # after noticing a new bus stream, before sweeping (reconcile.py)

    @classmethod
    def from_env(cls) -> "OrchestratorSettings":
        return cls(
            common=CommonSettings.from_env("orchestrator", default_ops_port=8081),
            max_concurrent_runs=max(1, int(os.environ.get("WORKFLOW_MAX_CONCURRENT_RUNS", "10"))),
            concurrency=int(os.environ.get("ORCHESTRATOR_CONCURRENCY", "64")),
            timer_poll_seconds=float(os.environ.get("ORCHESTRATOR_TIMER_POLL_SECONDS", "0.1")),
            admission_sweep_seconds=float(os.environ.get("ORCHESTRATOR_ADMISSION_SWEEP_SECONDS", "0.5")),
            reconcile_grace_seconds=float(os.environ.get("ORCHESTRATOR_RECONCILE_GRACE_SECONDS", "3")),
        )
