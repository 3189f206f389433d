"""`wf-step-runner` as a real process on a real NATS: SIGTERM finishes the step in flight, then exits."""
import signal
import time
import urllib.request

import pytest

from tests.integration.test_runner_worker import Bus
from tests.support.infra import ServiceProcess, async_wait_for, nats_for_tests
from tests.unit.test_runner_execute import dispatch
from wf_platform.embedded import free_port


@pytest.fixture
async def nats(tmp_path):
    with nats_for_tests(tmp_path / "nats") as server:
        yield server


def inflight(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("wf_inflight_messages "):
                return float(line.split()[1])
    return 0.0


async def test_sigterm_finishes_the_step_in_flight_within_the_grace_period(nats, tmp_path):
    port = free_port()
    runner = ServiceProcess("wf-step-runner", {"NATS_URL": nats.url, "OPS_PORT": str(port),
                                               "RUNNER_DRAIN_SECONDS": "20", "LOG_LEVEL": "INFO"},
                            tmp_path / "logs", name="runner")
    with runner:
        runner.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=30)
        async with Bus(nats.url) as b:
            await b.publish(dispatch("script", {"language": "shell", "code": "sleep 2; echo '{\"done\": true}'"},
                                     run_id="run_term", step_id="slow"))
            await async_wait_for(lambda: inflight(port) == 1.0, timeout=10, message="the step to be in flight")
            t0 = time.monotonic()
            runner.proc.send_signal(signal.SIGTERM)
            res = await b.result("slow", timeout=15)
            assert res.ok and res.output["result"] == {"done": True}, runner.log_tail()
            await async_wait_for(lambda: not runner.running, timeout=15, message="the runner to exit")
            assert runner.returncode == 0 and time.monotonic() - t0 < 15, runner.log_tail()
            info = await b.consumer()
            assert info.num_ack_pending == 0 and info.num_redelivered == 0
        assert "draining 1 in-flight steps" in runner.log_text()
