"""Scenario: nats-server killed, its store deleted, started again empty; the reconciliation sweep
re-drives from Postgres what the log says is pending.

With the store gone, every message not yet consumed is lost: run.created nobody handled, dispatches
no runner took, results no orchestrator read. Services re-create the stream and their consumers by
themselves; the first orchestrator to see the new stream epoch sweeps (docs/orchestration.md):
every unfinished run is kicked and every running step's dispatch re-published. Afterwards every
invariant holds. An effect may repeat only for a step whose first call was made before the broker
came back (its result may have been in the lost store); a call made after that never repeats.
"""
import re
import shutil
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants, default_duplicate_rule
from tests.faults.workload import Load, quiesce_schedules, setup_workload
from tests.support.infra import wait_for

FULL = dict(rate=16.0, duration=50.0, pace_ms=2000, in_flight=200, losses=2, down=3.0, between=12.0)
CI = dict(rate=10.0, duration=6.0, pace_ms=1000, in_flight=30, losses=1, down=2.0, between=0.0)


def test_nats_store_deleted_and_reconciled_from_postgres(tmp_path):
    p = FULL if full_scale() else CI
    with FaultCluster(tmp_path) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        want = p["in_flight"]
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')", lambda n: n >= want,
                   timeout=120, message=f"{want} runs in flight")
        back_at, ready_after = [], []
        for i in range(p["losses"]):
            if i:
                time.sleep(p["between"])
            c.kill_nats()
            shutil.rmtree(c.nats.store_dir / "jetstream", ignore_errors=True)
            time.sleep(p["down"])
            started = c.start_nats().time
            back_at.append(started)
            c.wait_ready(deadline=60)
            ready_after.append(round(time.time() - started, 2))
        # the sweep runs once per new epoch, on one orchestrator, after its grace period
        sweeps = wait_for(lambda: sum(c.log_counts("reconciliation sweep:").values()) or None, timeout=60,
                          interval=0.5, message="a reconciliation sweep")
        load.wait_submitted()
        rep_load = load.join()
        sweeps = sum(c.log_counts("reconciliation sweep:").values())   # every sweep is done once runs finished
        quiesce_schedules(c, w)
        default = default_duplicate_rule(c)

        def in_flight_at_loss(key, reqs):
            first = min(r["t_in"] for r in reqs)
            return first <= max(back_at) + 1.0 or default(key, reqs)

        redispatched = sum(int(m) for p_ in c.processes("orchestrator")
                           for m in re.findall(r"(\d+) dispatches re-published", p_.log_text()))
        report = check_invariants(c, rep_load.accepted, scenario="nats_store_lost", load_report=rep_load,
                                  allowed_duplicate_key=in_flight_at_loss,
                                  extra_info={"store_losses": p["losses"], "sweeps": sweeps, "redispatched": redispatched,
                                              "nats_back_to_all_ready_s": ready_after})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
        # the initial epoch (fresh deployment) sweeps nothing; each loss sweeps once
        sweeps = sum(c.log_counts("reconciliation sweep:").values())
        assert sweeps == p["losses"], f"{sweeps} sweeps for {p['losses']} store losses"
