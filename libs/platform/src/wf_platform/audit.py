"""Reading the log for auditors: verify the hash chain in pages (fast: one pass, no decoding)."""
from psycopg_pool import AsyncConnectionPool

from .chain import ChainVerifier, VerifyResult
from .eventlog import EVENT_COLUMNS, chain_row


async def verify_log(pool: AsyncConnectionPool, page: int = 20_000) -> VerifyResult:
    verifier = ChainVerifier()
    after = 0
    async with pool.connection() as conn:
        # one snapshot for the whole pass, so concurrent appends cannot look like tampering
        async with conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = await (await conn.execute("SELECT seq, hash FROM log_head WHERE id = 1")).fetchone()
            while True:
                cur = await conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (after, page)
                )
                rows = await cur.fetchall()
                if not rows:
                    break
                if not verifier.feed(chain_row(r) for r in rows):
                    break
                after = rows[-1][0]
    return verifier.finish(head[0], bytes(head[1]))
