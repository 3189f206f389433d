"""Schedules over HTTP against a running gateway (issue 7, SPEC §7)."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import httpx

WF = {"definition": {"name": "nightly", "steps": [
    {"id": "a", "type": "http_request", "config": {"url": "https://example.com"}}]}}


def _t(s: str) -> datetime:
    assert s.endswith("Z"), s
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and {"type", "title", "detail"} <= set(body)
    return body


def test_create_list_get_patch_delete(stack_factory):
    with stack_factory(orchestrators=0, runners=0, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=WF).json()["id"]
        r = c.post(f"/api/workflows/{wf}/schedules", json={
            "cron_expression": "0 9 * * 1-5", "timezone": "America/New_York", "input_data": {"dataset": "daily"}})
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"schedule_id"} and r.json()["schedule_id"].startswith("sched_")
        sid = r.json()["schedule_id"]

        listed = c.get(f"/api/workflows/{wf}/schedules").json()
        assert listed["total"] == 1
        s = listed["schedules"][0]
        assert set(s) >= {"id", "workflow_id", "cron_expression", "timezone", "input_data", "enabled", "next_run_at",
                          "last_run_at", "created_at", "overlap", "catchup"}
        assert (s["id"], s["workflow_id"], s["enabled"], s["last_run_at"]) == (sid, wf, True, None)
        assert (s["overlap"], s["catchup"], s["input_data"]) == ("allow", "latest", {"dataset": "daily"})
        nxt = _t(s["next_run_at"]).astimezone(ZoneInfo("America/New_York"))
        assert (nxt.hour, nxt.minute) == (9, 0) and nxt.weekday() < 5
        assert _t(s["next_run_at"]) > datetime.now(timezone.utc) and _t(s["created_at"])
        assert c.get(f"/api/workflows/schedules/{sid}").json() == s

        # disable: nothing is next; enable: counted again from now
        r = c.patch(f"/api/workflows/schedules/{sid}", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["next_run_at"] is None
        r = c.patch(f"/api/workflows/schedules/{sid}", json={"enabled": True})
        assert r.json()["next_run_at"] == s["next_run_at"]
        # new cron and zone: a new next_run_at; a new input alone keeps it
        r = c.patch(f"/api/workflows/schedules/{sid}", json={"cron_expression": "30 2 * * *",
                                                             "timezone": "Europe/Berlin"}).json()
        berlin = _t(r["next_run_at"]).astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute) == (2, 30) and r["timezone"] == "Europe/Berlin"
        r2 = c.patch(f"/api/workflows/schedules/{sid}", json={"input_data": {"x": 1}, "overlap": "buffer_one",
                                                              "catchup": "none"}).json()
        assert r2["next_run_at"] == r["next_run_at"] and r2["input_data"] == {"x": 1}
        assert (r2["overlap"], r2["catchup"]) == ("buffer_one", "none")

        assert c.delete(f"/api/workflows/schedules/{sid}").status_code == 204
        _problem(c.get(f"/api/workflows/schedules/{sid}"), 404)
        _problem(c.delete(f"/api/workflows/schedules/{sid}"), 404)
        assert c.get(f"/api/workflows/{wf}/schedules").json() == {"schedules": [], "total": 0}

        # a workflow's deletion takes its schedules along (SPEC §3)
        sid = c.post(f"/api/workflows/{wf}/schedules", json={"cron_expression": "* * * * *"}).json()["schedule_id"]
        assert c.get(f"/api/workflows/schedules/{sid}").json()["timezone"] == "UTC"
        assert c.delete(f"/api/workflows/{wf}").status_code == 204
        _problem(c.get(f"/api/workflows/schedules/{sid}"), 404)
        _problem(c.get(f"/api/workflows/{wf}/schedules"), 404)


def test_invalid_cron_or_zone_is_a_422_with_the_reason(stack_factory):
    with stack_factory(orchestrators=0, runners=0, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=WF).json()["id"]
        url = f"/api/workflows/{wf}/schedules"
        body = _problem(c.post(url, json={"cron_expression": "61 * * * *"}), 422)
        assert "invalid cron expression '61 * * * *'" in body["detail"]
        body = _problem(c.post(url, json={"cron_expression": "* * *"}), 422)
        assert "five fields" in body["detail"]
        body = _problem(c.post(url, json={"cron_expression": "* * * * *", "timezone": "Mars/Olympus"}), 422)
        assert "unknown time zone 'Mars/Olympus'" in body["detail"] and body["errors"]
        body = _problem(c.post(url, json={"cron_expression": "bad", "timezone": "Nowhere"}), 422)
        assert len(body["errors"]) == 2, "every problem at once"
        assert "never fires" in _problem(c.post(url, json={"cron_expression": "0 0 30 2 *"}), 422)["detail"]
        _problem(c.post(url, json={"cron_expression": "* * * * *", "overlap": "sometimes"}), 422)
        _problem(c.post(url, json={"cron_expression": "* * * * *", "catchup": "maybe"}), 422)
        _problem(c.post(url, json={"cron_expression": "* * * * *", "surprise": 1}), 422)
        _problem(c.post(url, json={}), 422)
        _problem(c.get(url, params={"limit": 201}), 422)
        assert c.get(url).json()["total"] == 0, "nothing was created by a bad request"

        sid = c.post(url, json={"cron_expression": "*/5 * * * *"}).json()["schedule_id"]
        before = c.get(f"/api/workflows/schedules/{sid}").json()
        body = _problem(c.patch(f"/api/workflows/schedules/{sid}", json={"timezone": "Not/AZone"}), 422)
        assert "unknown time zone" in body["detail"]
        _problem(c.patch(f"/api/workflows/schedules/{sid}", json={"cron_expression": "nope"}), 422)
        _problem(c.patch(f"/api/workflows/schedules/{sid}", json={"enabled": "often"}), 422)
        assert c.get(f"/api/workflows/schedules/{sid}").json() == before

        # unknown or malformed ids: 404
        _problem(c.get("/api/workflows/wf_doesnotexist/schedules"), 404)
        _problem(c.post("/api/workflows/wf_doesnotexist/schedules", json={"cron_expression": "* * * * *"}), 404)
        for bad in ("sched_doesnotexist", "nonsense", "sched_%00"):
            assert c.get(f"/api/workflows/schedules/{bad}").status_code == 404
            assert c.patch(f"/api/workflows/schedules/{bad}", json={"enabled": False}).status_code == 404
            assert c.delete(f"/api/workflows/schedules/{bad}").status_code == 404


def test_idempotency_key_on_create(stack_factory):
    with stack_factory(orchestrators=0, runners=0, schedulers=0) as stack:
        c = stack.client
        wf = c.post("/api/workflows", json=WF).json()["id"]
        url = f"/api/workflows/{wf}/schedules"
        body = {"cron_expression": "0 * * * *", "input_data": {"n": 1}}
        first = c.post(url, json=body, headers={"Idempotency-Key": "k-1"})
        again = c.post(url, json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 201 and first.json() == again.json()
        _problem(c.post(url, json={**body, "input_data": {"n": 2}}, headers={"Idempotency-Key": "k-1"}), 409)
        assert c.get(url).json()["total"] == 1


def test_tenants_and_scopes(stack_factory):
    with stack_factory(orchestrators=0, runners=0, schedulers=0) as stack:
        c = stack.client

        def key(tenant: str, scopes: list[str]) -> httpx.Client:
            r = c.post("/api/keys", json={"name": f"{tenant}-{'-'.join(scopes)}", "scopes": scopes, "tenant": tenant})
            assert r.status_code == 201, r.text
            return httpx.Client(base_url=stack.url, timeout=10, headers={"Authorization": f"Bearer {r.json()['secret']}"})

        wf = c.post("/api/workflows", json=WF).json()["id"]
        sid = c.post(f"/api/workflows/{wf}/schedules", json={"cron_expression": "* * * * *"}).json()["schedule_id"]
        with key("acme", ["read", "write"]) as other, key("default", ["read"]) as reader:
            _problem(other.get(f"/api/workflows/{wf}/schedules"), 404)
            _problem(other.post(f"/api/workflows/{wf}/schedules", json={"cron_expression": "* * * * *"}), 404)
            _problem(other.get(f"/api/workflows/schedules/{sid}"), 404)
            _problem(other.patch(f"/api/workflows/schedules/{sid}", json={"enabled": False}), 404)
            _problem(other.delete(f"/api/workflows/schedules/{sid}"), 404)
            own = other.post("/api/workflows", json=WF).json()["id"]
            assert other.post(f"/api/workflows/{own}/schedules", json={"cron_expression": "* * * * *"}).status_code == 201
            assert other.get(f"/api/workflows/{own}/schedules").json()["total"] == 1

            assert reader.get(f"/api/workflows/{wf}/schedules").json()["total"] == 1
            assert reader.get(f"/api/workflows/schedules/{sid}").status_code == 200
            _problem(reader.post(f"/api/workflows/{wf}/schedules", json={"cron_expression": "* * * * *"}), 403)
            _problem(reader.patch(f"/api/workflows/schedules/{sid}", json={"enabled": False}), 403)
            _problem(reader.delete(f"/api/workflows/schedules/{sid}"), 403)
        assert c.get(f"/api/workflows/schedules/{sid}").json()["enabled"] is True
        _problem(httpx.get(f"{stack.url}/api/workflows/{wf}/schedules"), 401)
