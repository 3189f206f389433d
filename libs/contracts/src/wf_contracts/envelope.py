"""The stored form of an event: log metadata around a domain event."""
from datetime import datetime

import msgspec

from .events import AnyEvent


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What an appender hands to the log; seq, version, time and hash are assigned there."""

    id: str
    event: AnyEvent
    actor: str
    causation_id: str | None = None
    correlation_id: str | None = None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """An event as it sits in the log (SPEC §8)."""

    id: str
    seq: int
    stream: str
    version: int
    tenant: str
    type: str
    event: AnyEvent
    actor: str
    causation_id: str | None
    correlation_id: str | None
    recorded_at: datetime
    hash: str
