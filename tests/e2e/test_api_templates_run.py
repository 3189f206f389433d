"""Every builtin template installs and runs end to end on the whole system (SPEC §7): endpoints
come from input_data and point at a local server; agents are a local fake; the approval gate is
resumed through the API."""
import json

import pytest

from tests.e2e.test_walking_skeleton import wait_run
from tests.support.fake_agent import FakeAgent
from wf_gateway.domain.builtin_templates import builtin_templates


def _inputs(url: str) -> dict:
    return {"url": f"{url}/echo/doc", "alert_url": f"{url}/echo/alert", "source_url": f"{url}/echo/rows",
            "sink_url": f"{url}/echo/sink", "urls": [f"{url}/echo/{i}" for i in range(3)],
            "apply_url": f"{url}/echo/apply", "metrics_url": f"{url}/echo/metrics", "webhook_url": f"{url}/echo/hook",
            "primary_url": f"{url}/echo/primary", "fallback_url": f"{url}/echo/fallback",
            "incident_url": f"{url}/echo/incident", "page_url": f"{url}/echo/page",
            "ticket_url": f"{url}/echo/ticket", "delay_seconds": 0.2}


@pytest.fixture
def agent():
    fake = FakeAgent()
    with fake:
        yield fake


def test_every_builtin_template_runs_to_completion(stack_factory, agent, tmp_path):
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({name: {"kind": "http", "url": f"{agent.url}/agent"}
                                  for name in ("summarizer", "triager")}))
    with stack_factory(orchestrators=1, runners=1, schedulers=0,
                       env={"WORKFLOW_AGENTS_FILE": str(agents)}) as stack:
        c = stack.client
        runs = {}
        for tpl in builtin_templates():
            r = c.post(f"/api/workflows/templates/{tpl['id']}/install", json={"name": f"run {tpl['id']}"})
            assert r.status_code == 201, r.text
            schema = tpl["definition"]["input_schema"]
            inputs = {k: v for k, v in _inputs(agent.url).items() if k in schema["properties"]}
            r = c.post(f"/api/workflows/{r.json()['workflow_id']}/run", json={"input_data": inputs})
            assert r.status_code == 202, r.text
            runs[tpl["id"]] = r.json()["run_id"]
        gate = wait_run(c, runs["tpl_approval_gate"], statuses=("paused", "failed"))
        assert gate["status"] == "paused", gate
        assert c.post(f"/api/workflows/runs/{runs['tpl_approval_gate']}/resume", json={}).status_code == 200
        for tpl_id, run_id in runs.items():
            run = wait_run(c, run_id, timeout=90)
            assert run["status"] == "completed", (tpl_id, run, stack.logs())
