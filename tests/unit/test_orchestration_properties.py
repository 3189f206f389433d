"""Random workflows driven to the end through decide(): invariants that must hold for any DAG,
any mix of trigger rules, retries, branches and loops, and any order of results and ticks."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wf_contracts import events as ev
from wf_contracts.run_state import FINISHED_STEP, iteration_of, next_wakeup
from wf_orchestrator.messages import Kick, Tick

from tests.unit.test_orchestration_history import Run


@st.composite
def workflows(draw):
    n = draw(st.integers(1, 7))
    steps = []
    for i in range(n):
        sid = f"s{i}"
        deps = sorted(draw(st.sets(st.sampled_from([f"s{j}" for j in range(i)]), max_size=3))) if i else []
        kind = draw(st.sampled_from(["http", "http", "http", "loop", "condition", "wait"]))
        step = {"id": sid, "depends_on": deps,
                "trigger_rule": draw(st.sampled_from(["all_success", "none_failed", "all_done"])),
                "on_error": draw(st.sampled_from(["fail", "continue"])),
                "retry": {"max_attempts": draw(st.integers(1, 3)), "backoff_seconds": 1}}
        if kind == "http":
            step.update(type="http_request", config={"url": "https://x/{{ run.id }}"})
        elif kind == "loop":
            step.update(type="loop", config={"items": list(range(draw(st.integers(0, 4)))),
                                             "max_concurrency": draw(st.integers(1, 3)),
                                             "fail_fast": draw(st.booleans()),
                                             "step": {"type": "http_request",
                                                      "config": {"url": "https://x/{{ item }}"}}})
        elif kind == "condition":
            later = [f"s{j}" for j in range(i + 1, n)]
            step.update(type="condition", config={
                "expression": draw(st.sampled_from(["true", "false", "input.flag"])),
                "then": sorted(draw(st.sets(st.sampled_from(later), max_size=2))) if later else [],
                "else": []})
        else:
            step.update(type="wait", config={"duration_seconds": draw(st.integers(0, 30))})
        steps.append(step)
    return steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=workflows(), outcomes=st.lists(st.tuples(st.integers(0, 99), st.booleans(), st.booleans()),
                                            min_size=80, max_size=80),
       flag=st.booleans())
def test_any_workflow_finishes_and_obeys_the_rules(steps, outcomes, flag):
    run = Run(*steps, input_data={"flag": flag})
    run.kick()
    dispatched: set[tuple[str, int]] = set()
    for pick, ok, tick in outcomes:
        state = run.state
        if state.finished:
            break
        running = sorted(u for u, s in state.steps.items() if s.status == "running" and s.dispatch_id)
        if tick or not running:
            new = run.tick(31)  # past every wait and backoff, before any attempt deadline
        else:
            new = run.result(running[pick % len(running)], ok=ok, error=None if ok else "boom", output=pick)
        for e in new:
            if isinstance(e, ev.StepDispatched):
                assert (e.step_id, e.attempt) not in dispatched, "an attempt dispatched twice"
                dispatched.add((e.step_id, e.attempt))
        _check_loops(run)
    for _ in range(40):  # the rest succeeds
        state = run.state
        if state.finished:
            break
        running = sorted(u for u, s in state.steps.items() if s.status == "running" and s.dispatch_id)
        run.result(running[0]) if running else run.tick(31)
    state = run.state
    assert state.status in ("completed", "failed")
    assert all(s.status in FINISHED_STEP for s in state.steps.values())
    assert next_wakeup(state) is None
    assert run.kick() == [] and run.tick(1000) == []
    if state.status == "completed":
        for step in steps:
            s = state.steps[step["id"]]
            if s.status == "failed":
                assert step["on_error"] == "continue"


def _check_loops(run: Run) -> None:
    state = run.state
    for sid, s in state.steps.items():
        if s.items is None or iteration_of(sid) is not None:
            continue
        limit = next(x for x in state.step_defs() if x["id"] == sid)["config"]["max_concurrency"]
        active = sum(1 for u, x in state.steps.items()
                     if iteration_of(u) and iteration_of(u)[0] == sid and x.status in ("running", "waiting"))
        assert active <= limit, f"loop {sid}: {active} iterations at once, limit {limit}"


def test_a_kick_for_an_unknown_or_deleted_run_does_nothing():
    run = Run({"id": "a", "type": "http_request", "config": {"url": "https://x"}})
    run.recs.clear()
    assert run.when(Kick("run_1")) == [] and run.when(Tick("run_1")) == []
