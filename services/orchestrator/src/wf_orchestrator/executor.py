"""Where every message for a run is handled: one at a time per run within this process.

Bus messages are awaited (the consumer acks after); timer ticks and admission kicks are
submitted in the background, at most one pending per (run, kind), within a concurrency bound.
Across replicas nothing is locked: the run stream's expected version decides.
"""
import asyncio
import logging

from .handler import RunHandler
from .messages import Message

log = logging.getLogger(__name__)


class RunExecutor:
    def __init__(self, handler: RunHandler, concurrency: int = 64) -> None:
        self.handler = handler
        self._locks: dict[str, list] = {}  # run id -> [lock, users]; dropped when unused
        self._pending: set[tuple[str, type]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._bound = asyncio.Semaphore(concurrency)

    async def handle(self, run_id: str, msg: Message):
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                return await self.handler.handle(run_id, msg)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(run_id, None)

    def submit(self, run_id: str, msg: Message) -> bool:
        """Handle in the background; False when the same kind of message is already pending."""
        key = (run_id, type(msg))
        if key in self._pending:
            return False
        self._pending.add(key)

        async def go() -> None:
            try:
                async with self._bound:
                    self._pending.discard(key)
                    await self.handle(run_id, msg)
            except Exception as exc:  # noqa: BLE001 - the timer or the sweep brings it back
                log.warning("background %s for %s failed: %r", type(msg).__name__, run_id, exc)
            finally:
                self._pending.discard(key)

        t = asyncio.create_task(go())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return True

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 20) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
