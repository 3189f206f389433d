"""Given events, when a message, then events: the run fold and the orchestration rules."""
from datetime import datetime, timedelta, timezone

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.ids import SequentialIds
from wf_contracts.messages import StepResult
from wf_contracts.run_state import can_move, fold, run_view
from wf_orchestrator.decide import decide
from wf_orchestrator.messages import Kick

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def defn(*steps):
    return {"name": "t", "steps": list(steps)}


def step(id_, deps=(), **kw):
    return {"id": id_, "type": "http_request", "config": {"url": "https://example.com"}, "depends_on": list(deps), **kw}


class History:
    """Builds a run's recorded history the way the log would."""

    def __init__(self, definition):
        self.recs: list[Recorded] = []
        self.add(ev.RunCreated(run_id="run_1", workflow_id="wf_1", workflow_version=1, definition=definition))

    def add(self, event, event_id=None):
        n = len(self.recs) + 1
        self.recs.append(Recorded(id=event_id or f"evt_h{n}", seq=n, stream="run_1", version=n, tenant="t1",
                                  type=type(event).__struct_config__.tag, event=event, actor="test",
                                  causation_id=None, correlation_id=None,
                                  recorded_at=T0 + timedelta(seconds=n), hash=""))

    def record(self, new_events):
        for ne in new_events:
            self.add(ne.event, ne.id)

    @property
    def state(self):
        return fold(self.recs)


def result(h, step_id, ok=True, output=None, attempt=1, error=None):
    s = h.state.steps[step_id]
    return StepResult(run_id="run_1", tenant="t1", step_id=step_id, attempt=attempt, dispatch_id=s.dispatch_id,
                      ok=ok, output=output, error=error)


def types(new):
    return [type(n.event).__struct_config__.tag for n in new]


def test_created_run_is_queued_then_started_with_roots_dispatched():
    h = History(defn(step("a"), step("b"), step("c", ["a", "b"])))
    assert h.state.status == "queued"
    new = decide(h.state, Kick("run_1", "evt_h1"), T0, SequentialIds())
    assert types(new) == ["run.started", "step.dispatched", "step.dispatched"]
    assert [n.event.step_id for n in new[1:]] == ["a", "b"]


def test_kick_is_idempotent():
    h = History(defn(step("a")))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    assert decide(h.state, Kick("run_1", "x"), T0, SequentialIds()) == []


def test_chain_completes_and_passes_output():
    h = History(defn(step("a"), step("b", ["a"])))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    new = decide(h.state, result(h, "a", output={"status_code": 200}), T0, SequentialIds())
    assert types(new) == ["step.completed", "step.dispatched"]
    h.record(new)
    new = decide(h.state, result(h, "b", output=1), T0, SequentialIds())
    assert types(new) == ["step.completed", "run.completed"]
    h.record(new)
    view = run_view(h.state)
    assert view["status"] == "completed"
    assert view["step_runs"][0]["output"] == {"status_code": 200}
    assert view["duration_seconds"] > 0


def test_stale_result_is_ignored():
    h = History(defn(step("a")))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    stale = StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=1, dispatch_id="evt_other", ok=True)
    assert decide(h.state, stale, T0, SequentialIds()) == []
    wrong_attempt = StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=2,
                               dispatch_id=h.state.steps["a"].dispatch_id, ok=True)
    assert decide(h.state, wrong_attempt, T0, SequentialIds()) == []


def test_duplicate_result_after_completion_is_ignored():
    h = History(defn(step("a"), step("b", ["a"])))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    r = result(h, "a")
    h.record(decide(h.state, r, T0, SequentialIds()))
    assert decide(h.state, r, T0, SequentialIds()) == []


def test_failure_fails_run_and_cancels_the_rest():
    h = History(defn(step("a"), step("b"), step("c", ["a"])))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    new = decide(h.state, result(h, "a", ok=False, error="boom"), T0, SequentialIds())
    assert types(new) == ["step.failed", "step.cancelled", "step.cancelled", "run.failed"]
    h.record(new)
    assert h.state.status == "failed" and "boom" in h.state.error


def test_on_error_continue_and_trigger_rules():
    h = History(defn(
        step("a", on_error="continue"),
        step("strict", ["a"]),
        step("lenient", ["a"], trigger_rule="all_done"),
        step("join", ["strict"], trigger_rule="none_failed"),
    ))
    h.record(decide(h.state, Kick("run_1", "x"), T0, SequentialIds()))
    new = decide(h.state, result(h, "a", ok=False, error="boom"), T0, SequentialIds())
    h.record(new)
    st = h.state.steps
    assert st["strict"].status == "skipped"       # all_success needs every dependency completed
    assert st["lenient"].status == "running"      # all_done always runs
    assert st["join"].status == "running"          # none_failed accepts a skipped dependency
    h.record(decide(h.state, result(h, "lenient"), T0, SequentialIds()))
    new = decide(h.state, result(h, "join"), T0, SequentialIds())
    assert types(new)[-1] == "run.completed"


def test_transitions_are_data():
    assert can_move("queued", "running")
    assert not can_move("completed", "running")
    assert not can_move("cancelled", "queued")


def test_history_round_trips_through_the_codec():
    h = History(defn(step("a")))
    for rec in h.recs:
        back = codec.decode_event(codec.encode_event(rec.event))
        assert back == rec.event
