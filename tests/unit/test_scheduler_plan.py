"""Catch-up after a downtime and overlap decisions (pure; issue 7)."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from wf_scheduler.plan import ALL_CAP, MISSED_CAP, SKIP_BUFFER_FULL, SKIP_RUNNING, overlap_actions, plan

T0 = datetime(2026, 5, 4, 6, 0, tzinfo=timezone.utc)


def minutes(*ms: int) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in ms]


def test_not_due_yet():
    assert plan("* * * * *", "UTC", T0, T0 - timedelta(seconds=1)) is None


def test_on_time_fire_runs_and_nothing_is_missed():
    p = plan("* * * * *", "UTC", T0, T0 + timedelta(seconds=0.3))
    assert p.run == [T0] and p.missed == [] and p.missed_since is None
    assert p.next_run_at == T0 + timedelta(minutes=1)


def test_three_hour_outage_latest_runs_once_and_the_rest_is_missed():
    now = T0 + timedelta(hours=3, seconds=20)
    p = plan("* * * * *", "UTC", T0, now, "latest")
    assert p.run == minutes(180), "only the latest fire runs: never a burst"
    assert p.missed == minutes(*range(80, 180)), "the newest missed fire times are listed"
    assert len(p.missed) == MISSED_CAP and p.missed_since == T0, "and where the gap began"
    assert p.next_run_at == T0 + timedelta(minutes=181)


def test_three_hour_outage_catchup_all_runs_the_newest_fifty():
    p = plan("* * * * *", "UTC", T0, T0 + timedelta(hours=3, seconds=20), "all")
    assert p.run == minutes(*range(131, 181)) and len(p.run) == ALL_CAP
    assert p.missed == minutes(*range(31, 131)) and p.missed_since == T0


def test_three_hour_outage_catchup_none_runs_nothing():
    p = plan("* * * * *", "UTC", T0, T0 + timedelta(hours=3, seconds=20), "none")
    assert p.run == [] and p.missed[-1] == T0 + timedelta(minutes=180) and p.missed_since == T0
    assert p.next_run_at == T0 + timedelta(minutes=181)
    # a fire due only seconds ago is not a missed one: it is the current fire, a little late
    p = plan("* * * * *", "UTC", T0, T0 + timedelta(hours=3, seconds=5), "none")
    assert p.run == minutes(180) and len(p.missed) == MISSED_CAP


def test_catchup_none_still_fires_when_just_a_little_late():
    p = plan("*/5 * * * *", "UTC", T0, T0 + timedelta(seconds=12), "none")
    assert p.run == [T0] and p.missed == []


def test_short_outage_catchup_all_runs_everything():
    p = plan("*/10 * * * *", "UTC", T0, T0 + timedelta(minutes=35), "all")
    assert p.run == minutes(0, 10, 20, 30) and p.missed == [] and p.missed_since is None


def test_outage_across_a_dst_jump_only_lists_wall_times_that_existed():
    # New York 2026-03-08: 02:30 local never happens
    t0 = datetime(2026, 3, 8, 5, 30, tzinfo=timezone.utc)  # 00:30 EST
    p = plan("30 * * * *", "America/New_York", t0, t0 + timedelta(hours=4), "latest")
    z = ZoneInfo("America/New_York")
    assert [t.astimezone(z).strftime("%H:%M") for t in p.missed] == ["00:30", "01:30", "03:30", "04:30"]
    assert [t.astimezone(z).strftime("%H:%M") for t in p.run] == ["05:30"]


def test_a_week_long_outage_plans_quickly():
    import time

    t = time.perf_counter()
    p = plan("* * * * *", "UTC", T0, T0 + timedelta(days=7), "latest")
    assert time.perf_counter() - t < 2
    assert p.run == [T0 + timedelta(days=7)] and len(p.missed) == MISSED_CAP and p.missed_since == T0


# --- overlap

@pytest.mark.parametrize("overlap", ["allow", "skip", "buffer_one"])
def test_nothing_running_the_fire_runs(overlap):
    assert [a.kind for a in overlap_actions(minutes(0), overlap, running=False, buffered=False)] == ["run"]


def test_allow_runs_despite_a_running_run():
    assert [a.kind for a in overlap_actions(minutes(0, 1), "allow", True, False)] == ["run", "run"]


def test_skip_while_running():
    acts = overlap_actions(minutes(0), "skip", running=True, buffered=False)
    assert [(a.kind, a.reason) for a in acts] == [("skip", SKIP_RUNNING)]


def test_buffer_one_holds_one_and_skips_the_rest():
    acts = overlap_actions(minutes(0, 1, 2), "buffer_one", running=True, buffered=False)
    assert [a.kind for a in acts] == ["buffer", "skip", "skip"] and acts[1].reason == SKIP_BUFFER_FULL
    acts = overlap_actions(minutes(0), "buffer_one", running=True, buffered=True)
    assert [a.kind for a in acts] == ["skip"]


def test_a_fire_that_runs_makes_the_next_ones_overlap():
    # catchup "all" with a non-allow policy: the first catch-up run is still going for the others
    assert [a.kind for a in overlap_actions(minutes(0, 1, 2), "skip", False, False)] == ["run", "skip", "skip"]
    assert [a.kind for a in overlap_actions(minutes(0, 1, 2), "buffer_one", False, False)] == ["run", "buffer", "skip"]
