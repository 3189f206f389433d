"""Failures end to end: retries with backoff, on_error continue / pause + resume from_step, time-outs."""
import threading
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.test_orchestration_dag import create, event_types, get, http, start, steps_of, ts, wait_status


class Flaky:
    """/fail/<n>/<name> answers 503 to the first n requests for that path, then 200."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.keys: list[str] = []
        lock = threading.Lock()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with lock:
                    flaky.seen[self.path] += 1
                    n = flaky.seen[self.path]
                    flaky.keys.append(self.headers.get("idempotency-key", ""))
                fails = int(self.path.split("/")[2]) if self.path.startswith("/fail/") else 0
                status = 503 if n <= fails else 200
                body = b'{"n": %d}' % n
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Flaky":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky():
    with Flaky() as f:
        yield f


def test_retry_backoff_on_error_and_resume_from_step(stack_factory, flaky, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=0) as stack:
        c = stack.client
        # succeeds on the 3rd attempt, backoff 0.3 s then 0.6 s (x 0.8-1.2 jitter)
        retry = {"max_attempts": 3, "backoff_seconds": 0.3, "backoff_multiplier": 2}
        wf = create(c, [http("call", flaky.url + "/fail/2/a", retry=retry)])
        run = wait_status(c, start(c, wf))
        assert run["status"] == "completed", stack.logs()
        step = steps_of(run)["call"]
        assert step["attempt"] == 3 and step["output"]["body"] == {"n": 3}
        assert flaky.keys == [f"{run['id']}:call:{i}" for i in (1, 2, 3)]
        types = event_types(stack, run["id"])
        assert types.count("step.retrying") == 2 and types.count("step.dispatched") == 3
        assert ts(step["completed_at"]) - ts(step["started_at"]) >= timedelta(seconds=0.7)

        # on_error continue: the run goes on, dependents follow their trigger rule
        wf = create(c, [
            http("bad", target.url + "/status/500", on_error="continue"),
            http("strict", target.url + "/strict", ["bad"]),
            http("after", target.url + "/after", ["bad"], trigger_rule="all_done"),
        ])
        run = wait_status(c, start(c, wf))
        s = steps_of(run)
        assert run["status"] == "completed"
        assert [s[k]["status"] for k in ("bad", "strict", "after")] == ["failed", "skipped", "completed"]

        # on_error pause, then resume from an upstream step: it and everything downstream run again
        def pausing(name: str) -> str:
            return create(c, [
                http("first", target.url + "/first"),
                http("shaky", flaky.url + f"/fail/1/{name}", ["first"], on_error="pause"),
                http("last", target.url + "/last", ["shaky"]),
            ])

        run_id = start(c, pausing("b"))
        run = wait_status(c, run_id, ("paused",))
        assert [steps_of(run)[k]["status"] for k in ("first", "shaky", "last")] == ["completed", "failed", "pending"]
        r = c.post(f"/api/workflows/runs/{run_id}/cancel")  # a paused run can be cancelled too
        assert r.status_code == 200 and r.json()["run"]["status"] == "cancelled"
        run_id = start(c, pausing("c"))
        wait_status(c, run_id, ("paused",))
        assert c.post(f"/api/workflows/runs/{run_id}/resume", json={"from_step": "nope"}).status_code == 422
        r = c.post(f"/api/workflows/runs/{run_id}/resume", json={"from_step": "first"})
        assert r.status_code in (200, 202), r.text
        run = wait_status(c, run_id)
        s = steps_of(run)
        assert run["status"] == "completed", stack.logs()
        assert (s["first"]["attempt"], s["shaky"]["attempt"], s["last"]["attempt"]) == (2, 2, 1)
        assert c.post(f"/api/workflows/runs/{run_id}/resume").status_code == 409  # not paused any more
        assert c.post(f"/api/workflows/runs/{run_id}/cancel").status_code == 409  # finished


def test_attempt_and_run_timeouts(stack_factory, target):
    with stack_factory(orchestrators=2, runners=1, schedulers=0) as stack:
        c = stack.client
        # the runner enforces the attempt's time-out; a retry follows, then the step fails
        wf = create(c, [http("slow", target.url + "/sleep/3000", timeout_seconds=0.5,
                             retry={"max_attempts": 2, "backoff_seconds": 0.1})])
        run = wait_status(c, start(c, wf))
        step = steps_of(run)["slow"]
        assert run["status"] == "failed" and step["attempt"] == 2
        assert "timed out" in step["error"]
        # the whole run's deadline
        wf = create(c, [{"id": "w", "type": "wait", "config": {"duration_seconds": 30}}], timeout_seconds=1)
        run = wait_status(c, start(c, wf))
        assert run["status"] == "failed" and run["error"] == "run timed out after 1s"
        assert steps_of(run)["w"]["status"] == "cancelled"
        assert 1.0 <= run["duration_seconds"] < 2.0
        assert get(c, run["id"])["status"] == "failed"
