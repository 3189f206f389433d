"""Rebuild every projection from the log into fresh tables, compare, and optionally swap them in.

The projection writers are the very functions used at append time (projections.py), pointed at
a scratch schema through search_path, so a rebuild can only differ from the live tables if the
live tables were damaged or a writer is not a pure function of the events.
"""
import time
from dataclasses import dataclass, field

import psycopg

from wf_contracts.run_state import RunState, evolve

from .eventlog import EVENT_COLUMNS, recorded_from_row
from .projections import apply_event, upsert_run

# Every table that is a projection of the log. Not here: events, log_head (the log itself),
# relay_checkpoint (how far NATS was fed), schema_migrations.
PROJECTION_TABLES = ["api_keys", "workflows", "workflow_versions", "runs", "idempotency", "schedules", "templates",
                     "run_schedule"]
# Columns compared after a rebuild, where not all of them: run_schedule's queue position is a fresh
# sequence number (only its order matters, and a rebuild keeps arrival order) and claimed_until /
# stream_version are soft-lease and write-skipping bookkeeping of live replicas.
COMPARE_COLUMNS = {"run_schedule": "run_id, tenant, workflow_id, phase, wf_cap, due_at"}


@dataclass
class RebuildReport:
    events: int = 0
    seconds: float = 0.0
    differences: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (only live, only rebuilt)

    @property
    def identical(self) -> bool:
        return not any(a or b for a, b in self.differences.values())

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _existing(conn, tables: list[str]) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    have = {r[0] for r in rows}
    return [t for t in tables if t in have]


async def rebuild(dsn: str, schema: str = "wf_rebuild", progress=None, page: int = 5000) -> RebuildReport:
    report = RebuildReport()
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as sync:
        tables = _existing(sync, PROJECTION_TABLES)
        sync.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        sync.execute(f"CREATE SCHEMA {schema}")
        for t in tables:
            sync.execute(f"CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL)")
            _own_sequences(sync, schema, t)
        total = sync.execute("SELECT seq FROM log_head").fetchone()[0]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"SET search_path TO {schema}, public")
        runs: dict[str, RunState] = {}
        after = 0
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as reader:
            while True:
                cur = await reader.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s",
                                           (after, page))
                rows = await cur.fetchall()
                if not rows:
                    break
                async with conn.transaction():
                    async with conn.pipeline():
                        for row in rows:
                            rec = recorded_from_row(row)
                            if rec.stream.startswith("run_"):
                                runs[rec.stream] = evolve(runs.get(rec.stream) or RunState(), rec)
                            await apply_event(conn, rec)
                after = rows[-1][0]
                report.events += len(rows)
                if progress:
                    progress(report.events, total)
        async with conn.transaction():
            async with conn.pipeline():
                for state in runs.values():
                    await upsert_run(conn, state)
    report.seconds = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as sync:
        for t in tables:
            cols = COMPARE_COLUMNS.get(t, "*")
            only_live = sync.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM public.{t} EXCEPT ALL SELECT {cols} FROM {schema}.{t}) x"
            ).fetchone()[0]
            only_new = sync.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM {schema}.{t} EXCEPT ALL SELECT {cols} FROM public.{t}) x"
            ).fetchone()[0]
            report.differences[t] = (only_live, only_new)
    return report


def _own_sequences(conn, schema: str, table: str) -> None:
    """LIKE copies a serial column's default, which still points at the live table's sequence.
    Give the rebuilt table a sequence of its own (moved along with it by SET SCHEMA on swap)."""
    cols = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (f"public.{table}",)).fetchall()
    for (col,) in cols:
        if conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (f"public.{table}", col)).fetchone()[0]:
            seq = f"{schema}.{table}_{col}_seq"
            conn.execute(f"CREATE SEQUENCE {seq} OWNED BY {schema}.{table}.{col}")
            conn.execute(f"ALTER TABLE {schema}.{table} ALTER COLUMN {col} SET DEFAULT nextval('{seq}')")


def swap_in(dsn: str, schema: str = "wf_rebuild") -> None:
    """Replace the live projection tables by the rebuilt ones, in one transaction."""
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()]
            for t in tables:
                conn.execute(f"DROP TABLE IF EXISTS public.{t}")  # also drops the sequences it owns
                conn.execute(f"ALTER TABLE {schema}.{t} SET SCHEMA public")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
