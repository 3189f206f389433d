"""`wfctl`: the operators' and auditors' command line.

  wfctl audit export [--stream S] [--out FILE]   the log as JSON Lines, in seq order
  wfctl audit verify [--file FILE]               check the hash chain (live database, or an export offline)
  wfctl audit replay [--swap]                    rebuild every projection from the log into fresh tables,
                                                 compare with the live ones; --swap puts the rebuilt ones live
  wfctl load [--url URL ...] [--api-key K] [--workflow-id ID | --definition FILE] --rate R --duration S
             [--input JSON] [--json OUT]         hold R runs/s for S s against the gateway(s), wait for
                                                 the runs, print throughput and latency (docs/load.md)
  wfctl reconcile [--wait S]                     make the orchestrators re-drive every unfinished run from
                                                 the log (as after a lost NATS store); waits for the sweep
"""
import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from typing import Iterator, TextIO

import psycopg

from .chain import ChainRow, ChainVerifier
from .eventlog import EVENT_COLUMNS
from .settings import DEFAULT_DATABASE_URL



def _rows(dsn: str, stream: str | None, page: int = 20_000) -> Iterator[tuple]:
    after = 0
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        while True:
            if stream:
                cur = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = %s AND seq > %s ORDER BY seq LIMIT %s",
                                   (stream, after, page))
            else:
                cur = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (after, page))
            rows = cur.fetchall()
            if not rows:
                return
            yield from rows
            after = rows[-1][0]


def _progress(n: int, total: int | None, out: TextIO = sys.stderr) -> None:
    if not out.isatty():
        return
    if total:
        filled = int(30 * n / max(total, 1))
        out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {n}/{total}")
    else:
        out.write(f"\r{n} events")
    out.flush()


def export(dsn: str, stream: str | None, out: TextIO) -> int:
    n = 0
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT seq FROM log_head").fetchone()[0]
    for seq, id_, st, version, tenant, type_, payload, actor, cause, corr, at, h in _rows(dsn, stream):
        # the payload is kept as the exact text the hash covers
        out.write(json.dumps({"seq": seq, "id": id_, "stream": st, "version": version, "tenant": tenant,
                              "type": type_, "payload": payload, "actor": actor, "causation_id": cause,
                              "correlation_id": corr, "recorded_at": at.isoformat(), "hash": bytes(h).hex()}) + "\n")
        n += 1
        if n % 10_000 == 0:
            _progress(n, None if stream else total)
    return n


def verify_file(path: str) -> dict:
    v = ChainVerifier()
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            row = ChainRow(d["seq"], d["id"], d["stream"], d["version"], d["tenant"], d["type"], d["actor"],
                           d["causation_id"], d["correlation_id"], datetime.fromisoformat(d["recorded_at"]),
                           d["payload"], bytes.fromhex(d["hash"]))
            if not v.feed([row]):
                break
    r = v.finish()
    return {"ok": r.ok, "events_checked": r.events_checked, "first_bad": r.first_bad, "reason": r.reason}


def verify_db(dsn: str) -> dict:
    from .audit import verify_log
    from .db import open_pool

    async def go():
        pool = await open_pool(dsn, min_size=1, max_size=2)
        try:
            return await verify_log(pool)
        finally:
            await pool.close()

    r = asyncio.run(go())
    return {"ok": r.ok, "events_checked": r.events_checked, "first_bad": r.first_bad, "reason": r.reason}


def replay(dsn: str, swap: bool) -> int:
    from .rebuild import rebuild, swap_in

    report = asyncio.run(rebuild(dsn, progress=lambda n, total: _progress(n, total)))
    print(json.dumps({"events": report.events, "seconds": round(report.seconds, 3),
                      "events_per_second": round(report.events_per_second),
                      "identical": report.identical,
                      "differences": {t: {"only_live": a, "only_rebuilt": b}
                                      for t, (a, b) in report.differences.items() if a or b}}))
    if swap:
        swap_in(dsn)
        print("rebuilt projections are now live", file=sys.stderr)
    return 0 if report.identical or swap else 1


# --------------------------------------------------------------------------- wfctl load

# Needs nothing outside the service: a shell script, a condition evaluated by the orchestrator and a
# short durable wait (runner, orchestrator and timers all take part).
DEFAULT_LOAD_WORKFLOW = {
    "name": "loadgen-default",
    "description": "Created by wfctl load: script -> condition -> short wait.",
    "steps": [
        {"id": "compute", "type": "script",
         "config": {"language": "shell", "code": "echo '{\"ok\": true}'", "timeout_seconds": 30}},
        {"id": "check", "type": "condition", "depends_on": ["compute"],
         "config": {"expression": "steps.compute.output.result.ok == true", "then": ["settle"], "else": []}},
        {"id": "settle", "type": "wait", "depends_on": ["check"], "config": {"duration_seconds": 0.05}},
    ],
}


def _load_api_key(given: str | None) -> str | None:
    if given:
        return given
    for var in ("WORKFLOW_API_KEY", "WORKFLOW_BOOTSTRAP_API_KEY"):
        if os.environ.get(var):
            return os.environ[var]
    from pathlib import Path

    path = Path(os.environ.get("WF_DEV_DATA_DIR") or ".data") / "dev-api-key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _create_load_workflow(urls: list[str], api_key: str, body: dict) -> str:
    import time

    import httpx

    last = ""
    for attempt in range(3 * len(urls)):
        url = urls[attempt % len(urls)].rstrip("/")
        try:
            r = httpx.post(f"{url}/api/workflows", json=body, timeout=15,
                           headers={"Authorization": f"Bearer {api_key}"})
        except httpx.HTTPError as exc:
            last = f"{url}: {type(exc).__name__}: {exc}"
            time.sleep(0.5)
            continue
        if r.status_code == 201:
            return r.json()["id"]
        last = f"{url}: HTTP {r.status_code}: {r.text[:300]}"
        if r.status_code < 500:
            break
        time.sleep(0.5)
    raise SystemExit(f"wfctl load: could not create the workflow: {last}")


def load(args) -> int:
    from .loadgen import LoadGen

    urls = args.url or [f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT') or 8080}"]
    api_key = _load_api_key(args.api_key)
    if not api_key:
        print("wfctl load: no API key (give --api-key, set WORKFLOW_API_KEY, or run `make run` first, "
              "which writes .data/dev-api-key)", file=sys.stderr)
        return 2
    input_data = json.loads(args.input) if args.input else None
    if input_data is not None and not isinstance(input_data, dict):
        print("wfctl load: --input must be a JSON object", file=sys.stderr)
        return 2
    workflow_id = args.workflow_id
    if not workflow_id:
        if args.definition:
            with open(args.definition) as f:
                doc = json.load(f)
            body = doc if "definition" in doc else {"definition": doc}
        else:
            body = {"definition": DEFAULT_LOAD_WORKFLOW}
        body.setdefault("trigger_type", "api")
        body.setdefault("tags", ["loadgen"])
        workflow_id = _create_load_workflow(urls, api_key, body)
        print(f"created workflow {workflow_id}", file=sys.stderr)
    gen = LoadGen(urls, api_key, workflow_id, rate=args.rate, duration=args.duration,
                  inputs=(lambda i: input_data) if input_data is not None else None,
                  max_in_flight=args.max_in_flight, submit_retry_seconds=args.submit_retry_seconds,
                  finish_timeout=args.finish_timeout,
                  progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"load: {args.rate:g} runs/s for {args.duration:g}s against {', '.join(urls)} "
          f"(workflow {workflow_id})", file=sys.stderr, flush=True)
    report = asyncio.run(gen.run())
    print(report.summary())
    if args.json:
        out = {"workflow_id": workflow_id, "urls": urls, **report.to_json()}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if report.errors == 0 and not report.unfinished else 1


def _add_load_parser(sub) -> None:
    lp = sub.add_parser("load", help="hold a rate of runs per second and report throughput and latency")
    lp.add_argument("--url", action="append", help="a gateway base URL; repeat for replicas "
                    "(default http://127.0.0.1:$GATEWAY_PORT, 8080)")
    lp.add_argument("--api-key", help="default: $WORKFLOW_API_KEY, $WORKFLOW_BOOTSTRAP_API_KEY, .data/dev-api-key")
    which = lp.add_mutually_exclusive_group()
    which.add_argument("--workflow-id", help="run this existing workflow")
    which.add_argument("--definition", help="create a workflow from this JSON file (a definition, or a create body)")
    lp.add_argument("--rate", type=float, required=True, help="runs per second")
    lp.add_argument("--duration", type=float, required=True, help="seconds of submitting")
    lp.add_argument("--input", help="input_data of every run (a JSON object)")
    lp.add_argument("--json", help="write the report as JSON to this file")
    lp.add_argument("--max-in-flight", type=int, default=1000)
    lp.add_argument("--submit-retry-seconds", type=float, default=120.0)
    lp.add_argument("--finish-timeout", type=float, default=600.0)


def reconcile(dsn: str, wait: float) -> int:
    """Mark the recorded bus epoch as "requested": the next orchestrator to check it (every 10 s)
    claims it and sweeps (services/orchestrator/.../reconcile.py). With --wait, wait for that."""
    import time

    with psycopg.connect(dsn, autocommit=True) as conn:
        n = conn.execute("UPDATE relay_checkpoint SET bus_epoch = 'requested' WHERE name = 'nats'").rowcount
        if n != 1:
            print("no relay checkpoint: is this a migrated workflow database?", file=sys.stderr)
            return 1
        print("reconciliation requested: an orchestrator sweeps within ~10 s", file=sys.stderr)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if conn.execute("SELECT bus_epoch FROM relay_checkpoint WHERE name = 'nats'").fetchone()[0] != "requested":
                print("an orchestrator claimed it; the sweep starts after its grace period "
                      "(its log says 'reconciliation sweep: ...' when done)", file=sys.stderr)
                return 0
            time.sleep(0.5)
    if wait > 0:
        print(f"no orchestrator claimed the sweep within {wait:g}s: is one running?", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wfctl")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    sub = ap.add_subparsers(dest="group", required=True)
    audit = sub.add_parser("audit").add_subparsers(dest="cmd", required=True)
    ex = audit.add_parser("export", help="write the log as JSON Lines")
    ex.add_argument("--stream")
    ex.add_argument("--out", default="-")
    ve = audit.add_parser("verify", help="verify the hash chain")
    ve.add_argument("--file", help="an exported JSON Lines file (offline, no database)")
    rp = audit.add_parser("replay", help="rebuild projections from the log and compare with the live ones")
    rp.add_argument("--swap", action="store_true", help="then replace the live projection tables by the rebuilt ones")
    _add_load_parser(sub)
    rc = sub.add_parser("reconcile", help="re-drive every unfinished run from the log (after a lost NATS store)")
    rc.add_argument("--wait", type=float, default=30.0, help="seconds to wait for an orchestrator to take it (0: don't)")
    args = ap.parse_args(argv)
    if args.group == "load":
        return load(args)
    if args.group == "reconcile":
        return reconcile(args.database_url, args.wait)
    if args.cmd == "replay":
        return replay(args.database_url, args.swap)
    if args.cmd == "export":
        out = sys.stdout if args.out == "-" else open(args.out, "w")
        try:
            n = export(args.database_url, args.stream, out)
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"\nexported {n} events", file=sys.stderr)
        return 0
    result = verify_file(args.file) if args.file else verify_db(args.database_url)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
