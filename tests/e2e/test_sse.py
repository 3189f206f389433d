"""Live run streams over SSE: live reading, resume without gaps or repeats, replicas, fan-out."""
import asyncio
import json

import httpx

from tests.e2e.test_walking_skeleton import wait_run
from tests.support.stack import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


def parse(lines):
    """SSE frames from an iterator of lines -> list of (id, event, data)."""
    out, cur = [], {}
    for line in lines:
        if line == "":
            if "event" in cur:
                out.append((cur.get("id"), cur["event"], json.loads(cur["data"])))
                if cur["event"] in TERMINAL or cur["event"] == "error":
                    return out
            cur = {}
        elif line.startswith(":"):
            continue
        else:
            k, _, v = line.partition(":")
            cur[k] = v[1:] if v.startswith(" ") else v
    return out


def read_stream(base, run_id, last=None, stop_after=None, timeout=60):
    headers = dict(AUTH)
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    events = []
    with httpx.stream("GET", f"{base}/api/workflows/runs/{run_id}/stream", headers=headers,
                      timeout=httpx.Timeout(timeout)) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        cur = {}
        for line in r.iter_lines():
            if line == "":
                if "event" in cur:
                    events.append((int(cur["id"]) if cur["id"].isdigit() else cur["id"], cur["event"],
                                   json.loads(cur["data"])))
                    if cur["event"] in TERMINAL or (stop_after and len(events) >= stop_after):
                        return events
                cur = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(":")
                cur[k] = v[1:] if v.startswith(" ") else v
    return events


def slow_workflow(target, ms=1500):
    return {"definition": {"name": "slow", "steps": [
        {"id": "first", "type": "http_request", "config": {"url": f"{target.url}/x"}},
        {"id": "slow", "type": "http_request", "config": {"url": f"{target.url}/sleep/{ms}"},
         "depends_on": ["first"]},
        {"id": "last", "type": "http_request", "config": {"url": f"{target.url}/y"}, "depends_on": ["slow"]},
    ]}}


EXPECTED = ["run_queued", "run_started", "step_started", "step_completed", "step_started", "step_completed",
            "step_started", "step_completed", "run_completed"]


def test_live_stream_resume_replicas_and_replay(stack_factory, target):
    with stack_factory(orchestrators=1, runners=1, schedulers=0, gateways=2) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=slow_workflow(target)).json()["id"]
        run_id = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        live = read_stream(stack.url, run_id)
        assert [e for _, e, _ in live] == EXPECTED
        ids = [i for i, _, _ in live]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(d["run_id"] == run_id and d["timestamp"].endswith("Z") for _, _, d in live)
        assert live[3][2]["output"]["status_code"] == 200
        assert live[-1][2]["status"] == "completed" and live[-1][2]["duration_seconds"] > 0

        # a finished run: the whole history, then the stream closes
        assert read_stream(stack.url, run_id) == live
        # reconnect after the 2nd event, on the other gateway replica: exactly the rest
        other = f"http://127.0.0.1:{stack.gateway_ports[1]}"
        rest = read_stream(other, run_id, last=ids[1])
        assert rest == live[2:]
        # ?last_event_id= works like the header
        r = httpx.get(f"{other}/api/workflows/runs/{run_id}/stream?last_event_id={ids[-2]}", headers=AUTH,
                      timeout=30)
        assert [e for _, e, _ in parse(r.text.split("\n"))] == ["run_completed"]

        # reconnect in the middle of a live run
        run2 = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        first_part = read_stream(stack.url, run2, stop_after=2)
        second_part = read_stream(other, run2, last=first_part[-1][0])
        assert [e for _, e, _ in first_part + second_part] == EXPECTED
        wait_run(c, run2)


def test_stream_auth_and_tenant_checks(stack_factory):
    with stack_factory(orchestrators=1, runners=0, schedulers=0) as stack:
        r = httpx.get(f"{stack.url}/api/workflows/runs/run_nope/stream", timeout=10)
        assert r.status_code == 401
        r = httpx.get(f"{stack.url}/api/workflows/runs/run_nope/stream", headers=AUTH, timeout=10)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        r = httpx.get(f"{stack.url}/api/workflows/runs/run_nope/stream", headers={**AUTH, "Last-Event-ID": "x"},
                      timeout=10)
        assert r.status_code in (404, 422)


def test_200_concurrent_clients_each_get_every_event(stack_factory, target):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=slow_workflow(target, ms=20_000)).json()["id"]
        run_id = c.post(f"/api/workflows/{wf}/run").json()["run_id"]

        async def one(client, opened):
            got = []
            async with client.stream("GET", f"/api/workflows/runs/{run_id}/stream") as r:
                assert r.status_code == 200
                cur = {}
                async for line in r.aiter_lines():
                    if line.startswith(": stream open"):
                        opened.append(1)
                    if line == "":
                        if "event" in cur:
                            got.append(cur["event"])
                            if cur["event"] in TERMINAL:
                                return got
                        cur = {}
                    elif not line.startswith(":"):
                        k, _, v = line.partition(":")
                        cur[k] = v[1:] if v.startswith(" ") else v
            return got

        async def main():
            limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
            async with httpx.AsyncClient(base_url=stack.url, headers=AUTH, limits=limits,
                                         timeout=httpx.Timeout(120)) as client:
                opened: list[int] = []
                tasks = [asyncio.create_task(one(client, opened)) for _ in range(200)]
                deadline = asyncio.get_running_loop().time() + 60
                while len(opened) < 200 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                assert len(opened) == 200, f"only {len(opened)} streams opened"
                target.release.set()  # let the slow step finish while all 200 are watching
                return await asyncio.gather(*tasks)

        results = asyncio.run(main())
        assert all(r == EXPECTED for r in results), {tuple(r) for r in results}


def read_frames(url, headers, count, timeout=60):
    out = []
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(timeout)) as r:
        assert r.status_code == 200
        cur = {}
        for line in r.iter_lines():
            if line == "":
                if "event" in cur:
                    out.append((int(cur["id"]), cur["event"], json.loads(cur["data"])))
                    if len(out) >= count:
                        return out
                cur = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(":")
                cur[k] = v[1:] if v.startswith(" ") else v
    return out


def test_workflow_stream_for_dashboards(stack_factory, target):
    import threading

    import psycopg

    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=slow_workflow(target, ms=300)).json()["id"]
        other = c.post("/api/workflows", json=slow_workflow(target, ms=10)).json()["id"]
        with psycopg.connect(stack.base_env["DATABASE_URL"]) as conn:
            head = conn.execute("SELECT seq FROM log_head").fetchone()[0]
        got: list = []
        # from the current head on: whatever happens before the subscription is made comes from the
        # log, the rest live, with nothing lost or repeated at the hand-over
        reader = threading.Thread(target=lambda: got.extend(read_frames(
            f"{stack.url}/api/workflows/{wf}/stream", {**AUTH, "Last-Event-ID": str(head)},
            count=2 * len(EXPECTED), timeout=90)))
        reader.start()
        r1 = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        c.post(f"/api/workflows/{other}/run")
        r2 = c.post(f"/api/workflows/{wf}/run").json()["run_id"]
        reader.join(timeout=120)
        assert not reader.is_alive()
        assert {d["run_id"] for _, _, d in got} == {r1, r2}
        assert all(d["workflow_id"] == wf for _, _, d in got)
        ids = [i for i, _, _ in got]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for rid in (r1, r2):
            assert [e for _, e, d in got if d["run_id"] == rid] == EXPECTED
        # resume from the 3rd event: the rest comes from the log, in the same order
        rest = read_frames(f"{stack.url}/api/workflows/{wf}/stream", {**AUTH, "Last-Event-ID": str(ids[2])},
                           count=len(got) - 3)
        assert rest == got[3:]
