"""Connection pool factory. Built inside each service's start-up, never at import time."""
from psycopg_pool import AsyncConnectionPool


async def open_pool(dsn: str, min_size: int = 2, max_size: int = 10, name: str = "wf") -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True},
        open=False,
        name=name,
        # a connection that died with a Postgres restart is discarded on return; reconnect_timeout
        # keeps the pool trying instead of giving up while the database is down
        reconnect_timeout=3600,
    )
    await pool.open(wait=True, timeout=30)
    return pool
