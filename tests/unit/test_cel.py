"""wf_expr.cel: compile cache, evaluation to plain values, error sentences, timings."""
import pickle
import time

import pytest

from wf_expr.cel import (
    ExpressionError,
    compile_expr,
    evaluate,
    evaluate_bool,
    unwrap,
)

VARS = {
    "input": {"n": 3, "name": "Ada", "ids": [1, 2, 3], "nested": {"a": {"b": True}}},
    "steps": {
        "fetch": {"output": {"status_code": 200, "body": {"items": [{"v": 1}, {"v": 2}]}}, "status": "completed"},
        "other": {"output": "x" * 1000, "status": "failed"},
    },
    "run": {"id": "run_1", "workflow_id": "wf_1", "trigger": "manual"},
    "item": {"url": "https://example.com"},
    "index": 4,
    "secrets": {"TOKEN": "s3cr3t"},
}


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("input.n + 1", 4),
        ("input.name", "Ada"),
        ("input.ids", [1, 2, 3]),
        ("input.ids.map(i, i * 2)", [2, 4, 6]),
        ("input.ids.filter(i, i > 1).size()", 2),
        ("input.nested.a.b", True),
        ("steps.fetch.output.status_code == 200", True),
        ("steps.fetch.status", "completed"),
        ("steps['other'].status", "failed"),
        ("steps.fetch.output.body.items.map(x, x.v)", [1, 2]),
        ("run.id + '/' + run.workflow_id + '/' + run.trigger", "run_1/wf_1/manual"),
        ("item.url", "https://example.com"),
        ("index * 2", 8),
        ("secrets.TOKEN", "s3cr3t"),
        ("has(input.missing)", False),
        ("has(input.n)", True),
        ("null", None),
        ("1.5 * 2.0", 3.0),
        ("{'a': [1, {'b': null}]}", {"a": [1, {"b": None}]}),
        ("{1: 'x', 'b': 'y'}", {"1": "x", "b": "y"}),
        ("{true: 'y'}", {"true": "y"}),
        ("lowerAscii(input.name)", "ada"),
        ("input.name.upperAscii()", "ADA"),
        ("'a,b'.split(',')", ["a", "b"]),
        ("math.greatest(input.ids)", 3),
        ("lists.range(3)", [0, 1, 2]),
        ("timestamp('2026-01-02T03:04:05Z')", "2026-01-02T03:04:05Z"),
        ("duration('90s')", 90.0),
        ("b'abc'", "abc"),
        ("b'\\xff'", "/w=="),
        ("type(1) == int", True),
        ("input.ids.exists(x, x == 2) && input.ids.all(y, y > 0)", True),
        ("input.n > 2 ? 'big' : 'small'", "big"),
    ],
)
def test_evaluate_plain_values(expr, expected):
    result = evaluate(expr, VARS)
    assert result == expected
    assert type(result) is type(expected)


def test_compile_is_cached():
    compile_expr.cache_clear()
    a = compile_expr("input.n + 100")
    b = compile_expr("input.n + 100")
    assert a is b
    assert compile_expr.cache_info().hits >= 1
    assert compile_expr.cache_info().maxsize == 4096


@pytest.mark.parametrize(
    "expr, reason",
    [
        ("1 +", "syntax error at column 4: unexpected end of expression"),
        ("foo.bar", "undeclared reference to 'foo'"),
        ("input.x + env", "undeclared reference to 'env'"),
        ("", "empty expression"),
        ("   ", "empty expression"),
    ],
)
def test_compile_errors(expr, reason):
    with pytest.raises(ExpressionError) as info:
        compile_expr(expr)
    err = info.value
    assert err.phase == "compile"
    assert err.expr == expr
    assert err.reason == reason
    assert str(err) == f"invalid expression '{expr}': {reason}"


def test_compile_error_message_is_one_line():
    with pytest.raises(ExpressionError) as info:
        compile_expr("input.a ==\n  'x")
    assert "\n" not in info.value.reason
    assert info.value.reason.startswith("syntax error at line ")


def test_comprehension_variables_are_not_undeclared():
    compile_expr("input.ids.map(x, x + 1)")
    compile_expr("input.ids.filter(x, x > 1).exists(y, y == 2)")
    compile_expr("[[1]].map(x, x.map(y, y + 1))")
    compile_expr("input.ids.map(x, x > 1, x * 2)")


def test_non_string_expression():
    with pytest.raises(ExpressionError) as info:
        compile_expr(42)  # type: ignore[arg-type]
    assert info.value.phase == "compile"


@pytest.mark.parametrize(
    "expr, reason",
    [
        ("input.missing", "no such key: 'missing'"),
        ("steps.nope.output", "no such key: 'nope'"),
        ("1 / 0", "division by zero"),
        ("input.ids[10]", "index out of bounds: 10"),
        ("input.name + 1", None),
        ("int('x')", None),
        ("lists.range(1000000)", None),
        ("9223372036854775807 + 1", None),
    ],
)
def test_evaluation_errors(expr, reason):
    with pytest.raises(ExpressionError) as info:
        evaluate(expr, VARS)
    err = info.value
    assert err.phase == "evaluate"
    assert str(err) == f"expression '{expr}' failed: {err.reason}"
    assert "\n" not in str(err)
    if reason is not None:
        assert err.reason == reason


def test_missing_variable_is_an_evaluation_error():
    with pytest.raises(ExpressionError) as info:
        evaluate("item.url", {"input": {}})
    assert info.value.reason == "undeclared reference to 'item'"


def test_nan_result_is_an_error():
    with pytest.raises(ExpressionError):
        evaluate("input.x", {"input": {"x": float("nan")}})


def test_only_referenced_entries_are_passed():
    c = compile_expr("steps.fetch.output.status_code")
    assert c.variables == {"steps"}
    assert c.fields["steps"] == {"fetch"}
    # dynamic access: the whole map is passed
    assert compile_expr("steps[input.k].output").fields["steps"] is None
    # a field named like a variable is not a use of the variable
    assert compile_expr("input.steps.x + steps.a.output").fields["steps"] == {"a"}
    # strings are not uses
    assert compile_expr("steps.a.output + 'steps[0]'").fields["steps"] == {"a"}
    # a method call on the variable itself
    assert compile_expr("input.size()").fields["input"] is None
    assert evaluate("input.size()", VARS) == 4
    assert evaluate("input.ids.size() + size(input)", VARS) == 7


class Exploding(dict):
    def __getitem__(self, key):
        if key == "bomb":
            raise AssertionError("unrelated entry read")
        return super().__getitem__(key)


def test_narrowing_never_touches_unrelated_entries():
    steps = Exploding({"a": {"output": 1, "status": "completed"}, "bomb": {}})
    assert evaluate("steps.a.output + 1", {"steps": steps}) == 2


def test_evaluate_bool_accepts_bare_or_wrapped():
    assert evaluate_bool("input.n > 2", VARS) is True
    assert evaluate_bool("{{ input.n > 5 }}", VARS) is False
    assert evaluate_bool("  {{ input.n == 3 }} ", VARS) is True
    with pytest.raises(ExpressionError) as info:
        evaluate_bool("input.n", VARS)
    assert info.value.reason == "result must be a bool, got int"


def test_unwrap():
    assert unwrap("{{ a.b }}") == "a.b"
    assert unwrap("a.b") == "a.b"
    assert unwrap("x {{ a }}") == "x {{ a }}"


def test_error_pickles():
    err = ExpressionError("1 +", "boom", "compile")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.phase == "compile"


def test_timings(capsys):
    """Compile and evaluate are fast enough to run per step (numbers printed with -s)."""
    n = 500
    t0 = time.perf_counter()
    for i in range(n):
        compile_expr(f"steps.fetch.output.status_code == {i} && input.n > 1 && run.id != ''")
    compile_us = (time.perf_counter() - t0) / n * 1e6
    c = compile_expr("steps.fetch.output.status_code == 200 && input.n > 1 && run.id != ''")
    t0 = time.perf_counter()
    for _ in range(n):
        c.evaluate(VARS)
    eval_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        evaluate("steps.fetch.output.status_code == 200 && input.n > 1 && run.id != ''", VARS)
    cached_us = (time.perf_counter() - t0) / n * 1e6
    with capsys.disabled():
        print(f"\nCEL compile {compile_us:.1f} us, evaluate {eval_us:.1f} us, cached evaluate {cached_us:.1f} us")
    assert compile_us < 5000
    assert eval_us < 1000
