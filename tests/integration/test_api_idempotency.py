"""Idempotency-Key on creating POSTs (SPEC §1): a repeat returns the first answer and creates
nothing; the same key with another body is a 409; racing repeats create one resource."""
import asyncio

import psycopg

from tests.integration.test_api_helpers import api, minimal  # noqa: F401 (fixture)


def _events(dsn: str, type_: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM events WHERE type = %s", (type_,)).fetchone()[0]


async def test_repeat_returns_the_first_answer_and_other_body_is_409(api):
    c = api.admin
    body = {"definition": minimal(), "tags": ["a"]}
    h = {"Idempotency-Key": "create-1"}
    first = await c.post("/api/workflows", json=body, headers=h)
    again = await c.post("/api/workflows", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert _events(api.dsn, "workflow.created") == 1
    other = await c.post("/api/workflows", json={**body, "tags": ["b"]}, headers=h)
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert (await c.post("/api/workflows", json=body, headers={"Idempotency-Key": "create-2"})).status_code == 201
    assert _events(api.dsn, "workflow.created") == 2


async def test_every_creating_post_honours_the_key(api):
    c = api.admin
    h = {"Idempotency-Key": "same-key-different-endpoints"}
    wf = (await c.post("/api/workflows", json={"definition": minimal()}, headers=h)).json()["id"]
    runs = [await c.post(f"/api/workflows/{wf}/run", json={"input_data": {"n": 1}}, headers=h) for _ in range(2)]
    assert runs[0].status_code == runs[1].status_code == 202 and runs[0].json() == runs[1].json()
    tpl = [await c.post("/api/workflows/templates", json={"name": "t", "definition": minimal()}, headers=h)
           for _ in range(2)]
    assert tpl[0].json()["id"] == tpl[1].json()["id"]
    inst = [await c.post("/api/workflows/templates/tpl_fan_out/install", json={"name": "n"}, headers=h)
            for _ in range(2)]
    assert inst[0].status_code == 201 and inst[0].json() == inst[1].json()
    keys = [await c.post("/api/keys", json={"name": "k", "scopes": ["read"]}, headers=h) for _ in range(2)]
    assert keys[0].json()["id"] == keys[1].json()["id"]
    assert keys[0].json()["secret"] and keys[1].json()["secret"] is None, "only a hash was kept"
    assert (_events(api.dsn, "run.created"), _events(api.dsn, "template.added"),
            _events(api.dsn, "key.created")) == (1, 1, 2)  # bootstrap key + one
    assert _events(api.dsn, "workflow.created") == 2  # one created, one installed


async def test_racing_repeats_create_one_resource(api):
    c = api.admin
    body = {"definition": minimal(name="race")}
    answers = await asyncio.gather(*[c.post("/api/workflows", json=body, headers={"Idempotency-Key": "race"})
                                     for _ in range(8)])
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert _events(api.dsn, "workflow.created") == 1


async def test_key_is_forgotten_after_24_hours(api):
    c = api.admin
    h = {"Idempotency-Key": "old"}
    first = (await c.post("/api/workflows", json={"definition": minimal()}, headers=h)).json()["id"]
    with psycopg.connect(api.dsn) as conn:
        conn.execute("UPDATE idempotency SET created_at = created_at - interval '25 hours'")
    second = await c.post("/api/workflows", json={"definition": minimal(name="new")}, headers=h)
    assert second.status_code == 201 and second.json()["id"] != first
