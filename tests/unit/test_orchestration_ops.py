"""Run operations (SPEC §5): cancel and resume, as requests recorded on the run stream."""
from datetime import timedelta

from wf_contracts import events as ev
from wf_contracts.run_state import can_move, next_wakeup

from tests.unit.test_orchestration_history import T0, Run, brief, http, tags

CANCEL = ev.RunCancelRequested(run_id="run_1")


def resume(from_step=None):
    return ev.RunResumeRequested(run_id="run_1", from_step=from_step)


def test_cancel_a_queued_run():
    run = Run(http("a"), http("b", ["a"]))
    new = run.request(CANCEL)
    assert brief(new) == ["step.cancelled a", "step.cancelled b", "run.cancelled"]
    assert run.state.status == "cancelled"


def test_cancel_a_running_run_tells_in_flight_steps_to_stop():
    run = Run(http("a"), {"id": "w", "type": "wait", "config": {"duration_seconds": 60}}, http("c", ["a"]))
    run.kick()
    new = run.request(CANCEL)
    assert brief(new) == ["step.cancelled a", "step.cancelled w", "step.cancelled c", "run.cancelled"]
    assert new[0].reason == "run cancelled"
    assert next_wakeup(run.state) is None
    assert run.result("a") == [] and run.tick(100) == []


def test_cancel_a_paused_run():
    run = Run({"id": "ok", "type": "wait", "config": {"approval": True}})
    run.kick()
    assert brief(run.request(CANCEL)) == ["step.cancelled ok", "run.cancelled"]


def test_resume_without_from_step_reruns_the_step_that_paused_with_a_new_attempt():
    run = Run(http("a", on_error="pause"), http("b", ["a"]))
    run.kick()
    run.result("a", ok=False, error="boom")
    new = run.request(resume())
    assert brief(new) == ["run.resumed", "step.dispatched a"]
    assert new[0].reset == ["a"] and new[0].request_id is not None
    assert new[1].attempt == 2
    assert brief(run.result("a")) == ["step.completed a", "step.dispatched b"]


def test_resume_from_step_reruns_it_and_everything_downstream_with_current_upstream_outputs():
    run = Run(http("a"), http("b", ["a"]), http("c", ["b"], on_error="pause"), http("d", ["c"]), http("x", ["a"]))
    run.kick()
    run.result("a", output="A")
    run.result("x")
    run.result("b", output="B1")
    run.result("c", ok=False, error="boom")
    assert run.state.status == "paused"
    new = run.request(resume("b"))
    assert brief(new) == ["run.resumed", "step.dispatched b"]
    assert new[0].reset == ["b", "c", "d"] and new[0].from_step == "b"
    assert new[1].attempt == 2 and new[1].context["steps"]["a"]["output"] == "A"
    assert run.step("a").attempt == 1 and run.step("x").status == "completed"
    run.result("b", output="B2")
    assert run.state.steps["c"].attempt == 2
    run.result("c")
    assert brief(run.result("d")) == ["step.completed d", "run.completed"]


def test_resume_from_step_stops_what_is_running_downstream_and_reruns_a_loop():
    run = Run(http("a", on_error="pause"), http("slow"),
              {"id": "each", "type": "loop", "depends_on": ["slow"],
               "config": {"items": [1, 2], "max_concurrency": 2,
                          "step": {"type": "http_request", "config": {"url": "https://x/{{ item }}"}}}})
    run.kick()
    run.result("slow")
    run.result("a", ok=False, error="boom")  # paused while the loop's iterations are in flight
    new = run.request(resume("slow"))
    assert brief(new) == ["step.cancelled each", "step.cancelled each[0]", "step.cancelled each[1]", "run.resumed",
                          "step.dispatched a", "step.dispatched slow"]
    assert new[3].reset == ["a", "slow", "each"]
    run.result("slow")
    assert (run.step("each[0]").attempt, run.step("each[0]").status) == (2, "running")  # keys never repeat


def test_resume_from_an_upstream_step_grants_an_approval_outside_the_rerun():
    run = Run(http("a"), {"id": "ok", "type": "wait", "config": {"approval": True}}, http("b", ["a", "ok"]))
    run.kick()
    run.result("a")
    assert run.state.status == "paused"
    new = run.request(resume("a"))
    assert brief(new) == ["run.resumed", "step.completed ok", "step.dispatched a"]


def test_a_resume_request_is_only_acted_on_while_paused():
    run = Run(http("a"))
    run.kick()
    run.add(resume())  # recorded by a racing gateway while the run is running: ignored
    assert run.kick() == []
    assert run.state.status == "running"


def test_paused_runs_start_no_retry_until_resumed():
    run = Run(http("a", on_error="pause"), http("b", retry={"max_attempts": 2, "backoff_seconds": 5}))
    run.kick()
    run.result("b", ok=False, error="x")  # b waits 4-6 s for its retry
    run.result("a", ok=False, error="boom")  # the run pauses
    assert next_wakeup(run.state) is None and run.tick(60) == []
    new = run.request(resume())
    assert tags(new) == ["run.resumed", "step.dispatched", "step.dispatched"]
    assert {e.step_id for e in new[1:]} == {"a", "b"}


def test_status_moves_are_data():
    assert can_move("queued", "running") and can_move("running", "paused") and can_move("paused", "running")
    assert can_move("paused", "cancelled") and can_move("queued", "cancelled")
    assert not can_move("completed", "running") and not can_move("cancelled", "queued")


def test_next_wakeup_is_the_earliest_timer():
    run = Run(http("a", timeout_seconds=100), {"id": "w", "type": "wait", "config": {"duration_seconds": 30}},
              timeout_seconds=500)
    assert next_wakeup(run.state) is None  # queued: no timers yet
    run.kick()
    assert next_wakeup(run.state) == T0 + timedelta(seconds=30)
    run.tick(30)
    assert next_wakeup(run.state) == T0 + timedelta(seconds=105)
    run.result("a")
    assert run.state.status == "completed" and next_wakeup(run.state) is None


def test_a_step_stopped_by_the_cancel_request_does_not_fail_the_run():
    run = Run(http("a"), http("b"))
    run.kick()
    run.add(CANCEL)  # runners react to the request itself and answer before the orchestrator does
    assert brief(run.result("a", ok=False, error="cancelled", retryable=False)) == \
        ["step.cancelled a", "step.cancelled b", "run.cancelled"]
    run = Run(http("a"), http("b"))
    run.kick()
    run.add(CANCEL)
    assert brief(run.result("a", output=1)) == ["step.completed a", "step.cancelled b", "run.cancelled"]
