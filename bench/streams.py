"""SSE delivery lag: many subscribers on one run; lag = receipt time minus the event's timestamp."""
import asyncio
import json
import statistics
import time
from datetime import datetime

import httpx

from tests.support.infra import wait_for

TERMINAL = ("run_completed", "run_failed", "run_cancelled")


def sse_lag(stack, target, subscribers: int = 1000, steps: int = 5) -> dict:
    c = stack.client
    chain = [{"id": f"s{i}", "type": "http_request", "config": {"url": f"{target.url}/sleep/100"},
              **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(steps)]
    # the first step waits for `release`, so every subscriber is connected before the events flow
    chain[0]["config"]["url"] = f"{target.url}/sleep/120000"
    wf = c.post("/api/workflows", json={"definition": {"name": "sse-lag", "steps": chain}}).json()["id"]
    run_id = c.post(f"/api/workflows/{wf}/run", json={}).json()["run_id"]
    wait_for(lambda: c.get(f"/api/workflows/runs/{run_id}").json()["run"]["step_runs"][0]["status"] == "running",
             timeout=60)

    async def one(client, opened, lags):
        async with client.stream("GET", f"/api/workflows/runs/{run_id}/stream",
                                 headers={"Last-Event-ID": "3"}) as r:  # skip the history already there
            cur: dict = {}
            async for line in r.aiter_lines():
                if line.startswith(": stream open"):
                    opened.append(1)
                elif line == "":
                    if "event" in cur:
                        got = time.time()
                        ts = json.loads(cur["data"])["timestamp"]
                        lags.append((got - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()) * 1000)
                        if cur["event"] in TERMINAL:
                            return
                    cur = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v

    async def main():
        limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=subscribers + 10)
        async with httpx.AsyncClient(base_url=stack.url, headers=c.headers, limits=limits,
                                     timeout=httpx.Timeout(300)) as client:
            opened: list[int] = []
            lags: list[float] = []
            tasks = [asyncio.create_task(one(client, opened, lags)) for _ in range(subscribers)]
            deadline = time.monotonic() + 120
            while len(opened) < subscribers and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            target.release.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
            return len(opened), lags

    opened, lags = asyncio.run(main())
    lags.sort()
    return {"subscribers": opened, "deliveries": len(lags), "lag_ms_p50": round(statistics.median(lags), 1),
            "lag_ms_p99": round(lags[int(len(lags) * 0.99) - 1], 1)}
