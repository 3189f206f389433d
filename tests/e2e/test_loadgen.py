"""The load generator (`wfctl load`, wf_platform.loadgen) against the real services as processes."""
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

from wf_platform.cli import DEFAULT_LOAD_WORKFLOW
from wf_platform.embedded import free_port
from wf_platform.loadgen import LoadGen, LoadReport, percentile

from tests.support.infra import async_wait_for
from tests.support.stack import API_KEY

VENV_BIN = Path(sys.executable).parent


def _workflow(stack) -> str:
    r = stack.client.post("/api/workflows", json={"definition": DEFAULT_LOAD_WORKFLOW, "tags": ["loadgen"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _runs_total(stack, wf_id: str, url: str | None = None) -> int:
    r = stack.client.get(f"{url or stack.url}/api/workflows/{wf_id}/runs", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_percentiles_and_report_without_services():
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(i) for i in range(101)], 99) == 99.0
    rep = LoadReport(accepted=[], errors=0, error_samples=[], statuses={}, unfinished=[], latencies=[],
                     submitted_per_s=0.0, finished_per_s=0.0, elapsed=0.0)
    assert math.isnan(rep.p(50))
    assert "p50 n/a" in rep.summary()
    assert json.loads(json.dumps(rep.to_json()))["p99"] is None


async def test_holds_rate_and_every_run_completes(stack_factory):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        wf = _workflow(stack)
        gen = LoadGen([stack.url], API_KEY, wf, rate=10, duration=3, inputs=lambda i: {"i": i},
                      finish_timeout=120)
        rep = await gen.run()
        assert rep.errors == 0, rep.error_samples
        assert len(rep.accepted) == 30 and len(set(rep.accepted)) == 30
        assert rep.unfinished == [], stack.logs()
        assert rep.statuses == {"completed": 30}, rep.summary()
        assert len(rep.latencies) == 30
        # each run takes a script process and a 50 ms durable wait: not instant, far from a minute
        assert all(0.05 < x < 60 for x in rep.latencies), rep.latencies
        assert len(rep.server_latencies) == 30 and all(0 < x < 60 for x in rep.server_latencies)
        assert 0 < rep.p(50) <= rep.p(99) <= max(rep.latencies)
        assert rep.submitted == 30 and 6.0 < rep.submitted_per_s <= 10.5, rep.submitted_per_s
        assert rep.finished_per_s > 0 and rep.elapsed >= 2.9
        text = rep.summary()
        assert "p50" in text and "p99" in text and "errors: 0" in text and "completed=30" in text
        # the gateway made exactly one run per submission, and each carries its own input
        assert _runs_total(stack, wf) == 30
        run = stack.client.get(f"/api/workflows/runs/{rep.accepted[0]}").json()["run"]
        assert run["input_data"].keys() == {"i"} and run["status"] == "completed"
        assert [s["status"] for s in run["step_runs"]] == ["completed", "completed", "completed"]


async def test_dead_base_url_is_failed_over_and_4xx_is_an_error_without_retry(stack_factory):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        wf = _workflow(stack)
        gen = LoadGen([dead, stack.url], API_KEY, wf, rate=10, duration=2, finish_timeout=120)
        rep = await gen.run()
        assert rep.errors == 0, rep.error_samples
        assert len(rep.accepted) == 20 and rep.unfinished == []
        assert rep.statuses == {"completed": 20}
        assert _runs_total(stack, wf) == 20  # retries with the same key made no extra run

        # an unknown workflow is a 404: counted at once, never retried, a sample kept
        gone = LoadGen([stack.url], API_KEY, "wf_doesnotexist000000", rate=20, duration=0.5,
                       submit_retry_seconds=30)
        rep = await gone.run()
        assert rep.errors == 10 and rep.accepted == [] and rep.retries == 0
        assert len(rep.error_samples) == 10 and "HTTP 404" in rep.error_samples[0]

        # stop_submitting ends the submit phase early
        early = LoadGen([stack.url], API_KEY, wf, rate=10, duration=60, finish_timeout=120)
        early.stop_submitting.set()
        rep = await early.run()
        assert rep.submitted == 0 and rep.accepted == [] and rep.errors == 0


async def test_gateway_replicas_killed_and_frozen_mid_load(stack_factory):
    """Three gateways: one is SIGKILLed for good and one SIGSTOPped for 3 s while runs are submitted.
    Submissions and polls move to the live replica; retries reuse their Idempotency-Key, so every
    submission makes exactly one run. (A gateway frozen inside an append holds the log's head lock,
    so every replica may stall until it is resumed: the pause is bounded, the retry budget is not hit.)"""
    with stack_factory(orchestrators=1, runners=1, schedulers=0, gateways=3) as stack:
        wf = _workflow(stack)
        urls = [f"http://127.0.0.1:{p}" for p in stack.gateway_ports]
        gen = LoadGen(urls, API_KEY, wf, rate=10, duration=5, request_timeout=2, finish_timeout=120)
        task = asyncio.create_task(gen.run())
        killed, frozen = stack.role("gateway")[0], stack.role("gateway")[1]
        stopped = False
        try:
            await async_wait_for(lambda: len(gen.accepted) >= 10, timeout=60, message="10 accepted runs")
            await asyncio.to_thread(killed.kill)
            os.kill(frozen.pid, signal.SIGSTOP)
            stopped = True
            await async_wait_for(lambda: len(gen.accepted) >= 25 or gen.retries >= 5, timeout=60,
                                 message="submissions going on while a replica is frozen")
            await asyncio.sleep(3)  # the length of the freeze, not a wait for a condition
            os.kill(frozen.pid, signal.SIGCONT)
            stopped = False
            rep = await asyncio.wait_for(task, timeout=300)
        finally:
            if stopped and frozen.running:
                os.kill(frozen.pid, signal.SIGCONT)
            if not task.done():
                gen.stop_submitting.set()
                await asyncio.wait_for(task, timeout=300)
        print(rep.summary())
        assert rep.errors == 0, (rep.error_samples, rep.summary())
        assert len(rep.accepted) == 50 and len(set(rep.accepted)) == 50
        assert rep.statuses == {"completed": 50} and rep.unfinished == [], rep.summary()
        assert rep.retries > 0 and rep.retry_reasons, rep.summary()
        assert _runs_total(stack, wf, url=urls[2]) == 50


def test_cli_end_to_end_with_json(stack_factory, tmp_path):
    with stack_factory(orchestrators=1, runners=1, schedulers=0) as stack:
        out = tmp_path / "load.json"
        env = {k: v for k, v in os.environ.items()
               if k not in ("WORKFLOW_API_KEY", "WORKFLOW_BOOTSTRAP_API_KEY", "WF_DEV_DATA_DIR")}
        res = subprocess.run(
            [str(VENV_BIN / "wfctl"), "load", "--url", stack.url, "--api-key", API_KEY, "--rate", "5",
             "--duration", "2", "--input", '{"who": "cli"}', "--json", str(out)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr + stack.logs()
        assert "p50" in res.stdout and "p99" in res.stdout and "errors: 0" in res.stdout
        data = json.loads(out.read_text())
        assert data["workflow_id"].startswith("wf_") and data["errors"] == 0
        assert len(data["accepted"]) == 10 and data["statuses"] == {"completed": 10}
        assert data["unfinished"] == [] and data["p50"] > 0 and data["p99"] >= data["p50"]
        run = stack.client.get(f"/api/workflows/runs/{data['accepted'][0]}").json()["run"]
        assert run["input_data"] == {"who": "cli"}

        # no key anywhere (no flag, no variable, no .data/dev-api-key in the working directory): exit 2
        res = subprocess.run([str(VENV_BIN / "wfctl"), "load", "--url", stack.url, "--rate", "1", "--duration", "1"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and "API key" in res.stderr
