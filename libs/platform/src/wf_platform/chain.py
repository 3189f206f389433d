"""The hash chain, in Python, mirroring wf_append in 001_event_log.sql.

Used by `wfctl audit verify` (also offline, on an exported file) and the audit API.
"""
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ChainRow:
    seq: int
    id: str
    stream: str
    version: int
    tenant: str
    type: str
    actor: str
    causation_id: str | None
    correlation_id: str | None
    recorded_at: datetime
    payload: str
    hash: bytes


def link(prev: bytes, r: ChainRow) -> bytes:
    text = "\n".join(
        (
            str(r.seq), r.id, r.stream, str(r.version), r.tenant, r.type, r.actor,
            r.causation_id or "", r.correlation_id or "", str(micros(r.recorded_at)), r.payload,
        )
    )
    return hashlib.sha256(prev + text.encode()).digest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad: int | None = None
    reason: str | None = None


class ChainVerifier:
    """Feeds rows in seq order; stops at the first that does not link. Resumable across pages."""

    def __init__(self, prev: bytes = GENESIS, expected_seq: int = 1) -> None:
        self.prev = prev
        self.expected_seq = expected_seq
        self.checked = 0
        self.bad: tuple[int, str] | None = None

    def feed(self, rows: Iterable[ChainRow]) -> bool:
        for r in rows:
            if self.bad:
                return False
            self.checked += 1
            if r.seq != self.expected_seq:
                # a gap or a swap in the global order: removed, inserted or reordered events
                self.bad = (r.seq, f"expected seq {self.expected_seq}, found {r.seq}")
                return False
            if link(self.prev, r) != r.hash:
                self.bad = (r.seq, "hash does not match the event and its predecessor")
                return False
            self.prev = r.hash
            self.expected_seq += 1
        return True

    def finish(self, head_seq: int | None = None, head_hash: bytes | None = None) -> VerifyResult:
        if self.bad is None and head_seq is not None:
            # the head row catches removal of the newest events, which no chain link can see
            if head_seq != self.expected_seq - 1 or (head_hash is not None and head_hash != self.prev):
                self.bad = (self.expected_seq, f"log head says seq {head_seq}, log ends at {self.expected_seq - 1}")
        if self.bad:
            return VerifyResult(False, self.checked, self.bad[0], self.bad[1])
        return VerifyResult(True, self.checked)
