"""Failure rules (SPEC §3): retries with backoff and jitter, time-outs, on_error, stale results."""
from datetime import timedelta

import pytest

from wf_contracts import events as ev
from wf_contracts.ids import SequentialIds
from wf_contracts.messages import StepResult
from wf_contracts.run_state import next_wakeup
from wf_orchestrator.decide import decide
from wf_orchestrator.plan import RetryPolicy

from tests.unit.test_orchestration_history import T0, Run, brief, http, tags


def test_backoff_is_exponential_capped_and_jittered():
    p = RetryPolicy(max_attempts=10, backoff_seconds=1, backoff_multiplier=2, max_backoff_seconds=5)
    assert [p.delay(a, 0.5) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert p.delay(1, 0.0) == 0.8 and p.delay(1, 0.999) == pytest.approx(1.2, abs=0.001)
    assert p.delay(9, 0.999) == 5.0  # the cap holds after jitter


def test_a_failed_attempt_is_retried_after_the_backoff_with_a_new_attempt_number():
    run = Run(http("a", retry={"max_attempts": 3, "backoff_seconds": 2, "backoff_multiplier": 3}))
    run.kick()
    new = run.result("a", ok=False, error="503 from server")
    assert tags(new) == ["step.retrying"]
    r = new[0]
    assert (r.attempt, r.next_attempt, r.error) == (1, 2, "503 from server")
    assert 1.6 <= r.delay_seconds <= 2.4
    assert run.step("a").status == "waiting" and next_wakeup(run.state) == T0 + timedelta(seconds=r.delay_seconds)
    assert run.tick(r.delay_seconds - 0.01) == []
    d = run.tick(0.01)
    assert brief(d) == ["step.dispatched a"] and d[0].attempt == 2
    second = run.result("a", ok=False, error="again")[0]
    assert 4.8 <= second.delay_seconds <= 7.2  # 2 s x 3
    run.tick(second.delay_seconds)
    assert brief(run.result("a", output=1)) == ["step.completed a", "run.completed"]
    assert run.step("a").attempt == 3
    assert run.step("a").started_at == T0  # duration covers every attempt


def test_jitter_comes_from_the_injected_id_source():
    run = Run(http("a", retry={"max_attempts": 2}))
    run.kick()
    s = run.step("a")
    r = StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=1, dispatch_id=s.dispatch_id, ok=False)
    a = decide(run.state, r, run.now, SequentialIds())[0].event.delay_seconds
    b = decide(run.state, r, run.now, SequentialIds())[0].event.delay_seconds
    c = decide(run.state, r, run.now, lambda p: p + "_other")[0].event.delay_seconds
    assert a == b and a != c


def test_no_retry_when_the_runner_says_it_cannot_help_or_attempts_are_used_up():
    run = Run(http("a", retry={"max_attempts": 3}))
    run.kick()
    new = run.result("a", ok=False, error="bad config", retryable=False)
    assert brief(new) == ["step.failed a", "run.failed"]
    run = Run(http("a"))  # default: one attempt
    run.kick()
    assert brief(run.result("a", ok=False, error="x")) == ["step.failed a", "run.failed"]


def test_a_silent_runner_times_the_attempt_out_and_its_late_result_is_ignored():
    run = Run(http("a", timeout_seconds=10, retry={"max_attempts": 2, "backoff_seconds": 1}))
    run.kick()
    old = run.step("a")
    assert next_wakeup(run.state) == T0 + timedelta(seconds=15)
    assert run.tick(14.9) == []
    new = run.tick(0.1)
    assert tags(new) == ["step.retrying"] and new[0].error == "step timed out after 10s"
    late = StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=1, dispatch_id=old.dispatch_id, ok=True)
    assert run.when(late) == []  # stale: that attempt is over
    run.tick(2)
    assert run.step("a").attempt == 2
    assert run.when(late) == []  # still stale for attempt 2
    assert brief(run.result("a")) == ["step.completed a", "run.completed"]


def test_without_a_step_timeout_a_backstop_still_ends_a_silent_attempt():
    run = Run(http("a"))
    run.kick()
    assert next_wakeup(run.state) == T0 + timedelta(seconds=30 * 5 + 30)  # http default 30 s
    assert brief(run.tick(180)) == ["step.failed a", "run.failed"]
    assert "no result from a step-runner" in run.state.steps["a"].error


def test_stale_results_change_nothing():
    run = Run(http("a"))
    run.kick()
    s = run.step("a")
    for r in (StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=1, dispatch_id="evt_other", ok=True),
              StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=2, dispatch_id=s.dispatch_id, ok=True),
              StepResult(run_id="run_1", tenant="t1", step_id="zzz", attempt=1, dispatch_id=s.dispatch_id, ok=True)):
        assert run.when(r) == []


def test_on_error_fail_cancels_what_has_not_finished():
    run = Run(http("a"), http("b"), http("c", ["a"]))
    run.kick()
    new = run.result("a", ok=False, error="boom")
    assert brief(new) == ["step.failed a", "step.cancelled b", "step.cancelled c", "run.failed"]
    assert new[1].reason == "run failed"
    assert run.state.error == "step 'a' failed: boom"
    assert run.result("b") == []  # the run is over


def test_on_error_pause_pauses_and_in_flight_work_still_lands():
    run = Run(http("a", on_error="pause"), http("b"), http("c", ["a"]), http("d", ["b"]))
    run.kick()
    new = run.result("a", ok=False, error="boom")
    assert brief(new) == ["step.failed a", "run.paused a"]
    assert new[1] == ev.RunPaused(run_id="run_1", step_id="a", reason="step failed")
    assert brief(run.result("b")) == ["step.completed b"]  # recorded, but d does not start while paused
    assert run.step("d").status == "pending" and run.state.status == "paused"


def test_run_timeout_fails_the_run_and_cancels_in_flight_steps():
    run = Run(http("a"), timeout_seconds=60)
    run.kick()
    assert next_wakeup(run.state) == T0 + timedelta(seconds=60)
    assert run.tick(59) == []
    new = run.tick(1)
    assert brief(new) == ["step.cancelled a", "run.failed"]
    assert run.state.error == "run timed out after 60s"
