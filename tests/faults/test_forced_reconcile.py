"""`wfctl reconcile`: messages lost without a store loss (here: the dispatch purged from the stream
before any runner took it, so JetStream's de-duplication window still remembers its id) leave a
run waiting for its attempt deadline; a forced sweep re-dispatches it at once and the run
completes, the step's effect applied once."""
import asyncio
import subprocess
import time

import nats

from tests.faults.harness import FaultCluster
from tests.support.infra import resolve_command, wait_for
from wf_contracts import subjects


async def _purge_dispatches(url: str) -> int:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        before = (await js.stream_info(subjects.STREAM)).state.messages
        await js.purge_stream(subjects.STREAM, subject=subjects.DISPATCHES)
        return before - (await js.stream_info(subjects.STREAM)).state.messages
    finally:
        await nc.close()


def test_wfctl_reconcile_redrives_a_lost_dispatch(tmp_path):
    with FaultCluster(tmp_path, gateways=1, orchestrators=1, runners=1, schedulers=0) as c:
        runner = c.processes("runner")[0]
        runner.terminate(timeout=20)       # no runner: the dispatch waits in the stream
        r = c.api.post("/api/workflows", json={"definition": {"name": "lost", "steps": [
            {"id": "call", "type": "http_request", "config": {"method": "POST", "url": f"{c.target.url}/lost"}}]}})
        assert r.status_code == 201, r.text
        run_id = c.api.post(f"/api/workflows/{r.json()['id']}/run", json={}).json()["run_id"]
        c.wait_sql(f"SELECT count(*) FROM events WHERE stream = '{run_id}' AND type = 'step.dispatched'",
                   lambda n: n == 1, timeout=60, message="the step dispatched")
        # the relay has published it once the checkpoint passed it
        c.wait_sql("SELECT (SELECT seq FROM relay_checkpoint) >= (SELECT max(seq) FROM events WHERE type = "
                   "'step.dispatched')", bool, timeout=30, message="the dispatch published")
        assert asyncio.run(_purge_dispatches(c.nats_url)) == 1
        c.restart(runner)
        time.sleep(3)                       # the fault's shape: the runner is up and nothing comes
        assert c.sql("SELECT status FROM runs WHERE id = %s", (run_id,))[0][0] == "running"
        assert not c.target.requests
        t0 = time.monotonic()
        out = subprocess.run([resolve_command("wfctl"), "--database-url", c.dsn, "reconcile", "--wait", "60"],
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: c.sql("SELECT status FROM runs WHERE id = %s", (run_id,))[0][0] == "completed",
                 timeout=60, interval=0.2, message="the run to complete after the sweep")
        took = time.monotonic() - t0
        assert c.target.keys[f"{run_id}:call:1"] == 1
        assert sum(c.log_counts("reconciliation sweep: 1 unfinished runs re-driven, 1 dispatches").values()) == 1
        print(f"\n[faults] forced_reconcile: lost dispatch re-driven, run completed {took:.1f}s after wfctl reconcile")
