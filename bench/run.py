"""`make bench`: benchmarks on real processes; results go to bench/results/*.json.

step_chain: a 10-step sequential chain of trivial http_request steps (a local HTTP target that
answers at once); per-step time = run duration / 10, from the run's own timestamps.
api_latency: p50/p99 of POST /api/workflows and GET /api/workflows/{id}, 2,000 each, 20 at a time.
schedule_lateness: fire lateness p50/p99 with 10,000 schedules due in the same minute.
Machines are noisy: we report medians and p90 over many runs, never assert on them.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.infra import nats_for_tests, postgres_for_tests, wait_for  # noqa: E402
from tests.support.stack import Stack  # noqa: E402
from tests.support.target import Target  # noqa: E402
from bench import audit, orchestration, streams  # noqa: E402


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def step_chain(stack: Stack, target: Target, runs: int, steps: int = 10) -> dict:
    chain = [{"id": f"s{i}", "type": "http_request", "config": {"url": f"{target.url}/x"},
              **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(steps)]
    c = stack.client
    wf = c.post("/api/workflows", json={"definition": {"name": "bench-chain", "steps": chain}}).json()["id"]
    per_step, wall = [], []
    for i in range(runs + 2):
        t0 = time.perf_counter()
        run_id = c.post(f"/api/workflows/{wf}/run", json={}).json()["run_id"]

        def done():
            r = c.get(f"/api/workflows/runs/{run_id}").json()["run"]
            return r if r["status"] in ("completed", "failed") else None

        run = wait_for(done, timeout=120, interval=0.002)
        t1 = time.perf_counter()
        assert run["status"] == "completed", run
        if i < 2:
            continue  # warm-up: connections, caches, consumer creation
        d = (_ts(run["completed_at"]) - _ts(run["started_at"])).total_seconds()
        per_step.append(d / steps * 1000)
        wall.append((t1 - t0) * 1000)
    per_step.sort()
    runner_metrics = _scrape(stack, "runner", ("wf_step_seconds", "wf_dispatch_latency_seconds"))
    return {
        "runs": runs, "steps_per_run": steps,
        "per_step_ms_median": round(statistics.median(per_step), 3),
        "per_step_ms_p90": round(per_step[int(len(per_step) * 0.9) - 1], 3),
        "per_step_ms_min": round(per_step[0], 3),
        "run_wall_ms_median": round(statistics.median(wall), 2),
        # mean time the runner spent inside the step (HTTP call to the local target) and mean time from
        # the orchestrator's decision to the runner starting the step (append + relay + JetStream + fetch)
        "runner_step_exec_ms_mean": runner_metrics.get("wf_step_seconds"),
        "decision_to_runner_ms_mean": runner_metrics.get("wf_dispatch_latency_seconds"),
    }


def _scrape(stack: Stack, role: str, names: tuple[str, ...]) -> dict:
    import httpx

    text = httpx.get(stack.ready_url(stack.role(role)[0]).replace("/readyz", "/metrics")).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for n in names:
            if line.startswith(n + "_sum"):
                sums[n] = sums.get(n, 0) + float(line.rsplit(" ", 1)[1])
            elif line.startswith(n + "_count"):
                counts[n] = counts.get(n, 0) + float(line.rsplit(" ", 1)[1])
    return {n: round(sums[n] / counts[n] * 1000, 3) for n in names if counts.get(n)}


def api_latency(stack: Stack, requests: int = 2000, concurrency: int = 20) -> dict:
    """p50/p99 of POST /api/workflows and GET /api/workflows/{id}: `requests` each, `concurrency`
    at a time from one httpx async client (issue 3). Latency is per request, client side."""
    import asyncio

    import httpx

    definition = {"name": "bench-api", "steps": [
        {"id": "fetch", "type": "http_request", "config": {"url": "https://example.com/{{ input.n }}"}},
        {"id": "notify", "type": "agent_task", "depends_on": ["fetch"],
         "config": {"agent_id": "agent_1", "goal": "Summarize {{ steps.fetch.output.body }}"}}]}

    async def phase(client, make_request) -> tuple[list[float], float]:
        queue: asyncio.Queue = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)
        latencies: list[float] = []

        async def worker():
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                r = await make_request(client, i)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code in (200, 201), r.text

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return sorted(latencies), time.perf_counter() - t0

    def summary(lat: list[float], wall: float) -> dict:
        return {"requests": len(lat), "concurrency": concurrency,
                "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2),
                "max_ms": round(lat[-1], 2), "per_second": round(len(lat) / wall, 1)}

    async def run() -> dict:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.client.headers, limits=limits,
                                     timeout=30) as client:
            for i in range(50):  # warm-up: connections, pools, caches
                await client.post("/api/workflows", json={"definition": definition})
            ids: list[str] = []

            async def post(c, i):
                r = await c.post("/api/workflows", json={"definition": definition, "tags": [f"t{i % 7}"]})
                ids.append(r.json()["id"])
                return r

            created = summary(*await phase(client, post))
            read = summary(*await phase(client, lambda c, i: c.get(f"/api/workflows/{ids[i % len(ids)]}")))
        return {"post_workflow": created, "get_workflow": read}

    return asyncio.run(run())


def schedule_lateness(tmp: Path, server_dsn: str, nats_url: str, count: int = 10_000) -> dict:
    """Fire lateness with `count` schedules due in the same minute (issue 7): two scheduler
    replicas on the real clock, no orchestrator (the scheduler's own capacity). Lateness of a fire
    = when the scheduler recorded it (its run is created in the same transaction) minus the
    nominal fire time; all_committed_s = when the bench saw the last fire committed."""
    import asyncio
    from datetime import timedelta, timezone

    import psycopg

    from tests.integration.test_scheduler_support import seed_schedules, seed_workflow
    from wf_platform.db import open_pool
    from wf_platform.eventlog import EventLog
    from wf_platform.migrate import migrate

    base, _, query = server_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + "/wf_bench_sched" + ("?" + query if query else "")
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS wf_bench_sched")
        conn.execute("CREATE DATABASE wf_bench_sched")
    migrate(dsn)

    async def seed() -> datetime:
        pool = await open_pool(dsn, max_size=16)
        log = EventLog(pool)
        wf = await seed_workflow(log, tenant="default")
        # the first minute boundary that leaves time to create them all and start the services
        due = (datetime.now(timezone.utc) + timedelta(seconds=count / 300 + 15)).replace(second=0, microsecond=0)
        due += timedelta(minutes=1)
        await seed_schedules(log, wf, count, due, cron=f"{due.minute} {due.hour} * * *", tenant="default")
        await pool.close()
        return due

    due = asyncio.run(seed())
    with Stack(tmp / "schedules", dsn, nats_url, orchestrators=0, runners=0, schedulers=2), \
            psycopg.connect(dsn, autocommit=True) as conn:
        def fired() -> int:
            return conn.execute("SELECT count(*) FROM events WHERE type = 'schedule.fired'").fetchone()[0]

        assert datetime.now(timezone.utc) < due, "seeding took longer than planned"
        wait_for(lambda: fired() >= count, timeout=(due - datetime.now(timezone.utc)).total_seconds() + 600,
                 interval=0.05)
        all_committed = (datetime.now(timezone.utc) - due).total_seconds()
        late = sorted(r[0] for r in conn.execute(
            "SELECT extract(epoch FROM recorded_at - (payload::jsonb->>'fire_time')::timestamptz)::float8"
            " FROM events WHERE type = 'schedule.fired'"))
        runs = conn.execute("SELECT count(*) FROM events WHERE type = 'run.created'").fetchone()[0]
    return {"schedules": count, "scheduler_replicas": 2, "runs_created": runs,
            "lateness_s_p50": round(statistics.median(late), 3), "lateness_s_p99": round(late[int(len(late) * 0.99) - 1], 3),
            "lateness_s_max": round(late[-1], 3), "all_committed_s": round(all_committed, 3)}


def _fresh_db(dsn: str, name: str) -> str:
    import psycopg

    from wf_platform.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = dsn.partition("?")
    out = base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    migrate(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--nats-nosync", action="store_true", help="JetStream without sync_interval: always")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run (default: all)")
    ap.add_argument("--audit-events", type=int, default=1_000_000)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))

    def want(name: str) -> bool:
        return not only or name in only

    results: dict = {"when": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        tmp = Path(tmp)
        with postgres_for_tests(tmp / "pg") as pg, nats_for_tests(tmp / "nats", sync_always=not args.nats_nosync) as nats, \
                Target() as target:
            with Stack(tmp, pg.dsn, nats.url, orchestrators=1, runners=1, schedulers=0) as stack:
                if want("step_chain"):
                    results["step_chain"] = step_chain(stack, target, args.runs)
                if want("api_latency"):
                    results["api_latency"] = api_latency(stack)
                if want("throughput"):
                    results["throughput_1_orchestrator"] = orchestration.throughput(stack, target)
                if want("timer_lateness"):
                    results["timer_lateness"] = orchestration.timer_lateness(stack)
                if want("sse_lag"):
                    results["sse_lag"] = streams.sse_lag(stack, target)  # last: it releases the target
            if want("throughput"):
                # the same burst with two orchestrator replicas sharing the work (fresh database)
                with Stack(tmp / "two", _fresh_db(pg.dsn, "bench_two"), nats.url, orchestrators=2, runners=1,
                           schedulers=0) as stack2:
                    results["throughput_2_orchestrators"] = orchestration.throughput(stack2, target)
            if want("schedule_lateness"):
                results["schedule_lateness"] = schedule_lateness(tmp, pg.dsn, nats.url)
            if want("audit"):
                results["audit"] = audit.audit_speed(_fresh_db(pg.dsn, "bench_audit"), args.audit_events)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
