"""What a due schedule should do now (pure): catch-up and overlap decisions.

catchup (which due fire times start a run):
  latest  the newest due fire runs, older ones are recorded as missed: never a burst (default)
  all     every due fire runs, newest ALL_CAP at most; older ones are recorded as missed
  none    a fire runs only if it is at most MISFIRE_GRACE late; otherwise all are missed
overlap (what a fire does while the schedule's previous run is still going):
  allow       it runs anyway (default)
  skip        it is recorded as skipped
  buffer_one  it is held and starts when the previous run finishes; while one is held,
              further fires are skipped
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from .crontime import recent_fires

CATCHUPS = ("latest", "none", "all")
OVERLAPS = ("allow", "skip", "buffer_one")
MISSED_CAP = 100  # missed fire times listed in one event; missed_since marks where the gap began
ALL_CAP = 50
# "none" must still fire a schedule the scheduler is merely a little late for (a busy minute, a
# restart); a fire later than this was missed. Like Temporal's catchup window at its minimum:
# short enough that "none" differs from "latest" even for a per-minute schedule.
MISFIRE_GRACE = timedelta(seconds=15)


@dataclass(frozen=True)
class CatchupPlan:
    run: list[datetime]           # fire times to start now, oldest first
    missed: list[datetime]        # the newest MISSED_CAP missed fire times, oldest first
    missed_since: datetime | None  # the oldest missed fire time (the list above may be capped)
    next_run_at: datetime


def plan(cron_expression: str, tz: str, next_run_at: datetime, now: datetime, catchup: str = "latest",
         all_cap: int = ALL_CAP, grace: timedelta = MISFIRE_GRACE) -> CatchupPlan | None:
    if next_run_at > now:
        return None
    fires, complete, following = recent_fires(cron_expression, tz, next_run_at, now, keep=all_cap + MISSED_CAP)
    if catchup == "all":
        run = fires[-all_cap:]
    elif catchup == "none":
        run = [t for t in fires[-1:] if now - t <= grace]
    else:
        run = fires[-1:]
    missed = fires[:len(fires) - len(run)]
    any_missed = bool(missed) or not complete
    return CatchupPlan(run=run, missed=missed[-MISSED_CAP:], missed_since=next_run_at if any_missed else None,
                       next_run_at=following)


@dataclass(frozen=True)
class Action:
    fire_time: datetime
    kind: str                 # "run" | "buffer" | "skip"
    reason: str | None = None


SKIP_RUNNING = "previous run still going (overlap: skip)"
SKIP_BUFFER_FULL = "a fire is already waiting for the previous run (overlap: buffer_one)"


def overlap_actions(fire_times: list[datetime], overlap: str, running: bool, buffered: bool) -> list[Action]:
    """One action per fire time, oldest first. A fire that runs makes the next ones overlap it."""
    out = []
    for t in fire_times:
        if overlap == "allow" or not running:
            out.append(Action(t, "run"))
            running = True
        elif overlap == "buffer_one" and not buffered:
            out.append(Action(t, "buffer"))
            buffered = True
        elif overlap == "buffer_one":
            out.append(Action(t, "skip", SKIP_BUFFER_FULL))
        else:
            out.append(Action(t, "skip", SKIP_RUNNING))
    return out
