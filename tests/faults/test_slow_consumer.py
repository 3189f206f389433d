"""Scenario 4: a slow consumer. A step-runner, then an orchestrator, is frozen with SIGSTOP (its
whole process group) for longer than its consumer's ack wait (runner: RUNNER_ACK_WAIT_SECONDS=6
here; orchestrator: 5 s), then thawed with SIGCONT.

While a replica is frozen JetStream redelivers what it had fetched to the others, so the work
goes on (`progress_during_freeze` counts runs completed inside each freeze window; asserted > 0
for a runner frozen alone with 10 or more runs in flight); when it thaws it finishes what it was
doing: its results are stale or de-duplicated (orchestrator: the run stream's expected version;
runner: Nats-Msg-Id per dispatch). Repeated Idempotency-Keys are allowed only for steps the
frozen runner held (the default rule's SIGSTOP clause); everything else must hold as after any
fault.

Known issue, reported as a NOTE (`log_stall_during_freeze_s`), not asserted: an orchestrator
frozen in the middle of an append can hold the `log_head` row lock (serialized appends,
docs/event-log.md), and then every append of every replica, gateways included, waits until it
is thawed or Postgres cuts the session (idle_in_transaction_session_timeout, 15 s). Appends now
send BEGIN..COMMIT in one pipeline (9c853c5), which made it rarer (before: 2 of 3 orchestrator
freezes completed nothing; after: 1 of 14 freezes, the log head still for ~8 s), not impossible.
Runner freezes (runners never touch Postgres) must not slow the others: asserted.

Full scale: freezes of 9-12 s (runner, orchestrator, then both at once) for ~40 s with 200 runs
in flight; CI: one runner freeze, then one orchestrator freeze, 8 s each, 88 runs submitted over
22 s so that both freezes meet runs in flight.
"""
import itertools
import random
import time

from tests.faults.harness import FaultCluster, full_scale
from tests.faults.invariants import check_invariants
from tests.faults.workload import Load, quiesce_schedules, setup_workload

FULL = dict(rate=9.5, duration=55.0, pace_ms=4000, in_flight=190, fault_seconds=40.0, freeze=(9.0, 12.0),
            between=(2.0, 4.0), plan=("runner", "orchestrator", "both"))
CI = dict(rate=4.0, duration=22.0, pace_ms=1000, in_flight=15, fault_seconds=0.0, freeze=(8.0, 8.0),
          between=(0.5, 0.5), plan=("runner", "orchestrator"))
STALL_NOTE_S = 5.0   # the log head still this long during an orchestrator freeze is worth a NOTE


def test_sigstop_runner_and_orchestrator_longer_than_ack_wait(tmp_path):
    p = FULL if full_scale() else CI
    with FaultCluster(tmp_path) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"], finish_timeout=240).start()
        want = p["in_flight"]
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')", lambda n: n >= want,
                   timeout=120, message=f"{want} runs in flight")
        end = time.monotonic() + p["fault_seconds"]
        freezes, stalls = [], []
        for i in itertools.count():
            what = p["plan"][i % len(p["plan"])]
            if i >= len(p["plan"]) and time.monotonic() >= end:
                break
            procs = [c.pick("runner"), c.pick("orchestrator")] if what == "both" else [c.pick(what)]
            faults = [c.sigstop(proc) for proc in procs]
            try:
                stall = c.watch_log(random.uniform(*p["freeze"]))
            finally:
                for proc in procs:
                    c.sigcont(proc)
            freezes += faults
            stalls += [stall] * len(faults)
            time.sleep(random.uniform(*p["between"]))
        load.wait_submitted()
        rep_load = load.join()
        quiesce_schedules(c, w)
        progress = [c.sql("SELECT count(*) FROM events WHERE type = 'run.completed' AND recorded_at "
                          "BETWEEN to_timestamp(%s) AND to_timestamp(%s)", (f.time, f.until))[0][0] for f in freezes]
        report = check_invariants(c, rep_load.accepted, scenario="slow_consumer", load_report=rep_load,
                                  extra_info={"freezes": [f"{f.name} {f.until - f.time:.1f}s" for f in freezes],
                                              "progress_during_freeze": progress,
                                              "log_stall_during_freeze_s": stalls})
        # the log head standing still for longer than a consumer's ack wait while an orchestrator
        # is frozen: the frozen replica sits on the log's head lock (see the module docstring)
        stuck = [f"{f.name} frozen {f.until - f.time:.1f}s with {f.in_flight} runs in flight: no append for "
                 f"{st:.1f}s, {n} runs completed" for f, st, n in zip(freezes, stalls, progress)
                 if f.role == "orchestrator" and st >= STALL_NOTE_S]
        if stuck:
            report.notes.append("the event log stood still during an orchestrator freeze (" + "; ".join(stuck) +
                                "): the frozen replica held the log_head lock")
        report.emit()
        report.assert_ok()
        assert rep_load.errors == 0, rep_load.error_samples
        # the other runners took over: runs kept completing while a runner alone was frozen (where
        # runs were in flight: a freeze of the full version may come when the load is nearly done)
        orch = [f for f in freezes if f.role == "orchestrator"]
        alone = [not any(o.time < f.until and f.time < o.until for o in orch) for f in freezes]
        runner_progress = [(f.name, n) for n, f, a in zip(progress, freezes, alone)
                           if f.role == "runner" and a and (f.in_flight or 0) >= 10]
        assert all(n > 0 for _, n in runner_progress), runner_progress
