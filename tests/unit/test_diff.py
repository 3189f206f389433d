"""wf_gateway.domain.diff: RFC 6902 patch round trip and the id-matched summary."""
import copy
import json
import random

import jsonpatch
import pytest

from wf_gateway.domain.diff import _simple_patch, diff_definitions, strict_equal


def step(step_id, url="https://example.com", **extra):
    return {"id": step_id, "type": "http_request", "config": {"url": url}, **extra}


BASE = {"name": "wf", "steps": [step("a"), step("b", depends_on=["a"]), step("c", depends_on=["b"])]}


def check(a, b):
    a_before = copy.deepcopy(a)
    b_before = copy.deepcopy(b)
    patch, summary = diff_definitions(a, b)
    json.dumps(patch)  # plain JSON
    result = jsonpatch.apply_patch(a, patch)
    assert strict_equal(result, b), (a, b, patch)
    assert strict_equal(a, a_before) and strict_equal(b, b_before)
    return patch, summary


def test_no_changes():
    patch, summary = check(BASE, copy.deepcopy(BASE))
    assert patch == [] and summary == "No changes"


def test_added_one_modified_one():
    b = copy.deepcopy(BASE)
    b["steps"][0]["config"]["url"] = "https://new-url.com"
    b["steps"].append(step("d"))
    patch, summary = check(BASE, b)
    assert summary == "Added 1 step, modified 1 step"
    assert {"op": "replace", "path": "/steps/0/config/url", "value": "https://new-url.com"} in patch


def test_added_two_removed_one():
    b = copy.deepcopy(BASE)
    del b["steps"][1]
    b["steps"][1]["depends_on"] = ["b"]  # unchanged content for c
    b["steps"] += [step("d"), step("e")]
    _, summary = check(BASE, b)
    assert summary == "Added 2 steps, removed 1 step"


def test_steps_matched_by_id_not_position():
    b = copy.deepcopy(BASE)
    b["steps"].insert(0, step("z"))  # every position shifts
    _, summary = check(BASE, b)
    assert summary == "Added 1 step"


def test_removed_first_step_only():
    b = copy.deepcopy(BASE)
    b["steps"].pop(0)
    _, summary = check(BASE, b)
    assert summary == "Removed 1 step"


def test_renamed():
    b = copy.deepcopy(BASE)
    b["name"] = "other"
    _, summary = check(BASE, b)
    assert summary == "Renamed workflow"


def test_all_parts_in_order():
    b = copy.deepcopy(BASE)
    b["name"] = "other"
    b["description"] = "now described"
    b["steps"] = [step("a", url="https://changed"), step("c", depends_on=["b"]), step("x"), step("y")]
    _, summary = check(BASE, b)
    assert summary == "Renamed workflow, added 2 steps, removed 1 step, modified 1 step, changed settings"


def test_settings_and_reorder():
    b = copy.deepcopy(BASE)
    b["timeout_seconds"] = 60
    _, summary = check(BASE, b)
    assert summary == "Changed settings"
    b = copy.deepcopy(BASE)
    b["steps"].reverse()
    _, summary = check(BASE, b)
    assert summary == "Reordered steps"


def test_type_changes_are_changes():
    a = {"name": "wf", "steps": [step("a", retry={"max_attempts": 1})]}
    b = {"name": "wf", "steps": [step("a", retry={"max_attempts": 1.0})]}
    patch, summary = check(a, b)
    assert summary == "Modified 1 step" and patch
    b = {"name": "wf", "steps": [step("a", retry={"max_attempts": True})]}
    _, summary = check(a, b)
    assert summary == "Modified 1 step"


def test_odd_inputs_do_not_crash():
    check({}, {})
    check({"name": "x"}, {"name": "x", "steps": "nope"})
    # steps without a string id are matched by position among themselves
    _, summary = check({"steps": [1, "two", {"id": 3}]}, {"steps": [1, {"id": 3}]})
    assert summary == "Removed 1 step, modified 1 step"
    _, summary = check({"steps": [step("a"), step("a")]}, {"steps": [step("a")]})
    assert summary == "Removed 1 step"


def test_simple_patch_fallback_round_trips():
    rng = random.Random(5)
    for _ in range(300):
        a, b = random_definition(rng), random_definition(rng)
        assert strict_equal(jsonpatch.apply_patch(a, _simple_patch(a, b)), b)
    assert strict_equal(jsonpatch.apply_patch({"a": 1}, _simple_patch({"a": 1}, [1])), [1])


# --------------------------------------------------------------------------- property test

SCALARS = [None, True, False, 0, 1, 1.0, -2, 2.5, "", "x", "a/b", "~0", "{{ input.x }}", "é"]
KEYS = ["url", "method", "a/b", "~", "", "json", "x", "y", "0", "1"]


def random_value(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice(SCALARS)
    if r < 0.75:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_step(rng, step_id):
    s = {"id": step_id, "type": rng.choice(["http_request", "script", "wait"]), "config": random_value(rng, 1)}
    if rng.random() < 0.5:
        s["depends_on"] = rng.sample(["a", "b", "c", "d", "e"], rng.randint(0, 3))
    if rng.random() < 0.3:
        s["retry"] = {"max_attempts": rng.choice([1, 2, 3.0, True])}
    return s


def random_definition(rng):
    ids = rng.sample(["a", "b", "c", "d", "e", "f", "g"], rng.randint(0, 6))
    d = {"name": rng.choice(["wf", "wf2"]), "steps": [random_step(rng, i) for i in ids]}
    if rng.random() < 0.5:
        d["description"] = rng.choice(["", "d", "e"])
    if rng.random() < 0.3:
        d["input_schema"] = {"type": "object", "properties": random_value(rng, 2)}
    return d


def mutate_definition(rng, d):
    d = copy.deepcopy(d)
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(6)
        steps = d["steps"]
        if op == 0 and steps:
            steps.pop(rng.randrange(len(steps)))
        elif op == 1:
            new_id = rng.choice("abcdefghij")
            if all(s["id"] != new_id for s in steps):
                steps.insert(rng.randint(0, len(steps)), random_step(rng, new_id))
        elif op == 2 and steps:
            steps[rng.randrange(len(steps))]["config"] = random_value(rng, 1)
        elif op == 3:
            rng.shuffle(steps)
        elif op == 4:
            d["name"] = rng.choice(["wf", "wf2", "wf3"])
        else:
            d["timeout_seconds"] = rng.choice([1, 1.0, 30])
    return d


def expected_summary(a, b):
    ia = {s["id"]: s for s in a["steps"]}
    ib = {s["id"]: s for s in b["steps"]}
    parts = []
    if a["name"] != b["name"]:
        parts.append("renamed workflow")
    added = len(set(ib) - set(ia))
    removed = len(set(ia) - set(ib))
    modified = sum(1 for k in ia if k in ib and json.dumps(ia[k], sort_keys=True) != json.dumps(ib[k], sort_keys=True))
    for n, word in ((added, "added"), (removed, "removed"), (modified, "modified")):
        if n:
            parts.append(f"{word} {n} step{'s' if n != 1 else ''}")
    return parts


@pytest.mark.parametrize("seed", range(4))
def test_random_round_trip(seed):
    rng = random.Random(seed)
    for _ in range(250):
        a = random_definition(rng)
        b = mutate_definition(rng, a) if rng.random() < 0.7 else random_definition(rng)
        _, summary = check(a, b)
        if strict_equal(a, b):
            assert summary == "No changes"
            continue
        expected = expected_summary(a, b)
        low = summary[0].lower() + summary[1:]
        assert low.startswith(", ".join(expected)), (summary, expected)
