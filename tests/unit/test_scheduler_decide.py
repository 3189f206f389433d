"""decide(): given a schedule, its workflow and the time, then these events (pure; issue 7)."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from wf_contracts import events as ev
from wf_contracts.timefmt import iso_z
from wf_scheduler.clock import ClockUnavailable, FileClock, ManualClock, write_clock_file
from wf_scheduler.decide import ScheduleRow, WorkflowRow, decide, run_id_for
from wf_scheduler.plan import SKIP_BUFFER_FULL, SKIP_RUNNING

T = datetime(2026, 5, 4, 6, 0, tzinfo=timezone.utc)
SCHED = ScheduleRow(id="sched_1", tenant="t", workflow_id="wf_1", cron_expression="* * * * *", timezone="UTC",
                    input_data={"k": 1}, overlap="allow", catchup="latest", next_run_at=T, buffered_fire_at=None,
                    version=3)
WF = WorkflowRow(status="active", version=2, definition={"name": "n", "steps": []}, deleted=False)
LATE = T + timedelta(seconds=0.5)


def kinds(d) -> list[str]:
    return [type(e).__struct_config__.tag for e in d.events]


def test_a_due_fire_starts_one_run_named_after_the_fire():
    d = decide(SCHED, WF, running=False, now=LATE)
    assert kinds(d) == ["schedule.fired"] and d.started == [T]
    [run] = d.runs
    assert run.run_id == run_id_for("sched_1", T) == decide(SCHED, WF, False, LATE).runs[0].run_id
    assert run.trigger == "schedule" and run.input_data == {"k": 1} and run.workflow_version == 2
    assert run.metadata == {"schedule_id": "sched_1", "fire_time": iso_z(T)}
    fired = d.events[0]
    assert fired.run_id == run.run_id and fired.next_run_at == iso_z(T + timedelta(minutes=1))
    assert fired.missed == [] and fired.missed_since is None


def test_run_ids_differ_per_schedule_and_fire_time():
    ids = {run_id_for(s, T + timedelta(minutes=m)) for s in ("sched_1", "sched_2") for m in range(3)}
    assert len(ids) == 6


def test_not_due_nothing_happens():
    assert decide(SCHED, WF, False, T - timedelta(seconds=1)).events == []


def test_a_paused_workflow_records_a_skipped_fire():
    d = decide(SCHED, replace(WF, status="paused"), False, LATE)
    assert d.runs == [] and d.events[0].skipped_reason == "workflow is paused" and d.events[0].run_id is None
    assert d.events[0].next_run_at == iso_z(T + timedelta(minutes=1))


def test_a_deleted_workflow_records_a_skipped_fire_and_retires_the_schedule():
    for wf in (None, replace(WF, deleted=True)):
        d = decide(SCHED, wf, False, LATE)
        assert kinds(d) == ["schedule.fired", "schedule.deleted"] and d.runs == []
        assert d.events[0].skipped_reason == "workflow deleted" and d.events[1].reason == "workflow deleted"
    # even when nothing is due
    assert kinds(decide(SCHED, None, False, T - timedelta(hours=1))) == ["schedule.deleted"]


def test_after_an_outage_the_first_fire_tells_the_gap():
    d = decide(SCHED, WF, False, T + timedelta(hours=3, seconds=1))
    [fired] = d.events
    assert fired.fire_time == iso_z(T + timedelta(hours=3)) and fired.missed_since == iso_z(T)
    assert len(fired.missed) == 100 and fired.missed[-1] == iso_z(T + timedelta(minutes=179))


def test_catchup_none_after_an_outage_records_missed_only():
    d = decide(replace(SCHED, catchup="none"), WF, False, T + timedelta(hours=3, seconds=30))
    assert kinds(d) == ["schedule.missed"] and d.runs == []
    assert d.events[0].next_run_at == iso_z(T + timedelta(hours=3, minutes=1))


def test_catchup_all_runs_each_missed_fire():
    d = decide(replace(SCHED, catchup="all"), WF, False, T + timedelta(minutes=2, seconds=1))
    assert [r.run_id for r in d.runs] == [run_id_for("sched_1", T + timedelta(minutes=m)) for m in range(3)]
    assert len({e.next_run_at for e in d.events}) == 1


def test_skip_while_the_previous_run_is_going():
    d = decide(replace(SCHED, overlap="skip"), WF, running=True, now=LATE)
    assert d.runs == [] and d.events[0].skipped_reason == SKIP_RUNNING


def test_buffer_one_holds_the_fire_then_skips_further_ones():
    s = replace(SCHED, overlap="buffer_one")
    d = decide(s, WF, running=True, now=LATE)
    assert d.runs == [] and d.events[0].buffered and d.events[0].run_id is None
    d = decide(replace(s, buffered_fire_at=T - timedelta(minutes=1)), WF, running=True, now=LATE)
    assert d.runs == [] and d.events[0].skipped_reason == SKIP_BUFFER_FULL


def test_a_held_fire_starts_when_the_previous_run_has_finished():
    held = T - timedelta(minutes=1)
    s = replace(SCHED, overlap="buffer_one", buffered_fire_at=held, next_run_at=T + timedelta(minutes=1))
    d = decide(s, WF, running=False, now=LATE)
    assert kinds(d) == ["schedule.buffer_released"]
    assert [r.run_id for r in d.runs] == [run_id_for("sched_1", held)] == [d.events[0].run_id]
    assert d.runs[0].metadata["fire_time"] == iso_z(held)
    # released and due together: the held one starts, the due one waits behind it
    d = decide(replace(s, next_run_at=T), WF, running=False, now=LATE)
    assert kinds(d) == ["schedule.buffer_released", "schedule.fired"] and d.events[1].buffered
    # a held fire for a workflow that was paused meanwhile is skipped, not started
    d = decide(s, replace(WF, status="paused"), running=False, now=LATE)
    assert d.runs == [] and d.events[0].skipped_reason == "workflow is paused"


def test_a_held_fire_keeps_waiting_while_the_run_goes_on():
    s = replace(SCHED, overlap="buffer_one", buffered_fire_at=T, next_run_at=T + timedelta(minutes=5))
    assert decide(s, WF, running=True, now=LATE).events == []


def test_events_are_valid_contract_events():
    from wf_contracts import codec

    d = decide(replace(SCHED, catchup="all"), WF, False, T + timedelta(minutes=1))
    for e in [*d.events, *d.runs]:
        assert codec.decode_event(codec.encode_event(e)) == e and isinstance(e, ev.Event)


# --- clocks

def test_manual_clock_moves_only_when_told():
    c = ManualClock(T)
    assert c.now() == T and c.advance(minutes=2) == T + timedelta(minutes=2) == c.now()


def test_file_clock_reads_the_file_each_time(tmp_path):
    path = tmp_path / "clock"
    c = FileClock(path)
    try:
        c.now()
        raise AssertionError("no file yet: the clock must not invent a time")
    except ClockUnavailable:
        pass
    write_clock_file(path, T)
    assert c.now() == T
    write_clock_file(path, T + timedelta(hours=1))
    assert c.now() == T + timedelta(hours=1)
    path.write_text("garbage")  # half-written: keep the last good time
    assert c.now() == T + timedelta(hours=1)


def test_a_schedule_that_cannot_fire_any_more_is_parked_with_the_reason():
    d = decide(replace(SCHED, timezone="Gone/Zone"), WF, False, LATE)
    [e] = d.events
    assert e.run_id is None and e.next_run_at is None and "unknown time zone" in e.skipped_reason
