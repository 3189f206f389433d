"""Connection pool factory. Built inside each service's start-up, never at import time."""
from psycopg_pool import AsyncConnectionPool

IDLE_TX_MS = 15_000


async def open_pool(dsn: str, min_size: int = 2, max_size: int = 10, name: str = "wf",
                    timeout: float = 10.0) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # a transaction left open by a frozen process (SIGSTOP, GC pause) is cut off by Postgres
        # after this, so its row locks cannot hold up the others for long; a statement or
        # function that sets its own (the scheduler's lease) overrides it with SET LOCAL
        kwargs={"autocommit": True, "options": f"-c idle_in_transaction_session_timeout={IDLE_TX_MS}"},
        open=False,
        name=name,
        # a connection that died with a Postgres restart is discarded on return; reconnect_timeout
        # keeps the pool trying instead of giving up while the database is down
        reconnect_timeout=3600,
        # how long a caller waits for a connection: while the database is down the gateway answers
        # 503 after this (problems.py), instead of holding the client for the default 30 s
        timeout=timeout,
    )
    await pool.open(wait=True, timeout=30)
    return pool
