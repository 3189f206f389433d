"""Versioned SQL migrations, applied at start-up by every service, idempotently.

An advisory lock serializes concurrent start-ups (several replicas booting at once); each file
runs once, recorded in schema_migrations.
"""
from importlib import resources

import psycopg

_LOCK = 0x5746_4D49  # "WFMI"


def migration_files() -> list[tuple[int, str, str]]:
    files = []
    for entry in resources.files("wf_platform.migrations").iterdir():
        if entry.name.endswith(".sql"):
            files.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(files)


def migrate(dsn: str) -> list[str]:
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return applied
