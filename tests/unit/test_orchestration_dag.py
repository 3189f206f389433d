"""Dispatch rules (SPEC §3, §6): readiness, trigger rules, `if`, condition branches, templates."""
import pytest

from wf_contracts import events as ev
from wf_expr import secret_marker
from wf_orchestrator.advance import trigger_allows
from wf_orchestrator.plan import parse

from tests.unit.test_orchestration_history import Run, brief, http, tags


def test_roots_dispatch_in_parallel_and_a_join_waits_for_all():
    run = Run(http("a"), http("b"), http("c", ["a", "b"]))
    assert run.state.status == "queued"
    assert brief(run.kick()) == ["run.started", "step.dispatched a", "step.dispatched b"]
    assert run.result("a") == [ev.StepCompleted(run_id="run_1", step_id="a", attempt=1)]
    assert brief(run.result("b")) == ["step.completed b", "step.dispatched c"]
    assert brief(run.result("c")) == ["step.completed c", "run.completed"]


def test_every_message_is_idempotent():
    run = Run(http("a"), http("b", ["a"]))
    run.kick()
    assert run.kick() == [] and run.tick() == []
    s = run.step("a")
    run.result("a")
    from wf_contracts.messages import StepResult
    again = StepResult(run_id="run_1", tenant="t1", step_id="a", attempt=1, dispatch_id=s.dispatch_id, ok=True)
    assert run.when(again) == []


@pytest.mark.parametrize("rule, statuses, runs", [
    ("all_success", ["completed", "completed"], True),
    ("all_success", ["completed", "skipped"], False),
    ("all_success", ["completed", "failed"], False),
    ("none_failed", ["completed", "skipped"], True),
    ("none_failed", ["skipped", "skipped"], True),
    ("none_failed", ["completed", "failed"], False),
    ("none_failed", ["cancelled"], False),
    ("all_done", ["failed", "skipped"], True),
    ("all_success", [], True),
])
def test_trigger_rules_are_a_table(rule, statuses, runs):
    assert trigger_allows(rule, statuses) is runs


def test_trigger_rules_decide_run_or_skip_and_skips_cascade():
    run = Run(http("a", on_error="continue"), http("strict", ["a"]), http("after_strict", ["strict"]),
              http("lenient", ["a"], trigger_rule="all_done"), http("join", ["strict"], trigger_rule="none_failed"))
    run.kick()
    new = run.result("a", ok=False, error="boom")
    assert brief(new) == ["step.failed a", "step.skipped strict", "step.skipped after_strict",
                          "step.dispatched lenient", "step.dispatched join"]
    assert new[1].reason == "trigger rule all_success"


def test_step_if_false_skips_true_runs_and_error_fails_naming_the_expression():
    run = Run(http("a"), http("no", ["a"], **{"if": "steps.a.output.n > 5"}),
              http("yes", ["a"], **{"if": "{{ steps.a.output.n == 1 }}"}),
              http("bad", ["a"], on_error="continue", **{"if": "steps.a.output.missing > 1"}),
              input_data={"x": 1})
    run.kick()
    new = run.result("a", output={"n": 1})
    assert brief(new) == ["step.completed a", "step.skipped no", "step.dispatched yes", "step.failed bad"]
    assert new[1].reason == "'if' is false"
    assert "steps.a.output.missing > 1" in new[3].error and new[3].error_type == "expression_error"


def test_condition_runs_inline_and_skips_the_branch_not_taken_which_a_join_tolerates():
    run = Run(
        {"id": "check", "type": "condition",
         "config": {"expression": "input.amount > 100", "then": ["big"], "else": ["small", "tiny"]}},
        http("big"), http("small"), http("tiny", ["small"]),
        http("after_small", ["small"]),
        http("join", ["big", "small"], trigger_rule="none_failed"),
        input_data={"amount": 500},
    )
    new = run.kick()
    assert brief(new) == ["run.started", "step.started check", "step.completed check", "step.dispatched big",
                          "step.skipped small", "step.skipped tiny", "step.skipped after_small"]
    assert new[2].output == {"result": True, "branch": "then"}
    assert new[4].reason == "branch not taken by 'check'"
    assert brief(run.result("big")) == ["step.completed big", "step.dispatched join"]


def test_branch_steps_depend_on_their_condition():
    plan = parse({"steps": [{"id": "c", "type": "condition", "config": {"expression": "true", "then": ["x"]}},
                            {"id": "x", "type": "http_request", "config": {}},
                            {"id": "y", "type": "http_request", "config": {}, "depends_on": ["x"]}]})
    assert plan.steps["x"].deps == ("c",)
    assert plan.downstream("c") == ["x", "y"]


def test_condition_error_fails_the_step():
    run = Run({"id": "check", "type": "condition", "config": {"expression": "input.n", "then": [], "else": []}},
              input_data={"n": 3})
    new = run.kick()
    assert brief(new)[-2:] == ["step.failed check", "run.failed"]
    assert new[-2].error == "expression 'input.n' failed: result must be a bool, got int"


def test_templates_render_typed_values_secrets_stay_markers_and_context_is_filled():
    run = Run(
        http("a"),
        {"id": "b", "type": "http_request", "depends_on": ["a"], "config": {
            "url": "https://x/{{ steps.a.output.id }}?who={{ input.user }}",
            "json": {"ids": "{{ steps.a.output.ids }}", "n": "{{ size(steps.a.output.ids) }}",
                     "status": "{{ steps.a.status }}", "run": "{{ run.id }}/{{ run.workflow_id }}/{{ run.trigger }}"},
            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"}}},
        input_data={"user": "ann"},
    )
    run.kick()
    d = run.result("a", output={"id": 7, "ids": [1, 2]})[-1]
    assert d.config["url"] == "https://x/7?who=ann"
    assert d.config["json"] == {"ids": [1, 2], "n": 2, "status": "completed", "run": "run_1/wf_1/manual"}
    assert d.config["headers"]["Authorization"] == "Bearer " + secret_marker("API_TOKEN")
    assert d.context == {"input": {"user": "ann"}, "steps": {"a": {"output": {"id": 7, "ids": [1, 2]},
                                                                   "status": "completed"}},
                         "run": {"id": "run_1", "workflow_id": "wf_1", "trigger": "manual"}}


def test_a_failing_template_fails_its_step_naming_the_expression_without_retrying():
    run = Run(http("a"), {"id": "b", "type": "http_request", "depends_on": ["a"], "retry": {"max_attempts": 5},
                          "config": {"url": "https://x/{{ steps.a.output.nope }}"}})
    run.kick()
    new = run.result("a", output={})
    assert brief(new) == ["step.completed a", "step.failed b", "run.failed"]
    assert new[1].error == "expression 'steps.a.output.nope' failed: no such key: 'nope'"
    assert new[1].error_type == "template_error" and new[1].attempt == 1
    assert run.state.error == "step 'b' failed: expression 'steps.a.output.nope' failed: no such key: 'nope'"


def test_the_run_uses_its_pinned_definition_and_timeouts_reach_the_runner():
    run = Run(http("a", timeout_seconds=2.5))
    d = run.kick()[-1]
    assert run.state.workflow_version == 3
    assert d.timeout_seconds == 2.5 and d.deadline == "2026-01-01T00:00:07.500000Z"  # + 5 s grace
    assert tags(run.kick()) == []
