"""The scheduler's one source of time.

Everything that asks "what time is it?" goes through a Clock, so tests move time instead of
sleeping: unit and integration tests hold a ManualClock, process-level tests point
SCHEDULER_TEST_CLOCK_FILE at a file (FileClock). Production uses SystemClock.
"""
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """Time that moves only when told to (tests, benchmarks)."""

    def __init__(self, start: datetime) -> None:
        self._t = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._t

    def set(self, t: datetime) -> None:
        self._t = t.astimezone(timezone.utc)

    def advance(self, **delta: float) -> datetime:
        self._t += timedelta(**delta)
        return self._t


class ClockUnavailable(RuntimeError):
    pass


class FileClock:
    """TEST ONLY (SCHEDULER_TEST_CLOCK_FILE): now() is the RFC 3339 time written in a file.

    The file is read on every call, so a test moves every scheduler process's time by rewriting
    it (write a temporary file and rename it over, so a reader never sees half a timestamp). An
    unreadable file keeps the last good time; before the first good read now() raises, and the
    scheduler's loop just tries again on its next tick.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last: datetime | None = None

    def now(self) -> datetime:
        try:
            text = self.path.read_text().strip()
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if t.tzinfo is None:
                raise ValueError("the test clock needs a UTC offset or 'Z'")
            self._last = t.astimezone(timezone.utc)
        except (OSError, ValueError):
            if self._last is None:
                raise ClockUnavailable(f"test clock file {self.path} holds no RFC 3339 time") from None
        return self._last


def write_clock_file(path: str | Path, t: datetime) -> None:
    """Set a FileClock's time atomically (used by tests and the benchmark)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"))
    tmp.replace(path)
