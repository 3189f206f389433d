"""Audit benchmarks on a log of a million events: hash-chain verify speed and projection rebuild speed."""
import asyncio
import time
from datetime import datetime, timedelta, timezone

import psycopg

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.timefmt import iso_z
from wf_platform.audit import verify_log
from wf_platform.db import open_pool
from wf_platform.rebuild import rebuild

DEFINITION = {"name": "bench", "steps": [{"id": f"s{i}", "type": "http_request",
                                          "config": {"url": "https://example.com"}} for i in range(3)]}


def _run_events(n: int) -> list[ev.Event]:
    rid = f"run_bench{n:08d}"
    out: list[ev.Event] = [ev.RunCreated(run_id=rid, workflow_id="wf_bench", workflow_version=1,
                                         definition=DEFINITION), ev.RunStarted(run_id=rid)]
    for i in range(3):
        out.append(ev.StepDispatched(run_id=rid, step_id=f"s{i}", attempt=1, step_type="http_request",
                                     config={"url": "https://example.com"}))
        out.append(ev.StepCompleted(run_id=rid, step_id=f"s{i}", attempt=1, output={"status_code": 200}))
    out.append(ev.RunCompleted(run_id=rid))
    return out  # 9 events


def fill_log(dsn: str, events: int) -> int:
    """Append ~`events` events as runs of 9 through wf_append (so the hash chain is real)."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    written = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        n = 0
        while written < events:
            with conn.transaction():
                for _ in range(100):  # 100 runs per transaction
                    evs = _run_events(n)
                    at = iso_z(t0 + timedelta(seconds=n))
                    wire = [{"id": f"evt_b{n:08d}_{k}", "type": type(e).__struct_config__.tag,
                             "payload": codec.encode_event(e), "actor": "bench", "causation_id": None,
                             "correlation_id": None, "recorded_at": at} for k, e in enumerate(evs)]
                    conn.execute("SELECT count(*) FROM wf_append(%s, 0, 'bench', %s::jsonb)",
                                 (f"run_bench{n:08d}", codec.encode(wire).decode()))
                    n += 1
                    written += len(evs)
    return written


def audit_speed(dsn: str, events: int = 1_000_000) -> dict:
    t = time.perf_counter()
    written = fill_log(dsn, events)
    fill_s = time.perf_counter() - t

    async def verify():
        pool = await open_pool(dsn, min_size=1, max_size=2)
        try:
            t0 = time.perf_counter()
            r = await verify_log(pool)
            return r, time.perf_counter() - t0
        finally:
            await pool.close()

    result, verify_s = asyncio.run(verify())
    report = asyncio.run(rebuild(dsn))
    return {"events": written, "fill_seconds": round(fill_s, 1),
            "verify_ok": result.ok, "verify_seconds": round(verify_s, 2),
            "verify_events_per_s": round(result.events_checked / verify_s),
            # the fill bypassed the projections, so only the rebuild's speed is meaningful here
            "rebuild_seconds": round(report.seconds, 2), "rebuild_events_per_s": round(report.events_per_second)}
