"""Scenario: a runner dies after the side effect and before replying (test-only crash point
`runner_after_effect`, armed with a probability on every runner).

The HTTP call reached the Target, then the runner SIGKILLed itself without publishing a result.
JetStream redelivers the dispatch after the ack wait to another runner, which makes the call
again with the same Idempotency-Key (the receiver could drop it). Every accepted run completes;
a key repeats only where the runner that sent the earlier copy is in the fault log (the
interrupted call, and any other call that dying runner had made and not yet reported); every
other invariant holds.
"""
from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.rules import died_runner_rule, fault_log
from tests.faults.workload import Load, setup_workload

FULL = dict(rate=12.0, duration=40.0, pace_ms=1000, p=0.01)
CI = dict(rate=8.0, duration=6.0, pace_ms=500, p=0.02)


def test_runner_dies_after_the_effect_before_replying(tmp_path):
    p = FULL if full_scale() else CI
    log = tmp_path / "faults.jsonl"
    # A crash takes down every step in flight on that runner, and here runners die every few
    # seconds: a step could be on five dying runners in a row and be taken for a poison step
    # (RUNNER_MAX_DELIVER, see test_poison_step.py), so this scenario allows more deliveries.
    with FaultCluster(tmp_path, role_env={"runner": {"WORKFLOW_FAULT": f"runner_after_effect@{p['p']}",
                                                     "WORKFLOW_FAULT_LOG": str(log),
                                                     "RUNNER_MAX_DELIVER": "20"}}) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"])
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        load.wait_submitted()
        rep_load = load.join()
        crashes = [e for e in fault_log(log) if e["fault"] == "runner_after_effect"]
        repeated = c.target.repeated_keys()
        report = check_invariants(c, rep_load.accepted, scenario="runner_after_effect", load_report=rep_load,
                                  allowed_duplicate_key=died_runner_rule(c, log), tolerate_deaths=True,
                                  extra_info={"runner_crashes": len(crashes), "keys_repeated": len(repeated)})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
        assert crashes, "the crash point never fired: raise the probability"
        # the key of the call each crash interrupted was sent again by the next runner
        assert {e["detail"] for e in crashes} <= set(repeated)
