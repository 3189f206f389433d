"""Pure parts of the fault handling: the poison-step result, the fault switchboard, result subjects."""
from tests.unit.test_runner_execute import dispatch, recorded
from wf_contracts import events as ev, subjects
from wf_orchestrator.poison import advisory_subject, poison_result
from wf_platform import faults
from wf_runner.steps.base import StepContext
from wf_runner.steps.http_request import outbound_headers


def test_poison_result_fails_that_attempt_without_retry():
    rec = dispatch("http_request", {"url": "http://x"}, run_id="run_p", step_id="poison", attempt=3)
    r = poison_result(rec, 5)
    assert (r.run_id, r.step_id, r.attempt, r.dispatch_id) == ("run_p", "poison", 3, rec.id)
    assert not r.ok and not r.retryable and r.error_type == "runner_crashed"
    assert "5 times" in r.error


def test_poison_result_ignores_anything_but_a_dispatch():
    rec = recorded(ev.RunStarted(run_id="run_p"), "run_p")
    assert poison_result(rec, 5) is None


def test_advisory_subject_names_the_runner_consumer():
    assert advisory_subject("step-runner") == "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WF.step-runner"


def test_fault_spec_parsing_and_probabilities(monkeypatch):
    assert faults._parse("a, b@0.25,,c@0") == {"a": 1.0, "b": 0.25, "c": 0.0}
    monkeypatch.setattr(faults, "_ARMED", {"x": 0.0, "y": 1.0})
    assert not faults.armed("x") and faults.armed("y") and not faults.armed("z")
    monkeypatch.setattr(faults, "_ARMED", {})
    assert faults.redeliver_delay(1) is None and faults.shuffled([1, 2, 3]) == [1, 2, 3]
    monkeypatch.setattr(faults, "_ARMED", {"bus_redeliver": 1.0})
    assert 0.0 <= faults.redeliver_delay(1) <= 1.0
    assert faults.redeliver_delay(2) is None, "only first deliveries are handed back"
    assert sorted(faults.shuffled([1, 2, 3])) == [1, 2, 3]


def test_result_subject_is_unique_per_dispatch_and_matches_the_consumer_filter():
    a, b = subjects.result_subject("run_1", "ev_a"), subjects.result_subject("run_1", "ev_b")
    assert a != b and a.startswith("wf.result.") and subjects.RESULTS == "wf.result.>"


def test_http_steps_name_their_runner_unless_the_step_sets_a_user_agent():
    ctx = StepContext(run_id="r", step_id="s", attempt=2, tenant="t", step_type="http_request", config={},
                      timeout_seconds=None, runner="step-runner-h-42-abcdef")
    h = outbound_headers({"X": "1"}, ctx)
    assert h["User-Agent"] == "wf-step-runner/step-runner-h-42-abcdef" and h["Idempotency-Key"] == "r:s:2"
    assert outbound_headers({"user-agent": "mine"}, ctx) == {"user-agent": "mine", "Idempotency-Key": "r:s:2"}
