"""wf_gateway.domain.validation: every SPEC §3 sentence, multi-error reporting, fuzzing."""
import copy
import json
import random
import string

import pytest

from wf_gateway.domain.validation import check_step_config, validate_definition

SEED = {
    "name": "Fetch and notify",
    "steps": [
        {"id": "fetch", "type": "http_request", "config": {"method": "GET", "url": "https://api.example.com/data"}},
        {
            "id": "notify",
            "type": "agent_task",
            "config": {"agent_id": "agent_123", "goal": "Summarize the fetched data and post to Slack"},
            "depends_on": ["fetch"],
        },
    ],
}

FULL = {
    "name": "Everything",
    "description": "all step types",
    "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    "timeout_seconds": 600,
    "max_concurrent_runs": 2,
    "steps": [
        {
            "id": "fetch",
            "name": "Fetch",
            "type": "http_request",
            "config": {
                "method": "post",
                "url": "https://api.example.com/{{ input.n }}",
                "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                "query": {"a": 1, "b": ["x", True]},
                "json": {"ids": "{{ input.ids }}"},
                "timeout_seconds": 5.5,
                "expected_status": [200, 201],
                "follow_redirects": True,
            },
            "retry": {"max_attempts": 3, "backoff_seconds": 0.5, "backoff_multiplier": 2, "max_backoff_seconds": 10},
            "timeout_seconds": 30,
            "on_error": "continue",
        },
        {
            "id": "check",
            "type": "condition",
            "config": {"expression": "steps.fetch.output.status_code == 200", "then": ["each"], "else": ["hold"]},
            "depends_on": ["fetch"],
            "trigger_rule": "all_done",
        },
        {
            "id": "each",
            "type": "loop",
            "config": {
                "items": "{{ steps.fetch.output.body.items }}",
                "step": {"type": "script", "config": {"language": "python", "code": "print({{ item }})", "env": {"I": "{{ index }}"}}},
                "max_concurrency": 4,
                "fail_fast": False,
            },
            "depends_on": ["check"],
        },
        {"id": "hold", "type": "wait", "config": {"approval": True}, "depends_on": ["check"]},
        {
            "id": "notify",
            "type": "webhook",
            "config": {
                "url": "https://hooks.example.com/x",
                "payload": {"run": "{{ run.id }}"},
                "event": "run.done",
                "headers": {"X": "y"},
                "secret": "{{ secrets.SIGNING }}",
                "timeout_seconds": 10,
                "max_attempts": 20,
            },
            "depends_on": ["each", "hold"],
            "trigger_rule": "none_failed",
            "if": "{{ input.n > 0 }}",
        },
        {"id": "sleep", "type": "wait", "config": {"duration_seconds": 0}, "depends_on": ["notify"]},
        {"id": "until", "type": "wait", "config": {"until": "2026-01-01T09:00:00+01:00"}},
        {"id": "poll", "type": "wait", "config": {"condition": "steps.notify.status == 'completed'", "poll_interval_seconds": 1, "timeout_seconds": 60}},
        {"id": "shell", "type": "script", "config": {"language": "shell", "code": "echo hi", "timeout_seconds": 2}, "if": "input.n > 1"},
        {"id": "agent", "type": "agent_task", "config": {"agent_id": "a1", "goal": "g", "context": {"x": 1}, "timeout_seconds": 300}},
    ],
}


def errors_of(defn):
    return validate_definition(defn)


def with_steps(*steps, **top):
    return {"name": "wf", "steps": list(steps), **top}


def http(step_id="fetch", **extra):
    return {"id": step_id, "type": "http_request", "config": {"url": "https://example.com"}, **extra}


def test_valid_definitions():
    assert errors_of(SEED) == []
    assert errors_of(FULL) == []


def test_spec_example_errors_exactly():
    defn = with_steps(
        {"id": "notify", "type": "agent_task", "config": {"agent_id": "a", "goal": "g"}, "depends_on": ["fetch"]},
        http("step_a", depends_on=["step_b"]),
        http("step_b", depends_on=["step_a"]),
    )
    assert errors_of(defn) == [
        "Step 'notify' depends on 'fetch' which doesn't exist",
        "Cycle detected: step_a → step_b → step_a",
    ]


def test_duplicate_id():
    assert errors_of(with_steps(http("fetch"), http("fetch"), http("fetch"))) == ["Duplicate step id 'fetch'"]


def test_unknown_type():
    assert errors_of(with_steps({"id": "x", "type": "foo", "config": {}})) == ["Step 'x' has unknown type 'foo'"]


def test_invalid_expression_sentences():
    defn = with_steps(
        http("a", **{"if": "input.x >"}),
        {"id": "b", "type": "agent_task", "config": {"agent_id": "a", "goal": "Use {{ steps.a.output + }} now"}},
        {"id": "c", "type": "condition", "config": {"expression": "foo == 1"}},
        {"id": "d", "type": "wait", "config": {"condition": "{{ input.( }}"}},
        {"id": "e", "type": "agent_task", "config": {"agent_id": "a", "goal": "{{ input.x"}},
    )
    assert errors_of(defn) == [
        "Step 'a': invalid expression 'input.x >': syntax error at column 10: unexpected end of expression",
        "Step 'b': invalid expression 'steps.a.output +': syntax error at column 17: unexpected end of expression",
        "Step 'c': invalid expression 'foo == 1': undeclared reference to 'foo'",
        "Step 'd': invalid expression 'input.(': syntax error at column 7: no viable alternative at input '.('",
        "Step 'e': invalid expression '{{ input.x': unterminated template, missing '}}'",
    ]


def test_branch_references_unknown_step():
    defn = with_steps(
        {"id": "c", "type": "condition", "config": {"expression": "true", "then": ["y"], "else": ["a", "z"]}},
        http("a", depends_on=["c"]),
    )
    assert errors_of(defn) == [
        "Step 'c' branch references unknown step 'y'",
        "Step 'c' branch references unknown step 'z'",
    ]


def test_three_step_cycle_in_dependency_order():
    # c runs before a, a before b, b before c
    defn = with_steps(http("a", depends_on=["c"]), http("b", depends_on=["a"]), http("c", depends_on=["b"]))
    assert errors_of(defn) == ["Cycle detected: a → b → c → a"]


def test_self_dependency_is_a_cycle():
    assert errors_of(with_steps(http("a", depends_on=["a"]))) == ["Cycle detected: a → a"]


def test_each_distinct_cycle_once():
    defn = with_steps(
        http("a", depends_on=["b"]),
        http("b", depends_on=["a", "c"]),
        http("c", depends_on=["b"]),
        http("d", depends_on=["e"]),
        http("e", depends_on=["d"]),
        http("f", depends_on=["a", "d"]),
    )
    assert errors_of(defn) == [
        "Cycle detected: a → b → a",
        "Cycle detected: b → c → b",
        "Cycle detected: d → e → d",
    ]


def test_big_cyclic_graph_is_bounded():
    n = 300
    steps = [http(f"s{i}", depends_on=[f"s{j}" for j in range(n) if j != i]) for i in range(n)]
    errs = errors_of(with_steps(*steps))
    assert 1 <= len(errs) <= 10
    assert all(e.startswith("Cycle detected: ") for e in errs)


def test_long_chain_cycle_no_recursion_error():
    n = 5000
    steps = [http(f"s{i}", depends_on=[f"s{(i - 1) % n}"]) for i in range(n)]
    errs = errors_of(with_steps(*steps))
    assert len(errs) == 1 and errs[0].startswith("Cycle detected: s0 → s1 → ") and errs[0].endswith("→ s0")


def test_many_errors_at_once():
    defn = {
        "name": "",
        "surprise": 1,
        "timeout_seconds": 0,
        "max_concurrent_runs": 0,
        "input_schema": {"type": "nope"},
        "steps": [
            {"id": "Bad-Id", "type": "http_request", "config": {"url": "ftp://x", "method": "FETCH", "json": {}, "body": "b",
                                                              "expected_status": [99], "follow_redirects": "yes", "timeout_seconds": -1,
                                                              "headers": {"a": 1}, "extra": 1},
             "trigger_rule": "sometimes", "on_error": "explode", "retry": {"max_attempts": 0, "backoff_seconds": -1,
                                                                        "backoff_multiplier": 0.5, "max_backoff_seconds": -2, "jitter": 1},
             "timeout_seconds": "soon", "depends": ["x"]},
            "not an object",
            {"type": "script", "config": {"language": "ruby", "env": {"A": 1}}},
            {"id": "w", "type": "wait", "config": {"duration_seconds": 1, "approval": True, "poll_interval_seconds": 0}},
            {"id": "w2", "type": "wait", "config": {}},
            {"id": "u", "type": "wait", "config": {"until": "tomorrow"}},
            {"id": "l", "type": "loop", "config": {"items": "input.rows", "step": {"type": "loop", "config": {}}, "max_concurrency": 0, "fail_fast": 1}},
            {"id": "l2", "type": "loop", "config": {"items": [1], "step": {"type": "http_request", "config": {"method": "GET"}, "retry": {}}}},
            {"id": "hook", "type": "webhook", "config": {"max_attempts": 21}},
            {"id": "ag", "type": "agent_task", "config": {"goal": 5}},
            {"id": "nc", "type": "script"},
            {"id": "cc", "type": "condition", "config": {"expression": 1, "then": "x"}},
            {"id": "x1", "type": 7, "config": []},
        ],
    }
    assert errors_of(defn) == [
        "Unknown workflow field 'surprise'",
        "Workflow 'name' must be a non-empty string",
        "Workflow 'timeout_seconds' must be a positive number of seconds",
        "Workflow 'max_concurrent_runs' must be an integer >= 1",
        "Workflow 'input_schema' is not a valid JSON Schema: 'nope' is not valid under any of the given schemas (at 'type')",
        "Step 'Bad-Id': id must match ^[a-z][a-z0-9_]{0,63}$",
        "Step 'Bad-Id': unknown field 'depends'",
        "Step 'Bad-Id': 'trigger_rule' must be one of all_success, none_failed, all_done",
        "Step 'Bad-Id': 'on_error' must be one of fail, continue, pause",
        "Step 'Bad-Id': the step's 'timeout_seconds' must be a positive number of seconds",
        "Step 'Bad-Id': unknown retry field 'jitter'",
        "Step 'Bad-Id': retry 'max_attempts' must be an integer >= 1",
        "Step 'Bad-Id': retry 'backoff_seconds' must be a number >= 0",
        "Step 'Bad-Id': retry 'backoff_multiplier' must be a number >= 1",
        "Step 'Bad-Id': retry 'max_backoff_seconds' must be a number >= 0",
        "Step 'Bad-Id': 'url' must be an absolute http:// or https:// URL",
        "Step 'Bad-Id': 'method' must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        "Step 'Bad-Id': 'headers' must be an object whose values are strings",
        "Step 'Bad-Id': 'json' and 'body' cannot both be set",
        "Step 'Bad-Id': 'timeout_seconds' must be a positive number of seconds",
        "Step 'Bad-Id': 'expected_status' must be a non-empty list of status codes between 100 and 599",
        "Step 'Bad-Id': 'follow_redirects' must be true or false",
        "Step 'Bad-Id': unknown config field 'extra'",
        "Step 2 must be an object",
        "Step 3: 'id' is required",
        "Step 3: 'language' must be 'python' or 'shell'",
        "Step 3: 'code' is required",
        "Step 3: 'env' must be an object whose values are strings",
        "Step 'w': exactly one of 'duration_seconds', 'until', 'condition' or 'approval: true' must be set "
        "(found 'duration_seconds', 'approval')",
        "Step 'w': 'poll_interval_seconds' must be a positive number of seconds",
        "Step 'w2': exactly one of 'duration_seconds', 'until', 'condition' or 'approval: true' must be set",
        "Step 'u': 'until' must be an RFC 3339 timestamp with a time zone, like 2026-01-01T09:00:00Z",
        "Step 'l': 'items' must be a list or a '{{ }}' template giving a list",
        "Step 'l': a loop body cannot be a loop",
        "Step 'l': 'max_concurrency' must be an integer >= 1",
        "Step 'l': 'fail_fast' must be true or false",
        "Step 'l2': in loop body, unknown field 'retry'",
        "Step 'l2': in loop body, 'url' is required",
        "Step 'hook': 'url' is required",
        "Step 'hook': 'max_attempts' must be an integer between 1 and 20",
        "Step 'ag': 'agent_id' is required",
        "Step 'ag': 'goal' must be a string",
        "Step 'nc': 'config' is required",
        "Step 'cc': 'expression' must be a string (a CEL expression)",
        "Step 'cc': 'then' must be a list of step ids",
        "Step 'x1': 'type' must be a string",
        "Step 'x1': 'config' must be an object",
    ]


@pytest.mark.parametrize(
    "defn, expected",
    [
        (None, ["Definition must be a JSON object with 'name' and 'steps'"]),
        ([], ["Definition must be a JSON object with 'name' and 'steps'"]),
        ({}, ["Workflow 'name' is required", "Workflow must have at least one step ('steps' is missing)"]),
        ({"name": "x", "steps": []}, ["Workflow must have at least one step"]),
        ({"name": "x", "steps": {}}, ["Workflow 'steps' must be a list of steps"]),
        ({"name": 3, "steps": [http()]}, ["Workflow 'name' must be a non-empty string"]),
        ({"name": "x", "steps": [http()], "input_schema": 5}, ["Workflow 'input_schema' must be a JSON Schema object"]),
        ({"name": "x", "steps": [http()], "input_schema": True}, []),
        ({"name": "x", "steps": [http()], "input_schema": {"type": "object", "properties": {"a": {"pattern": "("}}}}, None),
    ],
)
def test_top_level(defn, expected):
    errs = errors_of(defn)
    if expected is None:
        assert len(errs) == 1 and errs[0].startswith("Workflow 'input_schema' is not a valid JSON Schema")
    else:
        assert errs == expected


@pytest.mark.parametrize("step_id, ok", [("a", True), ("a_1", True), ("a" * 64, True), ("a" * 65, False),
                                         ("1a", False), ("A", False), ("a-b", False), ("a\n", False), ("_a", False)])
def test_step_id_pattern(step_id, ok):
    errs = errors_of(with_steps(http(step_id)))
    assert (errs == []) is ok


def test_templates_stand_in_for_typed_fields():
    step = {"id": "s", "type": "http_request", "config": {
        "url": "{{ input.url }}", "timeout_seconds": "{{ input.t }}", "expected_status": "{{ input.codes }}",
        "follow_redirects": "{{ input.f }}", "headers": "{{ input.h }}"}}
    assert errors_of(with_steps(step)) == []
    wait = {"id": "w", "type": "wait", "config": {"duration_seconds": "{{ input.d }}"}}
    assert errors_of(with_steps(wait)) == []
    # but not text around a template
    bad = {"id": "s", "type": "http_request", "config": {"url": "https://x", "timeout_seconds": "{{ input.t }}s"}}
    assert errors_of(with_steps(bad)) == ["Step 's': 'timeout_seconds' must be a positive number of seconds"]


def test_loop_body_validated_recursively_with_expressions():
    defn = with_steps(
        {"id": "l", "type": "loop", "config": {
            "items": "{{ input.rows }}",
            "step": {"type": "condition", "config": {"expression": "item >", "then": ["ghost"]}}}},
    )
    assert errors_of(defn) == [
        "Step 'l' branch references unknown step 'ghost'",
        "Step 'l': invalid expression 'item >': syntax error at column 7: unexpected end of expression",
    ]
    defn = with_steps({"id": "l", "type": "loop", "config": {"items": [1], "step": {"type": "nope", "config": {}}}})
    assert errors_of(defn) == ["Step 'l': loop body has unknown type 'nope'"]


def test_condition_cannot_branch_to_itself():
    defn = with_steps({"id": "c", "type": "condition", "config": {"expression": "true", "then": ["c"]}})
    assert errors_of(defn) == ["Step 'c': 'then' cannot name the condition step itself"]


def test_check_step_config_after_rendering():
    assert check_step_config("http_request", {"url": "https://x", "timeout_seconds": 3}, rendered=True) == []
    assert check_step_config("http_request", {"url": "https://x", "timeout_seconds": "{{ x }}"}, rendered=True) == [
        "'timeout_seconds' must be a positive number of seconds"]
    assert check_step_config("loop", {"items": "{{ x }}", "step": {"type": "wait", "config": {"duration_seconds": 1}}},
                             rendered=True) == ["'items' must be a list or a '{{ }}' template giving a list"]
    assert check_step_config("nope", {}) == ["unknown type 'nope'"]
    assert check_step_config("wait", None) == ["'config' must be an object"]


def test_input_is_not_mutated():
    defn = copy.deepcopy(FULL)
    validate_definition(defn)
    assert defn == FULL


# ------------------------------------------------------------------------------- fuzzing

KEYS = ["name", "steps", "id", "type", "config", "depends_on", "if", "url", "items", "step", "then", "else",
        "expression", "retry", "max_attempts", "input_schema", "timeout_seconds", "trigger_rule", "on_error",
        "language", "code", "approval", "until", "condition", "json", "body", "headers", "type", "properties", "x"]
STRINGS = ["", "a", "fetch", "http_request", "loop", "wait", "condition", "script", "{{", "}}", "{{ input.x }}",
           "{{ 1 + }}", "{{ '}} }}", "2026-01-01T00:00:00Z", "python", "all_done", "\x00", "\x1e", "→", "https://x",
           "{{ {'a': {'b': 1}} }}", "object", "steps.a.output", "input.(", "a" * 70]


def random_json(rng: random.Random, depth: int = 0):
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"]
    weights = [1, 1, 1, 1, 3, 2 if depth < 6 else 0, 3 if depth < 6 else 0]
    kind = rng.choices(kinds, weights)[0]
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 5, 600, 2**63, -(2**70)])
    if kind == "float":
        return rng.choice([0.0, 0.5, -1.5, 1e308, 3.0])
    if kind == "str":
        if rng.random() < 0.7:
            return rng.choice(STRINGS)
        return "".join(rng.choice(string.printable + "{}'\"") for _ in range(rng.randint(0, 12)))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS) if rng.random() < 0.8 else random_json_str(rng): random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 5))}


def random_json_str(rng):
    return "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(0, 6)))


def mutate(rng: random.Random, value):
    """Replace a random node of ``value`` by random JSON."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        k = rng.choice(list(value))
        value[k] = mutate(rng, value[k])
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        value[i] = mutate(rng, value[i])
        return value
    return random_json(rng, 3)


def test_never_raises_on_random_json():
    rng = random.Random(1234)
    for i in range(2000):
        if i % 2:
            defn = random_json(rng)
        else:
            defn = mutate(rng, copy.deepcopy(FULL if i % 4 else SEED))
        errs = validate_definition(defn)
        assert isinstance(errs, list) and all(isinstance(e, str) and e for e in errs)
        assert not any("could not be validated" in e for e in errs), (defn, errs)
        json.dumps(errs)


def test_never_raises_on_deep_nesting():
    deep = {"x": 1}
    for _ in range(5000):
        deep = {"a": [deep]}
    defn = {"name": "x", "steps": [{"id": "a", "type": "webhook", "config": {"url": "https://x", "payload": deep}}]}
    assert validate_definition(defn) == []
    schema = {"type": "object"}
    for _ in range(3000):
        schema = {"type": "object", "properties": {"a": schema}}
    errs = validate_definition({"name": "x", "steps": [http()], "input_schema": schema})
    assert isinstance(errs, list)
