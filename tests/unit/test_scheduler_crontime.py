"""Fire times in real zones across both daylight-saving changes (issue 7): a wall time the clock
skips is not fired, a wall time that occurs twice fires once (at its first occurrence)."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from wf_scheduler.crontime import ScheduleError, check, next_fire, recent_fires

UTC = timezone.utc


def fires(cron: str, tz: str, start_local: str, until_local: str) -> list[str]:
    """Fire times between two local wall times, as local ISO strings (offset included)."""
    z = ZoneInfo(tz)
    t = datetime.fromisoformat(start_local).replace(tzinfo=z).astimezone(UTC)
    end = datetime.fromisoformat(until_local).replace(tzinfo=z).astimezone(UTC)
    out = []
    while True:
        t = next_fire(cron, tz, t)
        if t > end:
            return out
        out.append(t.astimezone(z).isoformat(timespec="minutes"))


# --- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST

def test_new_york_spring_forward_skips_the_missing_hour():
    assert fires("*/30 * * * *", "America/New_York", "2026-03-08T00:59", "2026-03-08T03:59") == [
        "2026-03-08T01:00-05:00", "2026-03-08T01:30-05:00", "2026-03-08T03:00-04:00", "2026-03-08T03:30-04:00"]
    # a daily fire at a wall time that does not exist that day does not happen that day
    assert fires("30 2 * * *", "America/New_York", "2026-03-07T00:00", "2026-03-09T23:00") == [
        "2026-03-07T02:30-05:00", "2026-03-09T02:30-04:00"]


def test_new_york_fall_back_fires_the_repeated_hour_once():
    assert fires("*/30 * * * *", "America/New_York", "2026-11-01T00:29", "2026-11-01T02:59") == [
        "2026-11-01T00:30-04:00", "2026-11-01T01:00-04:00", "2026-11-01T01:30-04:00",
        "2026-11-01T02:00-05:00", "2026-11-01T02:30-05:00"]
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T00:00", "2026-11-02T23:00") == [
        "2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]


@pytest.mark.parametrize("day,expected", [("2026-03-08", 1440 - 60), ("2026-11-01", 1440)])
def test_new_york_every_minute_each_wall_minute_at_most_once(day, expected):
    z = ZoneInfo("America/New_York")
    start = datetime.fromisoformat(f"{day}T00:00").replace(tzinfo=z).astimezone(UTC) - timedelta(seconds=1)
    end = datetime.fromisoformat(f"{day}T23:59").replace(tzinfo=z).astimezone(UTC)
    got, t = [], start
    while (t := next_fire("* * * * *", "America/New_York", t)) <= end:
        got.append(t)
    walls = [g.astimezone(z).replace(tzinfo=None) for g in got]
    assert len(got) == expected
    assert len(set(walls)) == len(walls), "a repeated wall minute fired twice"
    assert got == sorted(got)


# --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET

def test_berlin_spring_forward():
    assert fires("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00", "2026-03-30T23:00") == [
        "2026-03-28T02:30+01:00", "2026-03-30T02:30+02:00"]
    assert fires("0 * * * *", "Europe/Berlin", "2026-03-29T00:30", "2026-03-29T04:30") == [
        "2026-03-29T01:00+01:00", "2026-03-29T03:00+02:00", "2026-03-29T04:00+02:00"]


def test_berlin_fall_back():
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-24T00:00", "2026-10-26T23:00") == [
        "2026-10-24T02:30+02:00", "2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]
    assert fires("0 * * * *", "Europe/Berlin", "2026-10-25T00:30", "2026-10-25T04:30") == [
        "2026-10-25T01:00+02:00", "2026-10-25T02:00+02:00", "2026-10-25T03:00+01:00", "2026-10-25T04:00+01:00"]


# --- Australia/Lord_Howe: a 30-minute shift. 2026-04-05 02:00 (+11) -> 01:30 (+10:30);
#     2026-10-04 02:00 (+10:30) -> 02:30 (+11)

def test_lord_howe_fall_back_half_hour_repeats_once():
    assert fires("*/15 1-2 * * *", "Australia/Lord_Howe", "2026-04-05T00:00", "2026-04-05T03:00") == [
        "2026-04-05T01:00+11:00", "2026-04-05T01:15+11:00", "2026-04-05T01:30+11:00", "2026-04-05T01:45+11:00",
        "2026-04-05T02:00+10:30", "2026-04-05T02:15+10:30", "2026-04-05T02:30+10:30", "2026-04-05T02:45+10:30"]


def test_lord_howe_spring_forward_skips_half_an_hour():
    assert fires("*/15 1-2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00", "2026-10-04T03:00") == [
        "2026-10-04T01:00+10:30", "2026-10-04T01:15+10:30", "2026-10-04T01:30+10:30", "2026-10-04T01:45+10:30",
        "2026-10-04T02:30+11:00", "2026-10-04T02:45+11:00"]
    assert fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00", "2026-10-05T23:00") == [
        "2026-10-03T02:15+10:30", "2026-10-05T02:15+11:00"]


def test_utc_is_unaffected_by_other_zones_transitions():
    got = fires("0 */6 * * *", "UTC", "2026-03-07T23:00", "2026-03-09T13:00")
    assert got == ["2026-03-08T00:00+00:00", "2026-03-08T06:00+00:00", "2026-03-08T12:00+00:00",
                   "2026-03-08T18:00+00:00", "2026-03-09T00:00+00:00", "2026-03-09T06:00+00:00",
                   "2026-03-09T12:00+00:00"]


def test_next_fire_is_strictly_after():
    t = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", "UTC", t) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", "UTC", t - timedelta(microseconds=1)) == t


@pytest.mark.parametrize("cron,tz,reason", [
    ("* * *", "UTC", "five fields"), ("* * * * * *", "UTC", "five fields"), ("@daily", "UTC", "five fields"),
    ("61 * * * *", "UTC", "invalid cron"), ("a b c d e", "UTC", "invalid cron"),
    ("* * * * *", "Mars/Olympus", "unknown time zone"), ("* * * * *", "", "unknown time zone"),
    ("* * * * *", "../../etc/passwd", "unknown time zone"), ("R * * * *", "UTC", "random"),
    ("0 R(1-5) * * *", "UTC", "random"),
])
def test_invalid_cron_or_zone_says_why(cron, tz, reason):
    with pytest.raises(ScheduleError, match=reason):
        check(cron, tz)


def test_names_and_extensions_that_are_deterministic_are_accepted():
    for cron in ("0 9 * MAR-APR FRI", "0 0 L * *", "0 0 * * MON#1", "0 0 * * 0-7", "0\t0 * * *"):
        check(cron, "UTC")


def test_a_date_that_never_exists_never_fires():
    with pytest.raises(ScheduleError, match="never fires"):
        next_fire("0 0 30 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC))


def test_recent_fires_keeps_the_newest_and_says_if_complete():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    got, complete, following = recent_fires("* * * * *", "UTC", t0, t0 + timedelta(minutes=9, seconds=5), keep=20)
    assert got == [t0 + timedelta(minutes=i) for i in range(10)] and complete
    assert following == t0 + timedelta(minutes=10)
    got, complete, _ = recent_fires("* * * * *", "UTC", t0, t0 + timedelta(minutes=9), keep=3)
    assert got == [t0 + timedelta(minutes=i) for i in (7, 8, 9)] and not complete


def test_recent_fires_after_a_week_walks_one_day_only():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    now = t0 + timedelta(days=7)
    got, complete, _ = recent_fires("* * * * *", "UTC", t0, now, keep=5)
    assert got[-1] == now and len(got) == 5 and not complete
    # a sparse schedule with nothing in the last day still finds its latest fire
    got, _, _ = recent_fires("0 0 1 * *", "UTC", datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC), 3)
    assert got == [datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
