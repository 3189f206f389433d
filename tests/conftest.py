"""Session-wide real infrastructure: one Postgres and one NATS for the integration and e2e tiers.

Testcontainers when a Docker engine answers, otherwise the embedded servers (never a mock).
Tests that need a clean slate create their own database (see fresh_db).
"""
import os
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support.infra import nats_for_tests, postgres_for_tests


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def pg_server(infra_dir):
    with postgres_for_tests(infra_dir / "pg") as pg:
        yield pg


@pytest.fixture(scope="session")
def nats_server(infra_dir):
    with nats_for_tests(infra_dir / "nats") as n:
        yield n


def _with_db(dsn: str, db: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + db
    return base + ("?" + query if query else "")


@pytest.fixture
def fresh_db(pg_server) -> str:
    """A brand-new database on the shared server, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_db(pg_server.dsn, name)
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_db(fresh_db) -> str:
    from wf_platform.migrate import migrate

    migrate(fresh_db)
    return fresh_db


@pytest.fixture
async def pool(migrated_db):
    from wf_platform.db import open_pool

    p = await open_pool(migrated_db, min_size=1, max_size=20)
    yield p
    await p.close()
