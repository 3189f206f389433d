"""Scenario: a step that crashes its runner on every delivery, under a steady workload.

The runners are armed with the test-only `runner_poison` fault: a step whose id starts with
"poison" SIGKILLs the runner that takes it (after writing the fault log). JetStream delivers it
RUNNER_MAX_DELIVER (5) times, each ending a runner (the supervisor restarts them), then publishes a
max-deliveries advisory; an orchestrator fails that attempt (not retried), so the run fails with a
clear error long before the attempt's deadline, and nothing else is stuck: the steady runs all
complete and every invariant holds (steps in flight on a crashed runner were redelivered; their
effect may repeat, and only for keys whose earlier copy came from a runner that crashed).
"""
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.rules import died_runner_rule, fault_log
from tests.faults.workload import Load, setup_workload
from tests.support.infra import wait_for

FULL = dict(rate=8.0, duration=40.0, pace_ms=1000, poison_runs=3)
CI = dict(rate=5.0, duration=6.0, pace_ms=500, poison_runs=1)


def poison_definition(target_url: str) -> dict:
    return {"name": "faults-poison", "steps": [
        {"id": "poison", "type": "http_request", "retry": {"max_attempts": 3, "backoff_seconds": 0.5},
         "config": {"method": "POST", "url": f"{target_url}/poison"}},
        {"id": "after", "type": "http_request", "depends_on": ["poison"],
         "config": {"method": "POST", "url": f"{target_url}/after"}},
    ]}


def test_poison_step_is_terminated_after_max_deliveries(tmp_path):
    p = FULL if full_scale() else CI
    log = tmp_path / "faults.jsonl"
    with FaultCluster(tmp_path, role_env={"runner": {"WORKFLOW_FAULT": "runner_poison",
                                                     "WORKFLOW_FAULT_LOG": str(log),
                                                     "RUNNER_MAX_DELIVER": "5"}}) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"])
        r = c.api.post("/api/workflows", json={"definition": poison_definition(c.target.url)})
        assert r.status_code == 201, r.text
        poison_wf = r.json()["id"]
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        poisoned, t0 = [], time.time()
        for _ in range(p["poison_runs"]):
            r = c.api.post(f"/api/workflows/{poison_wf}/run", json={"input_data": {}})
            assert r.status_code in (200, 201, 202), r.text
            poisoned.append(r.json()["run_id"])

        def failed_runs():
            rows = c.sql("SELECT id, status FROM runs WHERE id = ANY(%s)", (poisoned,))
            return all(s == "failed" for _, s in rows) and len(rows) == len(poisoned)
        wait_for(failed_runs, timeout=180, interval=0.5, message="every poisoned run to fail")
        to_failure = round(time.time() - t0, 1)
        for run_id in poisoned:
            run = c.api.get(f"/api/workflows/runs/{run_id}").json()["run"]
            step = next(s for s in run["step_runs"] if s["step_id"] == "poison")
            assert step["status"] == "failed" and "never answered" in (step["error"] or ""), step
            assert step["attempt"] == 1, "a poison step is not retried"
            after = next((s for s in run["step_runs"] if s["step_id"] == "after"), None)
            assert after is None or after["status"] in ("cancelled", "skipped", "pending"), after
        crashes = [e for e in fault_log(log) if e["fault"] == "runner_poison"]
        # each delivery crashes the runner that takes it, unless that runner already died of another
        # poison dispatch fetched in the same batch: at most 5 (RUNNER_MAX_DELIVER) crashes per step
        for run_id in poisoned:
            n = sum(e["detail"].startswith(run_id + ":") for e in crashes)
            assert 1 <= n <= 5, f"{run_id}: {n} runner crashes"
        assert "/poison" not in {q["path"] for q in c.target.requests}, "the poison step never gets to its call"
        load.wait_submitted()
        rep_load = load.join()
        report = check_invariants(c, rep_load.accepted, scenario="poison_step", load_report=rep_load,
                                  allowed_duplicate_key=died_runner_rule(c, log), tolerate_deaths=True,
                                  extra_info={"poison_runs": len(poisoned), "runner_crashes": len(crashes),
                                              "submit_to_all_poisoned_failed_s": to_failure})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
