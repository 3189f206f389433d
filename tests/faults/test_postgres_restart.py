"""Scenario 3: Postgres stopped with `-m immediate` (SIGQUIT: no checkpoint, crash recovery on
the next start) and started again on the same port and data dir while runs are in flight.

Submissions that meet the outage get 5xx or connection errors and are retried by the load
generator with the same Idempotency-Key, so every submission ends with a 2xx; every run id that
got a 2xx must still be there afterwards (`nothing_lost`), every service must reconnect by
itself (`no_crash`, and every /readyz answers again), and every other invariant holds.
Full scale: three outages of 3-6 s, 200 runs in flight; CI: one outage of 3 s.
"""
import random
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.workload import Load, quiesce_schedules, setup_workload

FULL = dict(rate=9.5, duration=55.0, pace_ms=4000, in_flight=190, outages=3, down=(3.0, 6.0), between=(8.0, 12.0))
CI = dict(rate=10.0, duration=6.0, pace_ms=1000, in_flight=30, outages=1, down=(3.0, 3.0), between=(0, 0))


def test_postgres_stopped_immediate_and_restarted(tmp_path):
    p = FULL if full_scale() else CI
    with FaultCluster(tmp_path) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        want = p["in_flight"]
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')", lambda n: n >= want,
                   timeout=120, message=f"{want} runs in flight")
        reconnect, accepted_before = [], []
        for i in range(p["outages"]):
            if i:
                time.sleep(random.uniform(*p["between"]))
            accepted_before.append(len(load.accepted))
            c.stop_postgres_immediate()
            time.sleep(random.uniform(*p["down"]))
            started = c.start_postgres().time
            c.wait_ready(deadline=90)          # every service answers /readyz: it reconnected by itself
            reconnect.append(round(time.time() - started, 2))
        load.wait_submitted()
        rep_load = load.join()
        quiesce_schedules(c, w)
        report = check_invariants(c, rep_load.accepted, scenario="postgres_restart", load_report=rep_load,
                                  extra_info={"pg_restart_to_all_ready_s": reconnect,
                                              "accepted_before_outages": accepted_before})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
