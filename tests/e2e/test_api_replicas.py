"""Two gateway processes on one database: a key revoked through one is refused by the other on
the very next request (each request looks its key up in Postgres; there is no cache to expire),
and what one replica writes the other reads at once (projections commit with the events)."""
import httpx

from wf_platform.embedded import free_port


def test_revocation_holds_at_once_on_a_second_replica(stack_factory):
    stack = stack_factory(orchestrators=0, runners=0, schedulers=0)
    port = free_port()
    stack.add("gateway", "wf-gateway", {"GATEWAY_PORT": str(port)}, f"http://127.0.0.1:{port}/readyz")
    with stack:
        first = stack.client
        r = first.post("/api/keys", json={"name": "short-lived", "scopes": ["read", "write"], "tenant": "acme"})
        assert r.status_code == 201, r.text
        key_id, secret = r.json()["id"], r.json()["secret"]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": f"Bearer {secret}"}) as second:
            created = second.post("/api/workflows", json={"definition": {"name": "w", "steps": [
                {"id": "a", "type": "http_request", "config": {"url": "https://example.com"}}]}})
            assert created.status_code == 201, created.text
            assert second.get(f"/api/workflows/{created.json()['id']}").status_code == 200
            assert first.delete(f"/api/keys/{key_id}").status_code == 204
            r = second.get("/api/workflows")
            assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
            assert second.post("/api/workflows", json={"definition": {}}).status_code == 401
