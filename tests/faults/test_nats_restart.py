"""Scenario 2: `nats-server` SIGKILLed and started again on the same port and store (file
storage, `sync_interval: always`) while runs are in flight.

Every service must reconnect by itself (no process may exit: the supervisor would restart it,
and the `no_crash` check fails if it had to), every /readyz must answer again, and afterwards
every invariant holds: the relay re-publishes what JetStream had not acknowledged (de-duplicated
by Nats-Msg-Id), consumers resume from their durable state, no accepted run is lost or stuck.
Full scale: three outages of 2-4 s, 200 runs in flight; CI: one outage of 2 s.

Runners keep the default 30 s ack wait here: this scenario is about the broker, and an outage
longer than the ack wait makes JetStream redeliver every step in flight (the runner holding the
result is still reconnecting), which repeats effects by design.

Repeated Idempotency-Keys: only the default rule (a runner killed after the call) applies, and no
runner is killed here, so no key may repeat. (Before the runner claims of 09acac7, a dispatch
delivered in the last moments before the kill was delivered again after the restart, the broker
having lost that delivery, and run a second time, even by the runner still running the first
copy: 1-12 repeats per full-scale run.)
"""
import random
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.workload import Load, quiesce_schedules, setup_workload

FULL = dict(rate=9.5, duration=55.0, pace_ms=4000, in_flight=190, outages=3, down=(2.0, 4.0), between=(8.0, 12.0))
CI = dict(rate=10.0, duration=6.0, pace_ms=1000, in_flight=30, outages=1, down=(2.0, 2.0), between=(0, 0))


def test_nats_killed_and_restarted_on_the_same_store(tmp_path):
    p = FULL if full_scale() else CI
    with FaultCluster(tmp_path, role_env={"runner": {"RUNNER_ACK_WAIT_SECONDS": "30"}}) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        want = p["in_flight"]
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')", lambda n: n >= want,
                   timeout=120, message=f"{want} runs in flight")
        reconnect = []
        for i in range(p["outages"]):
            if i:
                time.sleep(random.uniform(*p["between"]))
            c.kill_nats()
            time.sleep(random.uniform(*p["down"]))
            started = c.start_nats().time
            c.wait_ready(deadline=60)          # every service says it is connected again
            reconnect.append(round(time.time() - started, 2))
        load.wait_submitted()
        rep_load = load.join()
        quiesce_schedules(c, w)
        report = check_invariants(c, rep_load.accepted, scenario="nats_restart", load_report=rep_load,
                                  extra_info={"nats_restart_to_all_ready_s": reconnect})
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
