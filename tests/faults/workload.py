"""The steady workload of the fault scenarios, and a driver that runs it in the background.

`steady_definition(target_url, pace_ms)` is one workflow that touches every kind of work:

    fetch (http POST, 2*pace) -> check (condition) -> compute (shell script: {"items": [1,2,3]})
                                                  `-> never (http, skipped: branch not taken)
    compute -> nap (wait 1 s) -> each (loop over compute's items, 2 at a time, http POST pace each)
    [each, never] -> done (http POST, pace; trigger_rule none_failed, so the skipped branch joins)

Per completed run the Target sees exactly `HTTP_STEPS_PER_RUN` (5) distinct Idempotency-Keys
(fetch, each[0..2], done), all POSTs. `pace_ms` sets how long each call takes at the Target
(`/sleep/<ms>/...`), hence how long a run lasts (about 5 * pace + 1 s + overheads) and how many
runs are in flight at a given submission rate (Little: in flight = rate x duration). Every step
that calls out has `retry` (5 attempts, 0.5 s backoff) and a 60 s timeout: a step whose runner is
killed once or twice is redelivered (same attempt) well inside the orchestrator's attempt deadline
(timeout + 5 s), and an attempt that still misses it is retried rather than failing the run;
retries are counted by the invariants report.

`Load` runs `wf_platform.loadgen.LoadGen` in a thread with its own asyncio loop, so the test
thread stays free to inject faults (it polls run status every 3 s rather than 0.2 s: with 200
runs in flight the polling would otherwise be a good part of the box's CPU):

    load = Load(cluster, wf_id, rate=10, duration=30).start()
    ... faults ...
    load.wait_submitted(); report = load.join()      # LoadReport: accepted, unfinished, statuses

`setup_workload(cluster, pace_ms)` creates the workflow (and, with `schedule=True`, a workflow
with a `* * * * *` schedule so the schedulers have fires to make; `quiesce_schedules` disables it
before the invariants are checked).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

from wf_platform.loadgen import LoadGen, LoadReport

HTTP_STEPS_PER_RUN = 5
RETRY = {"max_attempts": 5, "backoff_seconds": 0.5, "backoff_multiplier": 2}
STEP_TIMEOUT = 60   # per attempt; the orchestrator's attempt deadline is this + 5 s


def steady_definition(target_url: str, pace_ms: int = 1000, name: str = "faults-steady") -> dict:
    def call(step_id: str, path: str, ms: int, **extra) -> dict:
        return {"id": step_id, "type": "http_request", "timeout_seconds": STEP_TIMEOUT, "retry": RETRY, **extra,
                "config": {"method": "POST", "url": f"{target_url}/sleep/{ms}/{path}",
                           "json": {"run": "{{ run.id }}", "n": "{{ input.n }}"}}}

    return {
        "name": name,
        "description": "fault harness steady workload: http, condition, script, wait, loop, join",
        "max_concurrent_runs": 1000,
        "steps": [
            call("fetch", "fetch", 2 * pace_ms),
            {"id": "check", "type": "condition", "depends_on": ["fetch"],
             "config": {"expression": "steps.fetch.output.status_code == 200",
                        "then": ["compute"], "else": ["never"]}},
            {"id": "compute", "type": "script", "depends_on": ["check"], "timeout_seconds": STEP_TIMEOUT,
             "retry": RETRY, "config": {"language": "shell", "code": "echo '{\"items\": [1, 2, 3]}'"}},
            call("never", "never", 0, depends_on=["check"]),
            {"id": "nap", "type": "wait", "depends_on": ["compute"], "config": {"duration_seconds": 1}},
            {"id": "each", "type": "loop", "depends_on": ["nap"], "timeout_seconds": STEP_TIMEOUT, "retry": RETRY,
             "config": {"items": "{{ steps.compute.output.result.items }}", "max_concurrency": 2,
                        "step": {"type": "http_request", "config": {
                            "method": "POST", "url": target_url + f"/sleep/{pace_ms}/item/{{{{ item }}}}",
                            "json": {"run": "{{ run.id }}", "item": "{{ item }}"}}}}},
            call("done", "done", pace_ms, depends_on=["each", "never"], trigger_rule="none_failed"),
        ],
    }


def tick_definition(name: str = "faults-tick") -> dict:
    """The scheduled workflow: one cheap shell step."""
    return {"name": name, "steps": [{"id": "tick", "type": "script",
                                     "config": {"language": "shell", "code": "echo '{\"tick\": true}'"}}]}


@dataclass
class Workload:
    workflow_id: str
    pace_ms: int
    tick_workflow_id: str | None = None
    schedule_id: str | None = None
    extra: dict = field(default_factory=dict)


def setup_workload(cluster, pace_ms: int = 1000, schedule: bool = False) -> Workload:
    api = cluster.api
    r = api.post("/api/workflows", json={"definition": steady_definition(cluster.target.url, pace_ms)})
    assert r.status_code == 201, r.text
    w = Workload(r.json()["id"], pace_ms)
    if schedule:
        r = api.post("/api/workflows", json={"definition": tick_definition()})
        assert r.status_code == 201, r.text
        w.tick_workflow_id = r.json()["id"]
        r = api.post(f"/api/workflows/{w.tick_workflow_id}/schedules",
                     json={"cron_expression": "* * * * *", "timezone": "UTC"})
        assert r.status_code == 201, r.text
        w.schedule_id = r.json()["schedule_id"]
    return w


def quiesce_schedules(cluster, workload: Workload) -> None:
    """Disable the workload's schedule so no new run appears while invariants are checked."""
    if workload.schedule_id:
        r = cluster.api.patch(f"/api/workflows/schedules/{workload.schedule_id}", json={"enabled": False})
        assert r.status_code == 200, r.text


class Load:
    """A LoadGen in a background thread (its own event loop). Thread-safe views: `accepted`
    (run ids so far), `submitted_event` (set when submitting ended); `stop_submitting()` ends
    the submission phase early; `join()` waits for the report (all accepted runs terminal, or
    `finish_timeout`)."""

    def __init__(self, cluster, workflow_id: str, *, rate: float, duration: float,
                 finish_timeout: float = 600.0, submit_retry_seconds: float = 120.0,
                 max_in_flight: int = 1000, poll_interval: float = 3.0, inputs=None) -> None:
        self.gen = LoadGen(cluster.gateway_urls, cluster.api_key, workflow_id, rate=rate, duration=duration,
                           inputs=inputs or (lambda i: {"n": i}), max_in_flight=max_in_flight,
                           submit_retry_seconds=submit_retry_seconds, finish_timeout=finish_timeout,
                           poll_interval=poll_interval, poll_concurrency=4)
        self.submitted_event = threading.Event()
        self.report: LoadReport | None = None
        self.error: BaseException | None = None
        self.started_at = 0.0
        self.submit_ended_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="fault-load", daemon=True)

    def start(self) -> "Load":
        self.started_at = time.time()
        self._thread.start()
        return self

    @property
    def accepted(self) -> list[str]:
        return list(self.gen.accepted)

    def _main(self) -> None:
        async def go() -> LoadReport:
            self._loop = asyncio.get_running_loop()
            try:
                await self.gen.submit_only()
            finally:
                self.submit_ended_at = time.time()
                self.submitted_event.set()
            return await self.gen.wait_finished()

        try:
            self.report = asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
            self.submitted_event.set()

    def stop_submitting(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):   # the loop just ended: nothing left to stop
                self._loop.call_soon_threadsafe(self.gen.stop_submitting.set)

    def wait_submitted(self, timeout: float = 600.0) -> None:
        assert self.submitted_event.wait(timeout), "the load generator did not finish submitting"

    def join(self, timeout: float = 900.0) -> LoadReport:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load generator did not finish"
        if self.error is not None:
            raise AssertionError(f"load generator crashed: {self.error!r}") from self.error
        assert self.report is not None
        return self.report
