"""Validation through the API (SPEC §3): the exact sentences, every problem at once, and the same
list from create, update and rollback as a 422 problem."""
from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)

BROKEN = {
    "name": "broken",
    "steps": [
        {"id": "notify", "type": "agent_task", "config": {"agent_id": "agent_123", "goal": "g"},
         "depends_on": ["fetch"]},
        {"id": "step_a", "type": "http_request", "config": {"url": "https://x.example"}, "depends_on": ["step_b"]},
        {"id": "step_b", "type": "http_request", "config": {"url": "https://x.example"}, "depends_on": ["step_a"]},
        {"id": "dup", "type": "script", "config": {"language": "python", "code": "print(1)"}},
        {"id": "dup", "type": "script", "config": {"language": "python", "code": "print(2)"}},
        {"id": "x", "type": "foo", "config": {}},
        {"id": "c", "type": "condition", "config": {"expression": "input.n >", "then": ["y"]}},
        {"id": "w", "type": "wait", "config": {}},
    ],
}
EXPECTED = [
    "Step 'notify' depends on 'fetch' which doesn't exist",
    "Cycle detected: step_a → step_b → step_a",
    "Duplicate step id 'dup'",
    "Step 'x' has unknown type 'foo'",
    "Step 'c' branch references unknown step 'y'",
]


async def test_validate_reports_every_sentence_at_once(api):
    r = await api.admin.post("/api/workflows/validate", json={"definition": BROKEN})
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is False
    for sentence in EXPECTED:
        assert sentence in body["errors"], (sentence, body["errors"])
    assert any(e.startswith("Step 'c': invalid expression 'input.n >'") for e in body["errors"])
    assert any(e.startswith("Step 'w': exactly one of") for e in body["errors"])


async def test_validate_accepts_a_valid_definition_and_any_json(api):
    r = await api.admin.post("/api/workflows/validate", json={"definition": minimal(steps=3)})
    assert r.json() == {"valid": True, "errors": []}
    r = await api.admin.post("/api/workflows/validate", json={"definition": [1, 2]})
    assert r.status_code == 200 and r.json()["valid"] is False
    assert (await api.admin.post("/api/workflows/validate", json={})).status_code == 422


async def test_create_update_and_rollback_refuse_with_the_same_errors(api):
    c = api.admin
    expected = (await c.post("/api/workflows/validate", json={"definition": BROKEN})).json()["errors"]
    r = await c.post("/api/workflows", json={"definition": BROKEN})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == expected and r.json()["title"] == "Unprocessable Content"
    wf_id = (await c.post("/api/workflows", json={"definition": minimal()})).json()["id"]
    r = await c.put(f"/api/workflows/{wf_id}", json={"definition": BROKEN})
    assert r.status_code == 422 and r.json()["errors"] == expected
    assert (await c.get(f"/api/workflows/{wf_id}")).json()["version"] == 1
    r = await c.post("/api/workflows/templates", json={"name": "t", "definition": BROKEN})
    assert r.status_code == 422 and r.json()["errors"] == expected
