"""Fire times in a schedule's IANA zone (pure).

croniter walks naive wall-clock times; each is then placed in the zone. A wall time that a
daylight-saving jump skips does not exist and is not fired; a wall time that occurs twice
(the clock falls back) is fired once, at its first occurrence.
"""
import re
from collections import deque
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

# After a long outage only the newest fire times matter (the latest runs, a capped list is recorded
# as missed), so enumeration starts at most this far back instead of at the first missed fire.
LOOKBACK = timedelta(days=1)


_RANDOM = re.compile(r"(?i)(^|[\s,])R(?=$|[\s,(/])")


class ScheduleError(ValueError):
    pass


def check(cron_expression: str, tz: str) -> None:
    if not isinstance(cron_expression, str) or len(cron_expression.split()) != 5:
        raise ScheduleError(f"invalid cron expression '{cron_expression}': expected five fields")
    if not croniter.is_valid(cron_expression):
        raise ScheduleError(f"invalid cron expression '{cron_expression}'")
    if _RANDOM.search(cron_expression):
        # croniter's "R" picks a random value per parse: replicas and the API would disagree
        raise ScheduleError(f"invalid cron expression '{cron_expression}': random values (R) are not supported")
    zone(tz)


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ScheduleError(f"unknown time zone '{tz}'") from exc


def _exists(wall: datetime, z: ZoneInfo) -> datetime | None:
    aware = wall.replace(tzinfo=z, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(z).replace(tzinfo=None)
    return aware.astimezone(timezone.utc) if back == wall else None


def next_fire(cron_expression: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (UTC in, UTC out)."""
    z = zone(tz)
    wall = after.astimezone(z).replace(tzinfo=None)
    try:
        it = _iterator(cron_expression)
        it.set_current(wall, force=True)
        for _ in range(100_000):
            candidate = it.get_next(datetime)
            utc = _exists(candidate, z)
            if utc is not None and utc > after:
                return utc
    except CroniterError as exc:  # e.g. '0 0 30 2 *': no such date, ever
        raise ScheduleError(f"cron expression '{cron_expression}' never fires") from exc
    raise ScheduleError(f"cron expression '{cron_expression}' never fires")


@lru_cache(maxsize=4096)
def _iterator(cron_expression: str) -> croniter:
    # parsing dominates a fire's CPU time; one parsed iterator per expression is reused (moved with
    # set_current before each walk; callers are synchronous, so two walks never interleave)
    return croniter(cron_expression, datetime(2000, 1, 1))


def recent_fires(cron_expression: str, tz: str, first_due: datetime, now: datetime,
                 keep: int) -> tuple[list[datetime], bool, datetime]:
    """The newest `keep` fire times in [first_due, now], oldest first, whether that is all of them,
    and the first fire time after now.

    first_due is itself a fire time (a schedule's next_run_at). The walk starts at most LOOKBACK
    before now, so a week-long outage of a per-minute schedule costs a day of steps, not a week.
    """
    start = first_due
    if now - first_due > LOOKBACK:
        probe = next_fire(cron_expression, tz, now - LOOKBACK)
        if probe <= now:  # a sparse schedule may have nothing in the window: then walk it all
            start = probe
    out: deque[datetime] = deque(maxlen=keep)
    seen = 0
    t = start
    while t <= now:
        out.append(t)
        seen += 1
        t = next_fire(cron_expression, tz, t)
    return list(out), start == first_due and seen <= keep, t
