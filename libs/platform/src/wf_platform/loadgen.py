"""Load generator: hold a rate of run submissions for a while, then wait for every run to finish.

Used by `wfctl load` (`make load`) and by the fault scenarios, which drive this workload while they
kill processes. Behaviour (docs/load.md):

- Open loop: submission i is due at t0 + i/rate and is started as its own task, whatever the
  earlier ones are doing (at most `max_in_flight` outstanding; when that many are waiting the
  schedule falls behind and the achieved rate says so; overdue submissions then go out at once).
- Every submission has its own `Idempotency-Key` and is retried with that same key and body on
  connection errors, time-outs, 5xx, 408, 409, 425 and 429 until `submit_retry_seconds` have
  passed since its first attempt, moving to the next base URL each time (replicas may be dead). The
  gateway answers a repeated key with the first run, so a retry never makes a second run. Any other
  4xx is an error at once.
- Runs are followed while submissions go on. Every `poll_interval` (0.2 s) the runs due for a look
  go into a priority queue that `poll_concurrency` workers drain with GETs (trying the next base
  URL when one fails): running runs first, then the head of the queue (queued runs start in
  arrival order, SPEC §5, so only the first `queued_window` plus as many as finished in the last
  second), then runs not seen yet, then, every `cold_interval` (2 s) and a few per tick, the
  other queued and paused runs. A run is never queued twice, so a slow gateway costs no pile-up.
  Latency is first submit attempt -> terminal status observed, so it includes the polling delay;
  `server_latencies` (the run's own created_at -> completed_at) do not.
"""
from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx

TERMINAL = frozenset({"completed", "failed", "cancelled"})
RETRY_STATUSES = frozenset({408, 409, 425, 429})
MAX_SAMPLES = 10


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for an empty list."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}s"


@dataclass
class LoadReport:
    accepted: list[str]          # run ids that got a 2xx from the gateway
    errors: int                  # submissions that never got a 2xx (after retries)
    error_samples: list[str]     # up to 10 short messages
    statuses: dict[str, int]     # final status -> count, for accepted runs
    unfinished: list[str]        # accepted runs not terminal when waiting gave up
    latencies: list[float]       # seconds, first submit attempt -> terminal status observed, per finished run
    submitted_per_s: float       # achieved submission rate
    finished_per_s: float        # finished runs / (first submit -> last finish)
    elapsed: float
    # beyond the contract (all defaulted)
    rate: float = 0.0                       # asked rate
    duration: float = 0.0                   # asked duration
    submitted: int = 0                      # submissions started
    retries: int = 0                        # extra submit attempts (all submissions together)
    retry_reasons: dict[str, int] = field(default_factory=dict)  # what made attempts fail: "HTTP 503", "ConnectError"
    server_latencies: list[float] = field(default_factory=list)  # created_at -> completed_at, per finished run
    submit_latencies: list[float] = field(default_factory=list)  # first attempt -> 2xx (retries included), per accepted run
    polls: int = 0                          # status GETs sent while following the runs
    poll_errors: int = 0                    # status polls that got no answer from any base URL
    poll_error_samples: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items())) or "none"
        lat_max = max(self.latencies) if self.latencies else math.nan
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.retry_reasons.items(), key=lambda kv: -kv[1]))
        lines = [
            f"load: asked {self.rate:g} runs/s for {self.duration:g}s; achieved {self.submitted_per_s:.2f}/s "
            f"({self.submitted} submitted, {self.retries} retries{': ' + reasons if reasons else ''})",
            f"accepted: {len(self.accepted)}  errors: {self.errors}",
            f"statuses: {statuses}",
            f"throughput: {self.finished_per_s:.2f} finished runs/s",
            f"latency (submit -> terminal observed): p50 {_fmt(self.p(50))}  p99 {_fmt(self.p(99))}  "
            f"max {_fmt(lat_max)}",
            f"server-side (created -> completed): p50 {_fmt(percentile(self.server_latencies, 50))}  "
            f"p99 {_fmt(percentile(self.server_latencies, 99))}",
            f"submit (first attempt -> 2xx): p50 {_fmt(percentile(self.submit_latencies, 50))}  "
            f"p99 {_fmt(percentile(self.submit_latencies, 99))}",
            f"unfinished: {len(self.unfinished)}" + (f" (e.g. {', '.join(self.unfinished[:3])})"
                                                       if self.unfinished else ""),
            f"elapsed: {self.elapsed:.1f}s",
        ]
        lines.append(f"status polls: {self.polls}" + (f", {self.poll_errors} without an answer"
                                                       if self.poll_errors else ""))
        for s in self.error_samples:
            lines.append(f"  error: {s}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        lat_max = max(self.latencies) if self.latencies else math.nan
        for name, v in (("p50", self.p(50)), ("p90", self.p(90)), ("p99", self.p(99)), ("max", lat_max),
                        ("server_p50", percentile(self.server_latencies, 50)),
                        ("server_p99", percentile(self.server_latencies, 99)),
                        ("submit_p50", percentile(self.submit_latencies, 50)),
                        ("submit_p99", percentile(self.submit_latencies, 99))):
            d[name] = None if math.isnan(v) else v
        return d


@dataclass
class _Track:
    index: int
    run_id: str
    first_attempt: float
    accepted_at: float = 0.0
    status: str | None = None
    last_checked: float = 0.0
    in_queue: bool = False
    created: float = math.inf  # the run's created_at (POSIX seconds), once seen
    done_at: float | None = None
    server_latency: float | None = None


class _Endpoints:
    """The base URLs, one httpx client each (so a frozen replica only ties up its own connections).

    pick(): among the URLs that did not just fail, the one with the fewest requests outstanding
    (ties in turn); when every URL failed lately, the one whose penalty ends first.
    """

    def __init__(self, urls: list[str], penalty: float = 2.0) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.bad_until = [0.0] * len(self.urls)
        self.outstanding = [0] * len(self.urls)
        self.clients: list[httpx.AsyncClient] = []
        self.penalty = penalty
        self.rr = 0

    def open(self, **client_kw) -> None:
        self.clients = [httpx.AsyncClient(**client_kw) for _ in self.urls]

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()

    def pick(self, avoid: int | None = None) -> int:
        n = len(self.urls)
        now = time.monotonic()
        start = self.rr
        self.rr = (self.rr + 1) % n
        order = [(start + k) % n for k in range(n)]
        healthy = [i for i in order if self.bad_until[i] <= now and i != avoid]
        if healthy:
            return min(healthy, key=lambda i: self.outstanding[i])  # min keeps the first of equals
        others = [i for i in order if i != avoid] or order
        return min(others, key=lambda i: self.bad_until[i])

    async def request(self, i: int, method: str, path: str, **kw) -> httpx.Response:
        self.outstanding[i] += 1
        try:
            return await self.clients[i].request(method, self.urls[i] + path, **kw)
        finally:
            self.outstanding[i] -= 1

    def failed(self, i: int) -> None:
        self.bad_until[i] = time.monotonic() + self.penalty

    def ok(self, i: int) -> None:
        self.bad_until[i] = 0.0


class _Retry(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        text = (body.get("detail") or body.get("title") or str(body)) if isinstance(body, dict) else str(body)
    except ValueError:
        text = resp.text
    return " ".join(str(text).split())[:160]


class LoadGen:
    def __init__(self, base_urls: list[str], api_key: str, workflow_id: str, *, rate: float, duration: float,
                 inputs: Callable[[int], dict] | None = None,
                 max_in_flight: int = 1000,
                 submit_retry_seconds: float = 120.0,
                 finish_timeout: float = 600.0,
                 poll_interval: float = 0.2,
                 poll_concurrency: int = 8,
                 queued_window: int = 10,
                 cold_interval: float = 2.0,
                 request_timeout: float = 10.0,
                 progress: Callable[[str], None] | None = None,
                 progress_every: float = 5.0) -> None:
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        if rate <= 0 or duration < 0:
            raise ValueError("rate must be > 0 and duration >= 0")
        self.base_urls = list(base_urls)
        self.api_key = api_key
        self.workflow_id = workflow_id
        self.rate = float(rate)
        self.duration = float(duration)
        self.inputs = inputs
        self.max_in_flight = max(1, int(max_in_flight))
        self.submit_retry_seconds = float(submit_retry_seconds)
        self.finish_timeout = float(finish_timeout)
        self.poll_interval = float(poll_interval)
        self.poll_concurrency = max(1, int(poll_concurrency))
        self.queued_window = max(1, int(queued_window))
        self.cold_interval = float(cold_interval)
        self.request_timeout = float(request_timeout)
        self.progress = progress
        self.progress_every = progress_every
        self.stop_submitting = asyncio.Event()
        self.run_tag = uuid.uuid4().hex[:12]  # part of every Idempotency-Key of this generator

        self.accepted: list[str] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.submitted = 0
        self.retries = 0
        self.retry_reasons: dict[str, int] = {}
        self.polls = 0
        self.poll_errors = 0
        self.poll_error_samples: list[str] = []
        self._tracks: dict[str, _Track] = {}
        self._open: dict[str, _Track] = {}          # accepted, not terminal yet (acceptance order)
        self._finish_times: deque[float] = deque()  # when runs were seen finished, the last 2 s
        self._endpoints = _Endpoints(self.base_urls)
        self._poll_endpoints = _Endpoints(self.base_urls)
        self._poller: asyncio.Task | None = None
        self._reporter: asyncio.Task | None = None
        self._t0: float | None = None
        self._first_attempt: float | None = None
        self._last_launch: float | None = None
        self._in_flight = 0
        self._slot_freed = asyncio.Event()
        self._submit_started = False
        self._submit_done = asyncio.Event()
        self._closed = False

    # ------------------------------------------------------------------ public

    async def run(self) -> LoadReport:
        await self.submit_only()
        return await self.wait_finished()

    async def submit_only(self) -> None:
        self._start()
        self._submit_started = True
        t0 = self._t0
        n = int(round(self.rate * self.duration))
        tasks: set[asyncio.Task] = set()
        try:
            for i in range(n):
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0 and await _wait_event(self.stop_submitting, delay):
                    break
                if self.stop_submitting.is_set():
                    break
                while self._in_flight >= self.max_in_flight:
                    self._slot_freed.clear()
                    if await _wait_any(self.stop_submitting, self._slot_freed):
                        break
                if self.stop_submitting.is_set():
                    break
                self._in_flight += 1
                self.submitted += 1
                self._last_launch = time.monotonic()
                task = asyncio.create_task(self._submit(i), name=f"loadgen-submit-{i}")
                tasks.add(task)
                task.add_done_callback(self._submission_done(tasks))
            # submissions already started run to their end (they may have created a run already)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._submit_done.set()

    async def wait_finished(self, timeout: float | None = None) -> LoadReport:
        timeout = self.finish_timeout if timeout is None else timeout
        if self._submit_started:
            await self._submit_done.wait()
        if self._t0 is not None and not self._closed:
            deadline = time.monotonic() + timeout
            while self._pending() and time.monotonic() < deadline:
                if self._poller is None or self._poller.done():
                    break
                await asyncio.sleep(0.05)
            await self._close()
        return self._report()

    # ------------------------------------------------------------------ set-up / tear-down

    def _start(self) -> None:
        if self._t0 is not None:
            return
        self._t0 = time.monotonic()
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        conns = min(self.max_in_flight, 256)
        # no pool time-out: a submission waiting for a connection is still one the gateway owes us
        self._endpoints.open(
            headers=headers, timeout=httpx.Timeout(self.request_timeout, connect=5.0, pool=None),
            limits=httpx.Limits(max_connections=conns, max_keepalive_connections=min(conns, 64)))
        self._poll_endpoints.open(
            headers=headers, timeout=httpx.Timeout(min(self.request_timeout, 5.0), connect=3.0, pool=None),
            limits=httpx.Limits(max_connections=self.poll_concurrency,
                                max_keepalive_connections=self.poll_concurrency))
        self._poller = asyncio.create_task(self._poll_loop(), name="loadgen-poller")
        if self.progress is not None:
            self._reporter = asyncio.create_task(self._progress_loop(), name="loadgen-progress")

    async def _close(self) -> None:
        self._closed = True
        for task in (self._poller, self._reporter):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        await self._endpoints.close()
        await self._poll_endpoints.close()

    def _submission_done(self, tasks: set):
        def done(task: asyncio.Task) -> None:
            tasks.discard(task)
            self._in_flight -= 1
            self._slot_freed.set()
            if not task.cancelled() and task.exception() is not None:  # a bug here, not a gateway answer
                self._error(f"submission crashed: {type(task.exception()).__name__}: {task.exception()}")
        return done

    # ------------------------------------------------------------------ submitting

    def _error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_SAMPLES:
            self.error_samples.append(message)

    def _reason(self, name: str) -> None:
        self.retry_reasons[name] = self.retry_reasons.get(name, 0) + 1

    async def _submit(self, i: int) -> None:
        key = f"load-{self.run_tag}-{i}"
        body = {"input_data": self.inputs(i) if self.inputs is not None else {}}
        first = time.monotonic()
        if self._first_attempt is None:
            self._first_attempt = first
        deadline = first + self.submit_retry_seconds
        attempt = 0
        last = "no attempt"
        prev: int | None = None
        while True:
            attempt += 1
            if attempt > 1:
                self.retries += 1
            idx = self._endpoints.pick(avoid=prev)
            prev = idx
            wait_hint: float | None = None
            try:
                resp = await self._endpoints.request(idx, "POST", f"/api/workflows/{self.workflow_id}/run",
                                                     json=body, headers={"Idempotency-Key": key})
                if 200 <= resp.status_code < 300:
                    self._endpoints.ok(idx)
                    self._accepted(i, resp, first)
                    return
                if resp.status_code >= 500 or resp.status_code in RETRY_STATUSES:
                    if resp.status_code >= 500 or resp.status_code == 429:
                        self._endpoints.failed(idx)
                    wait_hint = _retry_after(resp)
                    self._reason(f"HTTP {resp.status_code}")
                    raise _Retry(f"HTTP {resp.status_code}: {_detail(resp)}", wait_hint)
                self._error(f"run {i}: HTTP {resp.status_code} from {self._endpoints.urls[idx]}: {_detail(resp)}")
                return
            except _Retry as exc:
                last = str(exc)
            except httpx.HTTPError as exc:  # connect/read/write errors, time-outs, protocol errors
                self._endpoints.failed(idx)
                self._reason(type(exc).__name__)
                last = f"{type(exc).__name__}: {exc}"[:160] if str(exc) else type(exc).__name__
            now = time.monotonic()
            if now >= deadline:
                self._error(f"run {i}: no 2xx after {attempt} attempts in {now - first:.1f}s; last: {last}")
                return
            backoff = min(1.0, 0.05 * 2 ** min(attempt - 1, 10)) * random.uniform(0.5, 1.0)
            if wait_hint is not None:
                backoff = max(backoff, min(wait_hint, 5.0))
            await asyncio.sleep(min(backoff, max(0.0, deadline - now)))

    def _accepted(self, i: int, resp: httpx.Response, first: float) -> None:
        try:
            run_id = resp.json()["run_id"]
            assert isinstance(run_id, str) and run_id
        except Exception:
            self._error(f"run {i}: HTTP {resp.status_code} without a run_id: {resp.text[:120]}")
            return
        if run_id in self._tracks:
            other = self._tracks[run_id].index
            self._error(f"run {i}: the gateway answered run {run_id}, already given to submission {other} "
                        "(different Idempotency-Keys)")
            return
        self._tracks[run_id] = self._open[run_id] = _Track(index=i, run_id=run_id, first_attempt=first,
                                                                   accepted_at=time.monotonic())
        self.accepted.append(run_id)

    # ------------------------------------------------------------------ following runs

    def _pending(self) -> list[_Track]:
        return list(self._open.values())

    def _choose(self, now: float) -> list[tuple[int, _Track]]:
        """(priority, run) for the runs to look at now; a lower priority is looked at first.

        0: running (or a status this code does not know), every `poll_interval`. 1: the head of the
        queue: queued runs start in arrival order, so only the first `queued_window` plus as many as
        finished in the last second. 2: runs not seen yet (their first look). 3: the other queued
        runs and paused ones, every `cold_interval`, a bounded number per tick.
        """
        while self._finish_times and self._finish_times[0] < now - 2.0:
            self._finish_times.popleft()
        window = self.queued_window + math.ceil(len(self._finish_times) / 2.0)
        due_hot = now - 0.5 * self.poll_interval  # checked before this: due again (ticks are poll_interval apart)
        due_cold = now - self.cold_interval
        out: list[tuple[int, _Track]] = []
        cold: list[_Track] = []
        queued: list[_Track] = []
        for t in self._open.values():
            if t.status == "queued":
                queued.append(t)
            elif t.in_queue:
                continue
            elif t.status is None:
                out.append((2, t))
            elif t.status == "paused":
                if t.last_checked <= due_cold:
                    cold.append(t)
            elif t.last_checked <= due_hot:
                out.append((0, t))
        # the server's arrival order (created_at), known from the first look
        queued.sort(key=lambda t: (t.created, t.index))
        for rank, t in enumerate(queued):
            if t.in_queue:
                continue
            if rank < window:
                if t.last_checked <= due_hot:
                    out.append((1, t))
            elif t.last_checked <= due_cold:
                cold.append(t)
        cold.sort(key=lambda t: t.last_checked)
        out.extend((3, t) for t in cold[: max(self.poll_concurrency * 2, 16)])
        return out

    async def _poll_loop(self) -> None:
        """Every `poll_interval`, queue the runs due for a look; `poll_concurrency` workers GET them,
        most urgent first, so a slow or dead gateway never delays the running runs behind a backlog."""
        queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        workers = [asyncio.create_task(self._poll_worker(queue), name=f"loadgen-poll-{k}")
                   for k in range(self.poll_concurrency)]
        seq = 0
        try:
            while True:
                for prio, t in self._choose(time.monotonic()):
                    seq += 1
                    t.in_queue = True
                    queue.put_nowait((prio, t.last_checked, seq, t))
                await asyncio.sleep(self.poll_interval)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _poll_worker(self, queue: asyncio.PriorityQueue) -> None:
        while True:
            *_, t = await queue.get()
            try:
                if t.done_at is None:
                    await self._check(t)
            except Exception as exc:  # keep following the other runs whatever one answer was
                t.last_checked = time.monotonic()
                self._poll_error(f"{t.run_id}: {type(exc).__name__}: {exc}"[:200])
            finally:
                t.in_queue = False

    def _poll_error(self, message: str) -> None:
        self.poll_errors += 1
        if len(self.poll_error_samples) < MAX_SAMPLES:
            self.poll_error_samples.append(message)

    async def _check(self, t: _Track) -> None:
        n = len(self._poll_endpoints.urls)
        last = ""
        prev: int | None = None
        for _ in range(n):
            idx = self._poll_endpoints.pick(avoid=prev)
            prev = idx
            self.polls += 1
            try:
                resp = await self._poll_endpoints.request(idx, "GET", f"/api/workflows/runs/{t.run_id}")
            except httpx.HTTPError as exc:
                self._poll_endpoints.failed(idx)
                last = type(exc).__name__
                continue
            seen = time.monotonic()
            if resp.status_code == 200:
                self._poll_endpoints.ok(idx)
                try:
                    run = resp.json()["run"]
                    status = run["status"]
                except Exception:
                    self._poll_error(f"{t.run_id}: unexpected answer {resp.text[:100]}")
                    return
                t.status = status
                t.last_checked = seen
                if t.created == math.inf:
                    created = _parse_ts(run.get("created_at"))
                    if created is not None:
                        t.created = created.timestamp()
                if status in TERMINAL and t.done_at is None:
                    t.done_at = seen
                    self._open.pop(t.run_id, None)
                    self._finish_times.append(seen)
                    a, b = _parse_ts(run.get("created_at")), _parse_ts(run.get("completed_at"))
                    if a is not None and b is not None:
                        t.server_latency = (b - a).total_seconds()
                return
            if resp.status_code >= 500 or resp.status_code == 429:
                self._poll_endpoints.failed(idx)
                last = f"HTTP {resp.status_code}"
                continue
            t.last_checked = seen
            self._poll_error(f"{t.run_id}: HTTP {resp.status_code}: {_detail(resp)}")
            return
        t.last_checked = time.monotonic()
        self._poll_error(f"{t.run_id}: no gateway answered ({last})")

    async def _progress_loop(self) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(self.progress_every)
            pending = self._pending()
            by: dict[str, int] = {}
            for t in pending:
                by[t.status or "unseen"] = by.get(t.status or "unseen", 0) + 1
            done = len(self._tracks) - len(pending)
            states = " ".join(f"{k}={v}" for k, v in sorted(by.items()))
            self.progress(f"t={time.monotonic() - self._t0:.0f}s submitted={self.submitted} "
                          f"accepted={len(self.accepted)} errors={self.errors} in_flight={self._in_flight} "
                          f"finished={done} unfinished={len(pending)} {states}".rstrip())

    # ------------------------------------------------------------------ report

    def _report(self) -> LoadReport:
        now = time.monotonic()
        statuses: dict[str, int] = {}
        latencies, server, unfinished, submit = [], [], [], []
        last_done: float | None = None
        for run_id in self.accepted:
            t = self._tracks[run_id]
            submit.append(t.accepted_at - t.first_attempt)
            if t.done_at is None:
                unfinished.append(run_id)
                continue
            statuses[t.status] = statuses.get(t.status, 0) + 1
            latencies.append(t.done_at - t.first_attempt)
            if t.server_latency is not None:
                server.append(t.server_latency)
            last_done = t.done_at if last_done is None else max(last_done, t.done_at)
        t0 = self._t0 if self._t0 is not None else now
        if self.submitted and self._last_launch is not None:
            window = self._last_launch - t0 + 1.0 / self.rate
            submitted_per_s = self.submitted / window if window > 0 else 0.0
        else:
            submitted_per_s = 0.0
        finished = len(latencies)
        if finished and last_done is not None and self._first_attempt is not None:
            span = last_done - self._first_attempt
            finished_per_s = finished / span if span > 0 else float(finished)
        else:
            finished_per_s = 0.0
        return LoadReport(
            accepted=list(self.accepted), errors=self.errors, error_samples=list(self.error_samples),
            statuses=statuses, unfinished=unfinished, latencies=latencies, submitted_per_s=submitted_per_s,
            finished_per_s=finished_per_s, elapsed=now - t0, rate=self.rate, duration=self.duration,
            submitted=self.submitted, retries=self.retries, retry_reasons=dict(self.retry_reasons),
            server_latencies=server, submit_latencies=submit,
            polls=self.polls, poll_errors=self.poll_errors, poll_error_samples=list(self.poll_error_samples))


# ---------------------------------------------------------------------- helpers

def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True when `event` got set within `timeout` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return event.is_set()


async def _wait_any(*events: asyncio.Event) -> bool:
    """Wait until one of `events` is set; True when the first one (the stop event) is set."""
    tasks = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return events[0].is_set()
