"""Scenario 1: kill -9 of a random orchestrator, step-runner, gateway and scheduler, repeatedly,
while runs are in flight (200 with WF_FAULTS_SCALE=full).

Each round SIGKILLs one random replica of every role, in random order, a short pause apart; the
supervisor brings each back after 0.5-1 s. The load generator keeps submitting across the
gateways (a submission that hits a dead gateway is retried on the other with the same
Idempotency-Key). Afterwards every invariant of invariants.py must hold; repeated
Idempotency-Keys are allowed only where the runner that sent the first copy was killed after
sending it (the default rule). Runners get RUNNER_MAX_DELIVER=20 (see below).
"""
import random
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.workload import Load, quiesce_schedules, setup_workload

FULL = dict(rate=8.5, duration=55.0, pace_ms=4000, in_flight=180, fault_seconds=50.0, pause=(0.8, 1.6))
CI = dict(rate=10.0, duration=6.0, pace_ms=1000, in_flight=30, fault_seconds=6.0, pause=(0.8, 1.2))
ROUND = ("orchestrator", "runner", "gateway", "scheduler")


def test_kill9_every_role_repeatedly_with_runs_in_flight(tmp_path):
    p = FULL if full_scale() else CI
    # Runners die every ~14 s each here, so a step of 8 s can meet five dead runners in a row and be
    # given up as poison (RUNNER_MAX_DELIVER=5, by design: docs/step-runner.md); 20 keeps that a
    # non-event while still bounding redeliveries.
    with FaultCluster(tmp_path, env={"RUNNER_MAX_DELIVER": "20"}) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        want = p["in_flight"]
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')", lambda n: n >= want,
                   timeout=120, message=f"{want} runs in flight")
        end = time.monotonic() + p["fault_seconds"]
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
            for role in random.sample(ROUND, len(ROUND)):
                c.kill(role)
                time.sleep(random.uniform(*p["pause"]))
        load.wait_submitted()
        rep_load = load.join()
        quiesce_schedules(c, w)
        report = check_invariants(c, rep_load.accepted, scenario="kill9_services", load_report=rep_load,
                                  extra_info={"rounds": rounds})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
        assert len(c.kills()) == 4 * rounds
