"""The working set of one decision: new events, and the state as if they were already recorded."""
import hashlib
from datetime import datetime
from typing import Callable

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.run_state import RunState, apply

IdFactory = Callable[[str], str]
ACTOR = "orchestrator"


class Out:
    def __init__(self, state: RunState, now: datetime, ids: IdFactory, cause: str | None) -> None:
        self.state, self.now, self.ids, self.cause = state, now, ids, cause
        self.events: list[NewEvent] = []

    def emit(self, event: ev.Event) -> None:
        event_id = self.ids("evt")
        self.events.append(
            NewEvent(id=event_id, event=event, actor=ACTOR, causation_id=self.cause,
                     correlation_id=self.state.run_id)
        )
        self.state = apply(self.state, event, self.now, event_id, self.state.tenant)

    def random(self) -> float:
        """A number in [0, 1) drawn from the injected id source, so decide stays deterministic
        under test ids and random in production without a clock or RNG of its own."""
        digest = hashlib.sha256(self.ids("rnd").encode()).digest()
        return int.from_bytes(digest[:7], "big") / float(1 << 56)

    @property
    def run_id(self) -> str:
        return self.state.run_id
