"""The scheduler as processes (issue 7). Time comes from a test clock file (SCHEDULER_TEST_CLOCK_FILE)
that the test rewrites: no test waits for a real minute to pass."""
import os
import signal
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.conninfo import make_conninfo

from wf_contracts.timefmt import iso_z
from wf_scheduler.clock import write_clock_file
from wf_scheduler.decide import run_id_for

from tests.e2e.test_walking_skeleton import http_workflow, wait_run
from tests.support.infra import wait_for


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _schedules(c, wf: str, n: int) -> tuple[list[str], datetime]:
    """n per-minute schedules that all first fire at the same minute boundary."""
    # not right before a boundary, or the schedules would straddle it
    wait_for(lambda: datetime.now(timezone.utc).second < 50, timeout=15, interval=0.2)
    ids = []
    for _ in range(n):
        r = c.post(f"/api/workflows/{wf}/schedules", json={"cron_expression": "* * * * *", "input_data": {"n": 1}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["schedule_id"])
    nexts = {s["next_run_at"] for s in c.get(f"/api/workflows/{wf}/schedules", params={"limit": 200}).json()["schedules"]}
    assert len(nexts) == 1, nexts
    return ids, _t(nexts.pop())


def _scheduled_runs(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, doc->'metadata'->>'schedule_id', doc->'metadata'->>'fire_time' FROM runs"
                            " WHERE doc->>'trigger' = 'schedule'").fetchall()


def test_a_fire_runs_the_workflow_through_the_whole_stack(stack_factory, target, tmp_path):
    clock = tmp_path / "clock"
    write_clock_file(clock, datetime.now(timezone.utc))
    with stack_factory(orchestrators=1, runners=1, schedulers=1, env={"SCHEDULER_TEST_CLOCK_FILE": str(clock)}) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=http_workflow(target.url)).json()["id"]
        [sid], first = _schedules(c, wf, 1)
        write_clock_file(clock, first - timedelta(seconds=1))
        write_clock_file(clock, first + timedelta(seconds=0.2))
        run_id = wait_for(lambda: (c.get(f"/api/workflows/{wf}/runs").json()["runs"] or [{}])[0].get("id"),
                          timeout=30, message="the scheduled run")
        assert run_id == run_id_for(sid, first)
        run = wait_run(c, run_id)
        assert run["status"] == "completed" and run["trigger"] == "schedule", stack.logs()
        assert run["input_data"] == {"n": 1}
        [(rid, meta_sid, fire_time)] = _scheduled_runs(stack.base_env["DATABASE_URL"])
        assert (rid, meta_sid, fire_time) == (run_id, sid, iso_z(first))
        s = c.get(f"/api/workflows/schedules/{sid}").json()
        assert _t(s["last_run_at"]) == first and _t(s["next_run_at"]) == first + timedelta(minutes=1)


def test_a_scheduler_paused_past_its_lease_causes_no_duplicate(stack_factory, tmp_path):
    """Replica A is frozen (SIGSTOP) while it holds a batch of due schedules in an open transaction.
    Postgres cuts its session after the lease (2 s idle in transaction), replica B fires those
    schedules and the next minute's too; when A wakes, its old transaction is gone: no run twice."""
    n = 50
    clock = tmp_path / "clock"
    write_clock_file(clock, datetime.now(timezone.utc))
    stack = stack_factory(orchestrators=0, runners=0, schedulers=0)
    dsn = stack.base_env["DATABASE_URL"]

    def env(name: str) -> dict[str, str]:
        # application_name tells the two replicas' sessions apart in pg_stat_activity
        return {"DATABASE_URL": make_conninfo(dsn, application_name=name), "SCHEDULER_TEST_CLOCK_FILE": str(clock),
                "SCHEDULER_LEASE_SECONDS": "2", "SCHEDULER_BATCH": "20", "SCHEDULER_WORKERS": "1",
                "SCHEDULER_SWEEP_SECONDS": "3600", "WORKFLOW_RELAY": "0"}

    a = stack.add_ops("scheduler", "wf-scheduler", env("sched_a"))
    stack.add_ops("scheduler", "wf-scheduler", env("sched_b"))
    with stack, psycopg.connect(dsn, autocommit=True) as db:
        c = stack.client
        wf = c.post("/api/workflows", json=http_workflow("http://127.0.0.1:9")).json()["id"]
        ids, m0 = _schedules(c, wf, n)

        def runs_for(minute: int) -> int:
            t = iso_z(m0 + timedelta(minutes=minute))
            return sum(1 for _, _, ft in _scheduled_runs(dsn) if ft == t)

        def holding(name: str) -> bool:
            # locked a batch of due schedules and now waits for the workflows table
            return db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
                " AND query LIKE '%%FROM workflows WHERE id = ANY%%'", (name,)).fetchone()[0] == 1

        # hold both replicas inside their fire transactions: they block reading the workflows table
        with psycopg.connect(dsn) as blocker:
            blocker.execute("LOCK TABLE workflows IN ACCESS EXCLUSIVE MODE")
            write_clock_file(clock, m0 + timedelta(seconds=0.3))
            wait_for(lambda: holding("sched_a") and holding("sched_b"), timeout=30,
                     message="both replicas holding a batch")
            os.kill(a.pid, signal.SIGSTOP)
            try:
                blocker.rollback()  # B goes on; A, frozen, sits idle in its transaction with rows locked
                wait_for(lambda: runs_for(0) == n, timeout=30, message="B fires every schedule, A's rows too")
                assert db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sched_a'"
                                  " AND state LIKE 'idle in transaction%'").fetchone()[0] == 0
                write_clock_file(clock, m0 + timedelta(minutes=1, seconds=0.3))
                wait_for(lambda: runs_for(1) == n, timeout=30, message="B fires the next minute alone")
            finally:
                os.kill(a.pid, signal.SIGCONT)
        wait_for(lambda: "fire batch failed" in a.log_text(), timeout=30,
                 message="A woke up and its stale transaction failed")
        write_clock_file(clock, m0 + timedelta(minutes=2, seconds=0.3))
        wait_for(lambda: runs_for(2) == n, timeout=30, message="both replicas fire the third minute")

        runs = _scheduled_runs(dsn)
        assert len(runs) == 3 * n and len({r for r, _, _ in runs}) == 3 * n
        assert {(s, ft) for _, s, ft in runs} == {(s, iso_z(m0 + timedelta(minutes=k))) for s in ids for k in range(3)}
        created = db.execute("SELECT count(*), count(DISTINCT stream) FROM events WHERE type = 'run.created'").fetchone()
        assert created == (3 * n, 3 * n)
        fires = db.execute("SELECT count(*), count(DISTINCT (stream, payload::jsonb->>'fire_time')) FROM events"
                           " WHERE type = 'schedule.fired'").fetchone()
        assert fires == (3 * n, 3 * n)
        assert a.running, a.log_tail()
