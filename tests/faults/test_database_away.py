"""While Postgres is down the gateway answers 503 problem JSON with Retry-After (never a 500, never
a hang), and once it is back the same request, retried with its Idempotency-Key, is applied once."""
import time

import httpx

from tests.faults.harness import FaultCluster
from tests.support.infra import wait_for


def test_gateway_answers_503_while_the_database_is_down(tmp_path):
    with FaultCluster(tmp_path, gateways=1, orchestrators=1, runners=1, schedulers=0) as c:
        url, auth = c.gateway_urls[0], {"Authorization": f"Bearer {c.api_key}"}
        body = {"definition": {"name": "db-away", "steps": [
            {"id": "a", "type": "http_request", "config": {"method": "POST", "url": f"{c.target.url}/a"}}]}}
        headers = {**auth, "Idempotency-Key": "db-away-1"}
        c.stop_postgres_immediate()
        t0 = time.monotonic()
        r = httpx.post(f"{url}/api/workflows", json=body, headers=headers, timeout=60)
        took = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers.get("retry-after") == "1" and r.json()["status"] == 503
        assert took < 30, f"the client was held {took:.1f}s"
        r = httpx.get(f"{url}/readyz", timeout=30)
        assert r.status_code == 503, "not ready without its database"
        c.start_postgres()

        def created():
            r = httpx.post(f"{url}/api/workflows", json=body, headers=headers, timeout=30)
            return r if r.status_code == 201 else None
        first = wait_for(created, timeout=60, interval=0.5, message="the gateway to serve again")
        again = httpx.post(f"{url}/api/workflows", json=body, headers=headers, timeout=30)
        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
        assert c.sql("SELECT count(*) FROM events WHERE type = 'workflow.created'")[0][0] == 1
