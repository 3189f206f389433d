"""Orchestration benchmarks: burst throughput of 3-step workflows, durable timer lateness."""
import asyncio
import statistics
import time
from datetime import datetime

import httpx
import psycopg

from tests.support.infra import wait_for


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def _chain(url: str, n: int) -> list[dict]:
    return [{"id": f"s{i}", "type": "http_request", "config": {"url": f"{url}/y"},
             **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(n)]


def throughput(stack, target, burst: int = 200) -> dict:
    """`burst` three-step workflows submitted at once (20 requests in flight); until all finished."""
    c = stack.client
    wf = c.post("/api/workflows", json={"definition": {"name": "burst", "steps": _chain(target.url, 3)},
                                        "tags": ["bench"]}).json()["id"]

    async def submit() -> list[str]:
        async with httpx.AsyncClient(base_url=stack.url, headers=c.headers, timeout=60) as ac:
            sem = asyncio.Semaphore(20)

            async def one() -> str:
                async with sem:
                    return (await ac.post(f"/api/workflows/{wf}/run", json={})).json()["run_id"]

            return await asyncio.gather(*[one() for _ in range(burst)])

    t0 = time.perf_counter()
    ids = asyncio.run(submit())
    dsn = stack.base_env["DATABASE_URL"]

    def done() -> bool:
        with psycopg.connect(dsn) as conn:
            n = conn.execute("SELECT count(*) FROM runs WHERE id = ANY(%s) AND status IN ('completed', 'failed')",
                             (ids,)).fetchone()[0]
        return n == len(ids)

    wait_for(done, timeout=600, interval=0.05)
    wall = time.perf_counter() - t0
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT doc->>'status', doc->>'created_at', doc->>'completed_at' FROM runs"
                            " WHERE id = ANY(%s)", (ids,)).fetchall()
    lat = [(_ts(b) - _ts(a)).total_seconds() * 1000 for _, a, b in rows]
    return {"runs": burst, "completed": sum(r[0] == "completed" for r in rows),
            "workflows_per_s": round(burst / wall, 1),
            "latency_ms_p50": round(statistics.median(lat), 1), "latency_ms_p99": round(_pct(lat, 0.99), 1)}


def timer_lateness(stack, n: int = 20, seconds: float = 1.0) -> dict:
    """n runs each waiting `seconds` on a durable timer; lateness = actual wait minus asked."""
    c = stack.client
    wf = c.post("/api/workflows", json={"definition": {"name": "timer", "steps": [
        {"id": "w", "type": "wait", "config": {"duration_seconds": seconds}}]}}).json()["id"]
    ids = [c.post(f"/api/workflows/{wf}/run", json={}).json()["run_id"] for _ in range(n)]
    late = []
    for rid in ids:
        run = wait_for(lambda: (lambda r: r if r["status"] == "completed" else None)(
            c.get(f"/api/workflows/runs/{rid}").json()["run"]), timeout=60)
        s = run["step_runs"][0]
        late.append(((_ts(s["completed_at"]) - _ts(s["started_at"])).total_seconds() - seconds) * 1000)
    return {"waits": n, "late_ms_p50": round(statistics.median(late), 1), "late_ms_max": round(max(late), 1)}
