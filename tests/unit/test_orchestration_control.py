"""Control-flow steps run by the orchestrator (SPEC §6): loop and wait."""
from datetime import timedelta

from wf_contracts.run_state import next_wakeup

from tests.unit.test_orchestration_history import T0, Run, brief, http, tags


def loop(items, body=None, **config) -> dict:
    body = body or {"type": "http_request", "config": {"url": "https://x/{{ item.id }}?i={{ index }}"}}
    return {"id": "each", "type": "loop", "config": {"items": items, "step": body, **config}}


def test_loop_dispatches_iterations_in_order_up_to_max_concurrency_and_keeps_item_order():
    run = Run(loop("{{ input.rows }}", max_concurrency=2), http("after", ["each"]),
              input_data={"rows": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})
    new = run.kick()
    assert brief(new) == ["run.started", "step.started each", "step.dispatched each[0]", "step.dispatched each[1]"]
    assert new[1].items == [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    assert new[2].config == {"url": "https://x/a?i=0"}
    assert new[2].context["item"] == {"id": "a"} and new[2].context["index"] == 0
    assert brief(run.result("each[1]", output="B")) == ["step.completed each[1]", "step.dispatched each[2]"]
    assert brief(run.result("each[2]", output="C")) == ["step.completed each[2]"]
    assert brief(run.result("each[0]", output="A")) == ["step.completed each[0]", "step.completed each",
                                                         "step.dispatched after"]
    assert run.step("each").output == ["A", "B", "C"]


def test_loop_fail_fast_cancels_the_rest_and_fails_the_loop():
    run = Run(loop([{"id": 1}, {"id": 2}, {"id": 3}], max_concurrency=2))
    run.kick()
    new = run.result("each[0]", ok=False, error="nope")
    assert brief(new) == ["step.failed each[0]", "step.cancelled each[1]", "step.failed each", "run.failed"]
    assert new[2].error == "iteration each[0] failed: nope"


def test_loop_without_fail_fast_runs_everything_then_reports_the_failures():
    run = Run(loop([{"id": 1}, {"id": 2}], max_concurrency=5, fail_fast=False))
    run.kick()
    assert brief(run.result("each[0]", ok=False, error="nope")) == ["step.failed each[0]"]
    new = run.result("each[1]", output=2)
    assert brief(new) == ["step.completed each[1]", "step.failed each", "run.failed"]
    assert new[1].error == "1 of 2 iterations failed; first: each[0]: nope" and new[1].output == [None, 2]


def test_iterations_retry_with_the_loop_policy():
    run = Run({**loop([{"id": 1}]), "retry": {"max_attempts": 2, "backoff_seconds": 1}})
    run.kick()
    assert tags(run.result("each[0]", ok=False, error="x")) == ["step.retrying"]
    assert brief(run.tick(2)) == ["step.dispatched each[0]"]
    assert run.step("each[0]").attempt == 2


def test_loop_items_must_be_a_list_within_the_cap():
    run = Run(loop("{{ input.n }}"), input_data={"n": 3})
    new = run.kick()
    assert new[-2].error == "loop 'items' must be a list, got int"
    run = Run(loop("{{ lists.range(1001) }}"))
    assert run.kick()[-2].error == "loop 'items' has 1001 items; at most 1000 are allowed"


def test_empty_loop_completes_at_once_and_inline_bodies_work():
    run = Run(loop([]))
    assert brief(run.kick())[-2:] == ["step.completed each", "run.completed"]
    body = {"type": "condition", "config": {"expression": "item > 1"}}
    run = Run(loop([1, 2], body=body, max_concurrency=1))
    run.kick()
    assert run.step("each").output == [{"result": False, "branch": "else"}, {"result": True, "branch": "then"}]


def test_wait_duration_is_a_durable_timer():
    run = Run({"id": "w", "type": "wait", "config": {"duration_seconds": "{{ input.s }}"}}, input_data={"s": 90})
    new = run.kick()
    assert brief(new) == ["run.started", "step.started w", "step.waiting w"]
    assert new[2].reason == "duration" and new[2].wake_at == "2026-01-01T00:01:30.000000Z"
    assert next_wakeup(run.state) == T0 + timedelta(seconds=90)
    assert run.tick(89) == []
    new = run.tick(1.4)  # a late tick still records the real wait
    assert brief(new) == ["step.completed w", "run.completed"] and new[0].output == {"waited_seconds": 90.4}


def test_wait_until_in_the_past_completes_at_once():
    run = Run({"id": "w", "type": "wait", "config": {"until": "2025-12-31T23:00:00+01:00"}},
              {"id": "v", "type": "wait", "config": {"until": "2026-01-01T00:00:30Z"}})
    new = run.kick()
    assert brief(new) == ["run.started", "step.started w", "step.completed w", "step.started v", "step.waiting v"]
    assert brief(run.tick(30)) == ["step.completed v", "run.completed"]


def test_wait_condition_completes_as_soon_as_the_run_state_makes_it_true():
    run = Run(http("a"), {"id": "w", "type": "wait", "config": {"condition": "steps.a.status == 'completed'",
                                                                 "poll_interval_seconds": 5, "timeout_seconds": 60}})
    new = run.kick()
    assert brief(new) == ["run.started", "step.dispatched a", "step.started w", "step.waiting w"]
    assert new[3].reason == "condition" and new[3].timeout_at == "2026-01-01T00:01:00.000000Z"
    assert run.tick(5) == []
    run.now += timedelta(seconds=2)
    assert brief(run.result("a")) == ["step.completed a", "step.completed w", "run.completed"]


def test_wait_condition_times_out_with_a_clear_error():
    run = Run({"id": "w", "type": "wait", "config": {"condition": "input.ready", "timeout_seconds": 10}},
              input_data={"ready": False})
    run.kick()
    assert next_wakeup(run.state) == T0 + timedelta(seconds=10)
    new = run.tick(10)
    assert brief(new) == ["step.failed w", "run.failed"]
    assert new[0].error == "wait condition 'input.ready' was not met within 10s"


def test_wait_for_approval_pauses_the_run_until_resume():
    from wf_contracts import events as ev

    run = Run({"id": "ok", "type": "wait", "config": {"approval": True}}, http("ship", ["ok"]))
    new = run.kick()
    assert brief(new) == ["run.started", "step.started ok", "step.waiting ok", "run.paused ok"]
    assert new[3].reason == "approval" and next_wakeup(run.state) is None
    run.now += timedelta(seconds=3600)
    new = run.request(ev.RunResumeRequested(run_id="run_1"))
    assert brief(new) == ["run.resumed", "step.completed ok", "step.dispatched ship"]
    assert new[1].output == {"waited_seconds": 3600.0}
