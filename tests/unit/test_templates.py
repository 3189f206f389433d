"""wf_expr.templates: finding and rendering {{ }} templates, secret placeholders, redaction."""
import json

import pytest

from wf_expr.templates import (
    ExpressionError,
    exact_template,
    find_templates,
    redact,
    referenced_secrets,
    render,
    secret_marker,
    split_template,
    substitute_secrets,
)

VARS = {
    "input": {"ids": [1, 2], "name": "Ada", "n": 3, "flag": True, "nothing": None, "obj": {"a": 1}, "ratio": 0.5},
    "steps": {"fetch": {"output": {"body": {"items": ["x", "y"]}}, "status": "completed"}},
    "run": {"id": "run_1", "workflow_id": "wf_1", "trigger": "api"},
}


def test_find_templates_recursive_in_order_and_distinct():
    config = {
        "url": "https://x/{{ input.name }}/{{input.n}}",
        "headers": {"A": "{{ run.id }}", "B": "plain"},
        "json": [{"k": "{{ input.ids }}"}, 5, None, True, "{{ run.id }}"],
    }
    assert find_templates(config) == ["input.name", "input.n", "run.id", "input.ids"]
    assert find_templates("no templates") == []
    assert find_templates(42) == []


def test_find_templates_handles_braces_and_strings_inside():
    assert find_templates("{{ {'a': {'b': 1}} }}") == ["{'a': {'b': 1}}"]
    assert find_templates("{{ 'x}}y' }} and {{ \"}}\" }}") == ["'x}}y'", '"}}"']
    assert find_templates("{{ '{{' }}") == ["'{{'"]


def test_unterminated_template_is_an_error():
    with pytest.raises(ExpressionError) as info:
        find_templates({"a": "hello {{ input.name"})
    assert str(info.value) == "invalid expression '{{ input.name': unterminated template, missing '}}'"
    with pytest.raises(ExpressionError):
        render("{{ 'abc }}", VARS)


def test_split_template():
    assert split_template("a {{ x }} b") == ["a ", ("x",), " b"]
    assert split_template("plain") == ["plain"]
    assert split_template("") == [""]


def test_exact_template():
    assert exact_template("{{ input.ids }}") == "input.ids"
    assert exact_template("  {{input.ids}}\n") == "input.ids"
    assert exact_template("x{{ input.ids }}") is None
    assert exact_template("{{ a }}{{ b }}") is None
    assert exact_template("plain") is None


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ input.ids }}", [1, 2]),
        ("  {{ input.ids }}  ", [1, 2]),
        ("{{ input.n }}", 3),
        ("{{ input.ratio }}", 0.5),
        ("{{ input.flag }}", True),
        ("{{ input.nothing }}", None),
        ("{{ input.obj }}", {"a": 1}),
        ("{{ input.name }}", "Ada"),
        ("{{ steps.fetch.output.body.items }}", ["x", "y"]),
    ],
)
def test_single_template_keeps_type(template, expected):
    result = render(template, VARS)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("Hello {{ input.name }}!", "Hello Ada!"),
        ("n={{ input.n }}", "n=3"),
        ("r={{ input.ratio }}", "r=0.5"),
        ("f={{ input.flag }} g={{ !input.flag }}", "f=true g=false"),
        ("z={{ input.nothing }}", "z=null"),
        ("ids={{ input.ids }}", "ids=[1,2]"),
        ("obj={{ input.obj }}", 'obj={"a":1}'),
        ("{{ input.name }}{{ input.n }}", "Ada3"),
        ("{{ '{{' }} literal }}", "{{ literal }}"),
        ("no templates at all", "no templates at all"),
    ],
)
def test_interpolation_as_text(template, expected):
    assert render(template, VARS) == expected


def test_render_recurses_and_does_not_mutate():
    config = {
        "url": "https://api/{{ input.name }}",
        "json": {"ids": "{{ input.ids }}", "list": ["{{ input.n }}", 7, None], "keep": False},
        "{{ not_a_template_key }}": "x",
    }
    before = json.dumps(config, sort_keys=True)
    out = render(config, VARS)
    assert out == {
        "url": "https://api/Ada",
        "json": {"ids": [1, 2], "list": [3, 7, None], "keep": False},
        "{{ not_a_template_key }}": "x",
    }
    assert json.dumps(config, sort_keys=True) == before


def test_render_error_names_the_expression():
    with pytest.raises(ExpressionError) as info:
        render({"a": ["ok", "x {{ input.missing }}"]}, VARS)
    assert str(info.value) == "expression 'input.missing' failed: no such key: 'missing'"
    with pytest.raises(ExpressionError) as info:
        render("{{ 1 + }}", VARS)
    assert info.value.phase == "compile"
    assert str(info.value).startswith("invalid expression '1 +': ")


# ------------------------------------------------------------------------------- secrets

SECRET = "hunter2-S3cr3t"


def test_placeholder_render_never_contains_the_secret():
    config = {
        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
        "secret": "{{ secrets.API_TOKEN }}",
        "url": "https://x/?a={{ input.name }}",
    }
    variables = {**VARS, "secrets": {"API_TOKEN": SECRET}}
    out = render(config, variables, secret_placeholders=True)
    text = json.dumps(out)
    assert SECRET not in text
    assert out["secret"] == secret_marker("API_TOKEN")
    assert out["headers"]["Authorization"] == "Bearer " + secret_marker("API_TOKEN")
    assert "\\u0000" not in text  # storable in Postgres jsonb
    assert referenced_secrets(out) == {"API_TOKEN"}
    real = substitute_secrets(out, {"API_TOKEN": SECRET})
    assert real == {
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "secret": SECRET,
        "url": "https://x/?a=Ada",
    }


def test_placeholder_render_without_known_names():
    out = render("{{ secrets.ANY }}", {"input": {}}, secret_placeholders=True)
    assert out == secret_marker("ANY")
    with pytest.raises(ExpressionError) as info:
        substitute_secrets(out, {"OTHER": "x"})
    assert str(info.value) == "expression 'secrets.ANY' failed: unknown secret 'ANY'"


def test_placeholder_render_with_known_names_rejects_unknown():
    with pytest.raises(ExpressionError) as info:
        render("{{ secrets.NOPE }}", {"secrets": {"API_TOKEN": "v"}}, secret_placeholders=True)
    assert str(info.value) == "expression 'secrets.NOPE' failed: no such key: 'NOPE'"


def test_placeholder_render_rejects_dynamic_secret_access():
    with pytest.raises(ExpressionError) as info:
        render("{{ secrets[input.name] }}", VARS, secret_placeholders=True)
    assert "secrets.NAME" in str(info.value)


def test_forged_markers_in_data_are_neutralised():
    forged = secret_marker("API_TOKEN")
    variables = {"input": {"evil": forged, "nested": {forged: [forged]}}}
    config = {"url": "https://attacker/?q={{ input.evil }}", "json": "{{ input.nested }}", "lit": forged}
    out = render(config, variables, secret_placeholders=True)
    assert referenced_secrets(out) == set()
    assert substitute_secrets(out, {"API_TOKEN": SECRET}) == out
    assert SECRET not in json.dumps(substitute_secrets(out, {"API_TOKEN": SECRET}))


def test_non_placeholder_render_uses_real_values():
    assert render("{{ secrets.K }}", {"secrets": {"K": "v"}}) == "v"


def test_substitute_secrets_recursive_and_pure():
    value = {"a": [secret_marker("A"), {"b": "x" + secret_marker("B") + "y"}], "n": 1}
    out = substitute_secrets(value, {"A": "1", "B": "2"})
    assert out == {"a": ["1", {"b": "x2y"}], "n": 1}
    assert value["a"][0] == secret_marker("A")


def test_redact():
    secrets = {"A": SECRET, "EMPTY": "", "Q": 'p"w/d'}
    out = redact(
        {
            "stdout": f"token={SECRET}\n",
            SECRET: [f"x{SECRET}{SECRET}", 5, None, b"b" + SECRET.encode()],
            "json": json.dumps({"pw": 'p"w/d'}),
            "url": "https://x/?p=p%22w%2Fd",
        },
        secrets,
    )
    assert out == {
        "stdout": "token=***\n",
        "***": ["x******", 5, None, b"b***"],
        "json": '{"pw": "***"}',
        "url": "https://x/?p=***",
    }
    assert redact("plain", {}) == "plain"
    assert redact(f"a {SECRET}", [SECRET]) == "a ***"


def test_values_are_not_rendered_again():
    variables = {"input": {"evil": "{{ secrets.K }}"}, "secrets": {"K": "v"}}
    assert render("x={{ input.evil }}", variables) == "x={{ secrets.K }}"
    assert render("{{ input.evil }}", variables, secret_placeholders=True) == "{{ secrets.K }}"
