"""Fixtures for the API integration tests: the gateway's ASGI app, in process, on a fresh real
Postgres database and the session's real NATS (nothing mocked); clients per tenant and scope.

Other test_api_* modules import these fixtures by name.
"""
import httpx
import pytest

from wf_gateway.app import create_app
from wf_gateway.settings import GatewaySettings
from wf_platform.settings import CommonSettings

ADMIN_KEY = "wf-it-admin-key"


def minimal(name: str = "wf", url: str = "https://example.com/x", steps: int = 1) -> dict:
    chain = []
    for i in range(steps):
        s = {"id": f"s{i}", "type": "http_request", "config": {"url": f"{url}/{i}"}}
        if i:
            s["depends_on"] = [f"s{i - 1}"]
        chain.append(s)
    return {"name": name, "steps": chain}


class Api:
    """The in-process gateway plus a way to mint clients for any tenant and scopes."""

    def __init__(self, app, dsn: str) -> None:
        self.app, self.dsn = app, dsn
        self.clients: list[httpx.AsyncClient] = []
        self.admin = self.client(ADMIN_KEY)

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gw", headers=headers,
                              timeout=30)
        self.clients.append(c)
        return c

    async def key(self, tenant: str = "default", scopes=("read", "write"), name: str = "k") -> httpx.AsyncClient:
        r = await self.admin.post("/api/keys", json={"name": name, "scopes": list(scopes), "tenant": tenant})
        assert r.status_code == 201, r.text
        c = self.client(r.json()["secret"])
        c.key_id = r.json()["id"]
        return c


@pytest.fixture
async def api(migrated_db, nats_server):
    common = CommonSettings(database_url=migrated_db, nats_url=nats_server.url, ops_host="127.0.0.1", ops_port=0,
                            log_level="WARNING", instance="it-gateway", relay=False, db_pool_max=10)
    app = create_app(GatewaySettings(common, "127.0.0.1", 0, ADMIN_KEY, 1024 * 1024))
    async with app.router.lifespan_context(app):
        a = Api(app, migrated_db)
        try:
            yield a
        finally:
            for c in a.clients:
                await c.aclose()
