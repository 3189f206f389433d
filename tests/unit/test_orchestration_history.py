"""Golden histories: whole runs recorded event by event, and the Run helper the other
test_orchestration_* files use (given events, when a message, then events)."""
from datetime import datetime, timedelta, timezone
from typing import Any

from wf_contracts import codec
from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.ids import SequentialIds
from wf_contracts.messages import StepResult
from wf_contracts.run_state import fold, next_wakeup, run_view
from wf_orchestrator.decide import decide
from wf_orchestrator.messages import Kick, Tick

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def http(step_id: str, deps=(), **kw) -> dict:
    return {"id": step_id, "type": "http_request", "config": {"url": f"https://example.com/{step_id}"},
            **({"depends_on": list(deps)} if deps else {}), **kw}


class Run:
    """A run's recorded history, built the way the log would record it, with a controllable clock."""

    def __init__(self, *steps: dict, input_data: dict | None = None, **definition: Any) -> None:
        self.recs: list[Recorded] = []
        self.now = T0
        self.ids = SequentialIds()
        self.add(ev.RunCreated(run_id="run_1", workflow_id="wf_1", workflow_version=3,
                               definition={"name": "t", "steps": list(steps), **definition},
                               input_data=input_data or {}))

    def add(self, event: ev.Event, event_id: str | None = None) -> None:
        n = len(self.recs) + 1
        self.recs.append(Recorded(id=event_id or f"evt_h{n}", seq=n, stream="run_1", version=n, tenant="t1",
                                  type=type(event).__struct_config__.tag, event=event, actor="test",
                                  causation_id=None, correlation_id=None, recorded_at=self.now, hash=""))

    @property
    def state(self):
        return fold(self.recs)

    def step(self, step_id: str):
        return self.state.steps[step_id]

    def when(self, msg) -> list:
        """Decide on msg at self.now, record what was decided, return the new events."""
        new = decide(self.state, msg, self.now, self.ids)
        for n in new:
            self.add(n.event, n.id)
        return [n.event for n in new]

    def kick(self) -> list:
        return self.when(Kick("run_1", "evt_cause"))

    def tick(self, seconds: float = 0.0) -> list:
        self.now += timedelta(seconds=seconds)
        return self.when(Tick("run_1"))

    def result(self, step_id: str, ok: bool = True, output: Any = None, error: str | None = None,
               retryable: bool = True) -> list:
        s = self.step(step_id)
        return self.when(StepResult(run_id="run_1", tenant="t1", step_id=step_id, attempt=s.attempt,
                                    dispatch_id=s.dispatch_id, ok=ok, output=output, error=error,
                                    retryable=retryable))

    def request(self, event: ev.Event) -> list:
        """A request the gateway records on the run stream, then the kick it causes."""
        self.add(event)
        return self.kick()


def tags(events: list) -> list[str]:
    return [type(e).__struct_config__.tag for e in events]


def brief(events: list) -> list[str]:
    """'step.dispatched a' style lines: enough to read a history at a glance."""
    return [f"{type(e).__struct_config__.tag} {getattr(e, 'step_id', '')}".strip() for e in events]


def test_golden_history_diamond_with_condition_loop_wait_retry():
    run = Run(
        http("fetch", retry={"max_attempts": 2, "backoff_seconds": 1}),
        {"id": "check", "type": "condition", "depends_on": ["fetch"],
         "config": {"expression": "steps.fetch.output.n > 1", "then": ["many"], "else": ["one"]}},
        {"id": "many", "type": "loop", "config": {"items": "{{ lists.range(steps.fetch.output.n) }}",
                                                   "max_concurrency": 2,
                                                   "step": {"type": "script", "config": {"language": "shell",
                                                                                         "code": "echo {{ item }}"}}}},
        http("one"),
        {"id": "pause", "type": "wait", "config": {"duration_seconds": 10}, "depends_on": ["many", "one"],
         "trigger_rule": "none_failed"},
    )
    log: list[str] = []
    log += brief(run.kick())
    log += brief(run.result("fetch", ok=False, error="503"))
    log += brief(run.tick(0.5))                      # retry not due yet: nothing
    log += brief(run.tick(1.0))                      # due (1 s x jitter 0.8-1.2 from the id source)
    log += brief(run.result("fetch", output={"n": 3}))
    log += brief(run.result("many[0]", output="0"))
    log += brief(run.result("many[1]", output="1"))
    log += brief(run.result("many[2]", output="2"))
    log += brief(run.tick(10))
    assert log == [
        "run.started", "step.dispatched fetch",
        "step.retrying fetch",
        "step.dispatched fetch",
        "step.completed fetch", "step.started check", "step.completed check",
        "step.started many", "step.dispatched many[0]", "step.dispatched many[1]", "step.skipped one",
        "step.completed many[0]", "step.dispatched many[2]",
        "step.completed many[1]",
        "step.completed many[2]", "step.completed many", "step.started pause", "step.waiting pause",
        "step.completed pause", "run.completed",
    ]
    view = run_view(run.state)
    assert [s["step_id"] for s in view["step_runs"]] == ["fetch", "check", "many", "many[0]", "many[1]", "many[2]",
                                                          "one", "pause"]
    assert view["step_runs"][0]["attempt"] == 2
    assert run.step("many").output == ["0", "1", "2"]
    assert run.state.steps["many[2]"].status == "completed"
    assert next_wakeup(run.state) is None


def test_golden_history_replays_to_the_same_decisions():
    """At every point of a recorded history, deciding again yields nothing or exactly what the log
    recorded next: decisions are a pure function of state, message and time (idempotence)."""
    run = Run(http("a"), http("b", ["a"]), {"id": "w", "type": "wait", "config": {"duration_seconds": 5},
                                            "depends_on": ["b"]})
    run.kick()
    run.result("a")
    run.result("b")
    run.tick(5)
    assert run.state.status == "completed"
    for upto in range(1, len(run.recs) + 1):
        state = fold(run.recs[:upto])
        again = [n.event for n in decide(state, Kick("run_1"), run.recs[upto - 1].recorded_at, SequentialIds())]
        if upto < len(run.recs):
            # what the log says happened next is exactly what decide says now (same ids aside)
            nxt = [r.event for r in run.recs[upto:]][:len(again)]
            assert again == nxt[:len(again)] or again == []
        else:
            assert again == []


def test_recorded_events_round_trip_through_the_codec():
    run = Run(http("a", retry={"max_attempts": 2}), {"id": "w", "type": "wait", "config": {"approval": True},
                                                     "depends_on": ["a"]})
    run.kick()
    run.result("a", ok=False, error="x")
    run.tick(5)
    run.result("a")
    run.request(ev.RunResumeRequested(run_id="run_1"))
    for rec in run.recs:
        assert codec.decode_event(codec.encode_event(rec.event)) == rec.event
