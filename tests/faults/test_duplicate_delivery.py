"""Scenario: every bus message delivered twice, many out of order (the test-only `bus_redeliver`
fault layer in every consumer: after handling a first delivery it is handed back with a random
0-1 s delay instead of acked, and fetched batches are handled in shuffled order).

Consumers must be idempotent: the orchestrator sees every run.created, cancel/resume request and
step result twice (and results before or after later ones); the runners see every dispatch twice
and must not run an answered one again. No runner dies here, so no Idempotency-Key may repeat.
"""
from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.workload import Load, quiesce_schedules, setup_workload

FULL = dict(rate=16.0, duration=40.0, pace_ms=1000)
CI = dict(rate=10.0, duration=6.0, pace_ms=500)


def test_every_message_twice_and_out_of_order(tmp_path):
    p = FULL if full_scale() else CI
    with FaultCluster(tmp_path, env={"WORKFLOW_FAULT": "bus_redeliver"}) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        load.wait_submitted()
        rep_load = load.join()
        quiesce_schedules(c, w)
        redelivered = c.sql("SELECT count(*) FROM events WHERE type = 'step.dispatched'")[0][0]
        skipped = sum(c.log_counts("already reported: not run again").values())
        report = check_invariants(c, rep_load.accepted, scenario="duplicate_delivery", load_report=rep_load,
                                  allowed_duplicate_key=lambda key, reqs: False,
                                  extra_info={"dispatches": redelivered, "redeliveries_not_rerun": skipped})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
        # the layer really delivered the dispatches twice: the runners noticed each repeat
        assert skipped >= redelivered * 0.9, f"{skipped} repeats noticed for {redelivered} dispatches"
