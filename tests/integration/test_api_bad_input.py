"""Bad input gets a clear 4xx problem, never a 5xx: huge bodies, deep nesting, unknown fields,
wrong types, non-UTF-8, malformed JSON, NUL characters, odd ids and methods."""
import json

import pytest

from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)

JSON = {"content-type": "application/json"}


def _problem(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


async def test_body_over_one_mib_is_413(api):
    big = {"definition": {**minimal(), "description": "x" * (1024 * 1024 + 10)}}
    _problem(await api.admin.post("/api/workflows", json=big), 413)

    async def chunks():  # no content-length: the limit holds on the stream too
        for _ in range(20):
            yield b" " * 65536
        yield b"{}"

    _problem(await api.admin.post("/api/workflows", content=chunks(), headers=JSON), 413)


async def test_deep_nesting_is_422(api):
    deep = {"definition": {**minimal(), "metadata": json.loads("[" * 200 + "]" * 200)}}
    body = _problem(await api.admin.post("/api/workflows", json=deep), 422)
    assert "nested too deeply" in body["detail"]
    raw = b'{"definition":' + b"[" * 200_000
    _problem(await api.admin.post("/api/workflows/validate", content=raw, headers=JSON), 422)


async def test_unknown_fields_are_422(api):
    body = _problem(await api.admin.post("/api/workflows", json={"definition": minimal(), "colour": "red"}), 422)
    assert any("colour" in e for e in body["errors"])
    inner = {"definition": {**minimal(), "colour": "red"}}
    body = _problem(await api.admin.post("/api/workflows", json=inner), 422)
    assert "Unknown workflow field 'colour'" in body["errors"]
    _problem(await api.admin.post("/api/keys", json={"name": "k", "scopes": ["read"], "admin": True}), 422)


@pytest.mark.parametrize("body", [
    {"definition": "not an object"},
    {"definition": minimal(), "tags": "etl"},
    {"definition": minimal(), "tags": [1, 2]},
    {"definition": minimal(), "status": 3},
    {"definition": {"name": 5, "steps": {}}},
    {"definition": {"name": "n", "steps": [{"id": 1, "type": [], "config": "x"}]}},
    [],
    "text",
    None,
])
async def test_wrong_types_are_422(api, body):
    _problem(await api.admin.post("/api/workflows", json=body), 422)


@pytest.mark.parametrize("raw", [
    b'{"definition": {"name": "caf\xe9", "steps": []}}',  # latin-1, not UTF-8
    b"\xff\xfe{\x00}\x00",
    b'{"definition": ',
    b'{"definition": {"name": "a\\u0000b", "steps": []}}',
    b'{"definition": {"name": "\\udc00", "steps": []}}',
    b'{"definition": {"name": "n", "timeout_seconds": NaN, "steps": []}}',
    b'{"definition": {"name": "n", "max_concurrent_runs": 1e999, "steps": []}}',
    b'{"definition": {"name": "n", "max_concurrent_runs": 99999999999999999999999, "steps": []}}',
])
async def test_undecodable_or_unstorable_bodies_are_422(api, raw):
    _problem(await api.admin.post("/api/workflows", content=raw, headers=JSON), 422)


async def test_non_json_content_type_is_422(api):
    r = await api.admin.post("/api/workflows", content=b"name=x", headers={"content-type": "text/plain"})
    _problem(r, 422)


@pytest.mark.parametrize("path", ["/api/workflows/wf_%00", "/api/workflows/nope", "/api/workflows/runs/%00",
                                  "/api/workflows/templates/%ff", "/api/workflows/wf_x/versions/1",
                                  "/api/nothing-here"])
async def test_odd_ids_are_404(api, path):
    _problem(await api.admin.get(path), 404)


async def test_wrong_method_is_405_with_allow(api):
    r = await api.admin.get("/api/workflows/validate")
    _problem(r, 405)
    assert r.headers["allow"] == "POST"
    r = await api.admin.patch("/api/workflows/wf_abc")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "PUT"}


@pytest.mark.parametrize("query", ["limit=abc", "limit=1e3", "offset=99999999999999999999", "tag=" + "x" * 101])
async def test_bad_query_is_422(api, query):
    _problem(await api.admin.get(f"/api/workflows?{query}"), 422)


async def test_bad_idempotency_key_header_is_422(api):
    r = await api.admin.post("/api/workflows", json={"definition": minimal()}, headers={"Idempotency-Key": "k" * 201})
    _problem(r, 422)


async def test_a_nul_that_reaches_a_query_is_422_not_500(api):
    # the safety net in problems.py, for endpoints that pass a raw string to Postgres
    _problem(await api.admin.get("/api/audit/events?stream=%00"), 422)
