"""`wfctl`: the operators' and auditors' command line.

  wfctl audit export [--stream S] [--out FILE]   the log as JSON Lines, in seq order
  wfctl audit verify [--file FILE]               check the hash chain (live database, or an export offline)
  wfctl audit replay [--swap]                    rebuild every projection from the log into fresh tables,
                                                 compare with the live ones; --swap puts the rebuilt ones live
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
    args = ap.parse_args(argv)
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
