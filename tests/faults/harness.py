"""Fault-injection harness: a whole deployment as separate processes on loopback, plus faults on demand.

`FaultCluster` owns everything it starts (nothing comes from the session fixtures, because the
scenarios kill and restart Postgres and NATS):

- its own Postgres (`wf_platform.embedded.start_postgres`) and NATS with JetStream on file storage
  and `sync_interval: always` (`start_nats(..., sync_always=True)`), on free ports below the
  ephemeral range (`pick_port`, so nothing else can take them while they are down), data under
  the test's tmp dir, so both can be restarted on the same port and store;
- `FaultTarget`, the local HTTP server that http_request steps call: it counts every
  `Idempotency-Key`, records each request's headers, arrival and answer times and the sending
  runner's pid (parsed from `User-Agent: wf-step-runner/step-runner-<host>-<pid>-<hex>`);
- 2 gateways, 2 orchestrators, 3 step-runners and 2 schedulers (counts overridable), started
  through `tests.support.stack.Stack` / `ServiceProcess` (one log file each under `<tmp>/logs`).

Usage::

    with FaultCluster(tmp_path, runners=3, role_env={"runner": {"RUNNER_ACK_WAIT_SECONDS": "6"}}) as c:
        c.supervise()                      # dead service processes come back after 0.5-1 s
        ...drive load against c.gateway_urls with c.api_key...
        c.kill("runner")                   # SIGKILL a random runner (its whole process group)
        c.kill_nats(); c.start_nats()      # SIGKILL nats-server, start it on the same port/store
        c.stop_postgres_immediate(); c.start_postgres()
        c.sigstop(p); ...; c.sigcont(p)    # freeze/thaw a replica (its process group)
        c.api.get("/api/workflows/runs/...")   # fails over between gateways, retries 5xx

Every injected fault is a `Fault` in `c.faults` (kind, role, name, pid, time, in_flight, until);
processes that died without being killed by the harness are recorded as kind "died" (and listed
by `c.unexpected_deaths()`), restarts by the supervisor as kind "restart". `c.outages` lists the
(start, end) windows of Postgres/NATS downtime.

On exit everything is stopped, even on failure (stopped processes are SIGCONTed first); when the
block raised an AssertionError the service log tails are appended to its message. Logs stay in
`<tmp>/logs`, Postgres' data in `<tmp>/pg`, and `dump()` writes `<tmp>/target-requests.jsonl` and
`<tmp>/faults.jsonl` (pytest keeps the last three basetemps; `make test-faults` keeps its temp dir
on failure).

Environment for every service: `WORKFLOW_EGRESS_ALLOW=127.0.0.1,localhost`, a bootstrap admin
key (`API_KEY`), `WORKFLOW_MAX_CONCURRENT_RUNS=200`, `RUNNER_ACK_WAIT_SECONDS=6` (a killed or
frozen runner's steps come back after 6 s instead of 30; shorter makes busy-but-alive runners on
this 2-core box miss their in-progress acks and run steps twice), `RUNNER_DRAIN_SECONDS=2`,
`RUNNER_CONCURRENCY=128`; override with `env=` (all roles) and `role_env={"runner": {...}}`
(one role).

A scenario (test_kill_services.py is the shortest complete one)::

    p = FULL if full_scale() else CI              # WF_FAULTS_SCALE=full: make test-faults
    with FaultCluster(tmp_path) as c:
        c.supervise()
        w = setup_workload(c, p["pace_ms"], schedule=True)                  # workload.py
        load = Load(c, w.workflow_id, rate=p["rate"], duration=p["duration"]).start()
        c.wait_sql("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')",
                   lambda n: n >= p["in_flight"])
        ...inject faults...
        rep = load.join(); quiesce_schedules(c, w)
        report = check_invariants(c, rep.accepted, scenario="name", load_report=rep)  # invariants.py
        report.emit(); report.assert_ok()

Sizing on the shared 2-core box: the steady workload at pace 4000 ms lasts ~21 s per run, so 9-9.5
runs/s keep ~200 in flight (full scale) without saturating the machine; CI scale is 60 runs at
10/s, pace 1000 ms (about 25-35 s per scenario including start-up and checks).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
import psycopg

from tests.support.infra import ServiceProcess, wait_for
from tests.support.stack import API_KEY, Stack
from tests.support.target import Target
from wf_platform import embedded

ROLES = ("gateway", "orchestrator", "runner", "scheduler")

DEFAULT_ENV = {
    "WORKFLOW_EGRESS_ALLOW": "127.0.0.1,localhost",
    "WORKFLOW_MAX_CONCURRENT_RUNS": "200",
    "RUNNER_ACK_WAIT_SECONDS": "6",
    "RUNNER_DRAIN_SECONDS": "2",
    "RUNNER_CONCURRENCY": "128",
    "LOG_LEVEL": "INFO",
}


# --------------------------------------------------------------------------- scale

def full_scale() -> bool:
    """`WF_FAULTS_SCALE=full` (set by `make test-faults`): the long version of every scenario."""
    return os.environ.get("WF_FAULTS_SCALE", "").strip().lower() == "full"


# --------------------------------------------------------------------------- ports

_taken: set[int] = set()


def pick_port() -> int:
    """A free port BELOW the kernel's ephemeral range. `embedded.free_port()` hands out ephemeral
    ports, and between a kill and a restart such a port can become the local port of any outgoing
    connection on the box (other test sessions included), so the restart on the same port fails
    with EADDRINUSE; ports outside the range are only ever taken by listeners."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low - 1, 12000)
    for _ in range(2000):
        port = random.randint(10000, top)
        if port not in _taken and embedded.port_is_free(port):
            _taken.add(port)
            return port
    return embedded.free_port()


# --------------------------------------------------------------------------- target

_UA = re.compile(r"wf-step-runner/(?P<instance>.*-(?P<pid>\d+)-[0-9a-f]{6})$")


def runner_pid_of(user_agent: str | None) -> int | None:
    """The pid in `wf-step-runner/step-runner-<hostname>-<pid>-<6 hex>`, else None."""
    m = _UA.match(user_agent or "")
    return int(m.group("pid")) if m else None


class FaultTarget(Target):
    """`tests.support.target.Target` (same attributes: keys, requests, release, url) whose request
    records also carry `t_in` / `t_out` (time.time() at arrival / after answering, None if the
    answer could not be written), `key`, `user_agent` and `runner_pid`.

    Paths: `/sleep/<ms>/...` answers after <ms> (or when `release` is set), `/status/<code>/...`
    answers that status, anything else 200 with a JSON body echoing the path.
    """

    def __init__(self) -> None:
        super().__init__()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                t_in = time.time()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                key = self.headers.get("idempotency-key")
                ua = self.headers.get("user-agent")
                rec = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                       "body": body.decode(errors="replace"), "key": key, "user_agent": ua,
                       "runner_pid": runner_pid_of(ua), "t_in": t_in, "t_out": None}
                with target.lock:
                    if key:
                        target.keys[key] += 1
                    target.requests.append(rec)
                parts = self.path.split("/")
                status = 200
                if self.path.startswith("/status/"):
                    status = int(parts[2])
                if self.path.startswith("/sleep/"):
                    target.release.wait(timeout=int(parts[2]) / 1000)
                out = json.dumps({"ok": status < 400, "path": self.path, "method": self.command}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                self.wfile.flush()
                rec["t_out"] = time.time()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.server.RequestHandlerClass = Handler
        # socketserver listens with a backlog of 5: a burst of new connections (a restarted runner
        # taking a batch of redelivered steps) overflows it and the kernel resets the late ones
        # after ~6 s of SYN-ACK retries, which the runner reports as a network error
        self.server.socket.listen(4096)
        # a runner killed mid-call leaves a broken pipe behind: that is the test, not an error
        self.server.handle_error = lambda request, client_address: None

    def requests_by_key(self) -> dict[str, list[dict]]:
        with self.lock:
            out: dict[str, list[dict]] = {}
            for r in self.requests:
                if r["key"]:
                    out.setdefault(r["key"], []).append(r)
        for reqs in out.values():
            reqs.sort(key=lambda r: r["t_in"])
        return out

    def repeated_keys(self) -> dict[str, list[dict]]:
        return {k: v for k, v in self.requests_by_key().items() if len(v) > 1}


# --------------------------------------------------------------------------- API client

class ApiClient:
    """An httpx client over every gateway: a transport error or a 5xx moves on to the next
    gateway and is retried until `retry_seconds` have passed (then the last answer is returned
    or the last error raised). Methods: get/post/put/patch/delete(path, **httpx kwargs)."""

    def __init__(self, urls: list[str], api_key: str, retry_seconds: float = 60.0, timeout: float = 15.0):
        self.urls = list(urls)
        self.retry_seconds = retry_seconds
        self.http = httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        self._next = 0

    def request(self, method: str, path: str, *, retry_seconds: float | None = None, **kw) -> httpx.Response:
        end = time.monotonic() + (self.retry_seconds if retry_seconds is None else retry_seconds)
        last: httpx.Response | None = None
        while True:
            url = self.urls[self._next % len(self.urls)]
            try:
                resp = self.http.request(method, url + path, **kw)
                if resp.status_code < 500:
                    return resp
                last = resp
            except httpx.HTTPError:
                if time.monotonic() >= end:
                    raise
            self._next += 1
            if time.monotonic() >= end:
                assert last is not None
                return last
            time.sleep(0.1)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self.http.close()


# --------------------------------------------------------------------------- the cluster

@dataclass
class Fault:
    """One thing that happened to a process. kind: kill | sigstop | restart | died | nats_kill |
    nats_start | pg_stop | pg_start. `time` is time.time(); `until` closes a window (sigstop →
    the SIGCONT time); `in_flight` = runs queued or running in Postgres at that moment (None when
    Postgres could not be asked)."""

    kind: str
    role: str
    name: str
    pid: int | None
    time: float
    in_flight: int | None = None
    until: float | None = None
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)


class FaultCluster:
    def __init__(self, tmp: Path | str, *, gateways: int = 2, orchestrators: int = 2, runners: int = 3,
                 schedulers: int = 2, env: dict[str, str] | None = None,
                 role_env: dict[str, dict[str, str]] | None = None, ready_deadline: float = 120.0):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.counts = {"gateway": gateways, "orchestrator": orchestrators, "runner": runners,
                       "scheduler": schedulers}
        self.env = {**DEFAULT_ENV, **(env or {})}
        self.role_env = role_env or {}
        self.ready_deadline = ready_deadline
        self.api_key = API_KEY
        self.target = FaultTarget()
        self.pg: embedded.PostgresServer | None = None
        self.nats: embedded.NatsServer | None = None
        self.stack: Stack | None = None
        self.api: ApiClient | None = None
        self.faults: list[Fault] = []
        self.outages: list[dict] = []          # {"what": "nats"|"postgres", "start": t, "end": t|None}
        self.started_at = 0.0
        self._lock = threading.RLock()
        self._expected_down: dict[int, float] = {}   # id(proc) -> when the harness killed it
        self._seen_down: dict[int, float] = {}       # id(proc) -> when the supervisor first saw it down
        self._stopped: set[int] = set()              # id(proc) of SIGSTOPped processes
        self._supervisor: threading.Thread | None = None
        self._supervise_stop = threading.Event()
        self._target_started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FaultCluster":
        self.started_at = time.time()
        self.target.__enter__()
        self._target_started = True
        self.pg = embedded.start_postgres(self.tmp / "pg", pick_port())
        self.nats = embedded.start_nats(self.tmp / "nats", pick_port(), sync_always=True)
        self.stack = Stack(self.tmp, self.pg.dsn, self.nats.url, env=self.env, **{
            "gateways": self.counts["gateway"], "orchestrators": self.counts["orchestrator"],
            "runners": self.counts["runner"], "schedulers": self.counts["scheduler"]})
        for p in self.processes():
            self._move_port(p)
        for role, overrides in self.role_env.items():
            for p in self.stack.role(role):
                p.env.update(overrides)
        for p in self.processes():
            p.start()
        for p in self.processes():
            for attempt in range(3):
                try:
                    p.wait_ready(self.stack.ready_url(p), deadline=self.ready_deadline)
                    break
                except AssertionError:
                    # someone else's listener took the port in the meantime: another one, again
                    if attempt == 2 or "address already in use" not in p.log_tail(20):
                        raise
                    p.kill()
                    self._move_port(p)
                    p.start()
        self.api = ApiClient(self.gateway_urls, self.api_key)
        return self

    def _move_port(self, proc: ServiceProcess) -> None:
        """Give `proc` a listening port from pick_port() (Stack picked an ephemeral one)."""
        port = pick_port()
        items = self.stack.procs[self.role_of(proc)]
        i = next(i for i, (p, _) in enumerate(items) if p is proc)
        if "GATEWAY_PORT" in proc.env and self.role_of(proc) == "gateway":
            old = int(proc.env["GATEWAY_PORT"])
            proc.env["GATEWAY_PORT"] = str(port)
            self.stack.gateway_ports[self.stack.gateway_ports.index(old)] = port
            if self.stack.gateway_port == old:
                self.stack.gateway_port, self.stack.url = port, f"http://127.0.0.1:{port}"
        else:
            proc.env["OPS_PORT"] = str(port)
        items[i] = (proc, f"http://127.0.0.1:{port}/readyz")

    def stop(self) -> None:
        """Stop everything (never raises): supervisor, SIGCONT frozen ones, services (SIGTERM in
        parallel, SIGKILL after 15 s), target, NATS, Postgres."""
        self.unsupervise()
        procs = self.processes() if self.stack else []
        for p in procs:
            with contextlib.suppress(Exception):
                if p.running:
                    os.killpg(p.proc.pid, signal.SIGCONT)
        for p in procs:
            with contextlib.suppress(Exception):
                if p.running:
                    p.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 15
        for p in procs:
            with contextlib.suppress(Exception):
                p.terminate(timeout=max(0.1, end - time.monotonic()))
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.stack.client.close()
        if self._target_started:
            with contextlib.suppress(Exception):
                self.target.__exit__(None, None, None)
            self._target_started = False
        with contextlib.suppress(Exception):
            self.dump()
        if self.nats is not None:
            with contextlib.suppress(Exception):
                self.nats.stop()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()

    def __enter__(self) -> "FaultCluster":
        try:
            return self.start()
        except BaseException as exc:
            logs = self.logs()
            self.stop()
            if isinstance(exc, AssertionError):
                raise AssertionError(f"{exc}\n\n{logs}") from exc
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        logs = self.logs() if exc is not None else ""
        self.stop()
        if isinstance(exc, AssertionError):
            raise AssertionError(f"{exc}\n\n===== service logs ({self.tmp / 'logs'}) =====\n{logs}") from exc

    # ------------------------------------------------------------------ addresses
    @property
    def dsn(self) -> str:
        return self.pg.dsn

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.stack.gateway_ports]

    # ------------------------------------------------------------------ processes
    def processes(self, role: str | None = None) -> list[ServiceProcess]:
        if self.stack is None:
            return []
        roles = [role] if role else list(self.stack.procs)
        return [p for r in roles for p in self.stack.role(r)]

    def role_of(self, proc: ServiceProcess) -> str:
        return proc.name.rsplit("-", 1)[0]

    def ready_url(self, proc: ServiceProcess) -> str:
        return self.stack.ready_url(proc)

    def wait_ready(self, procs: Iterable[ServiceProcess] | None = None, deadline: float | None = None) -> None:
        """Every given (default: every) process answers /readyz (it reconnected to Postgres and NATS)."""
        for p in list(procs) if procs is not None else self.processes():
            p.wait_ready(self.ready_url(p), deadline=deadline or self.ready_deadline)

    def in_flight(self) -> int | None:
        """Runs queued or running now, from the runs projection; None if Postgres does not answer."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SET statement_timeout = 2000")
                return conn.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]
        except Exception:  # noqa: BLE001 - Postgres down is a normal moment here
            return None

    def pick(self, role: str, index: int | None = None) -> ServiceProcess:
        procs = self.processes(role)
        if not procs:
            raise ValueError(f"no {role} processes")
        if index is not None:
            return procs[index]
        alive = [p for p in procs if p.running and id(p) not in self._stopped]
        return random.choice(alive or procs)

    def kill(self, role: str, index: int | None = None) -> Fault:
        """SIGKILL a random (or the `index`-th) running replica of `role` and its process group."""
        proc = self.pick(role, index)
        in_flight = self.in_flight()
        with self._lock:
            pid = proc.pid
            t = time.time()
            proc.kill()
            self._stopped.discard(id(proc))
            self._expected_down[id(proc)] = t
            fault = Fault("kill", role, proc.name, pid, t, in_flight)
            self.faults.append(fault)
        return fault

    def restart(self, proc: ServiceProcess, wait_ready: bool = True) -> ServiceProcess:
        """Start a dead process again (same port, env and log file); wait for /readyz."""
        with self._lock:
            if not proc.running:
                proc.start()
                self.faults.append(Fault("restart", self.role_of(proc), proc.name, proc.pid, time.time()))
            self._expected_down.pop(id(proc), None)
            self._seen_down.pop(id(proc), None)
        if wait_ready:
            proc.wait_ready(self.ready_url(proc), deadline=self.ready_deadline)
        return proc

    def sigstop(self, proc: ServiceProcess) -> Fault:
        """Freeze a replica (SIGSTOP to its process group): to the others it looks dead, but it
        keeps its connections and leases and goes on where it was after `sigcont`."""
        in_flight = self.in_flight()
        with self._lock:
            os.killpg(proc.proc.pid, signal.SIGSTOP)
            self._stopped.add(id(proc))
            fault = Fault("sigstop", self.role_of(proc), proc.name, proc.pid, time.time(), in_flight)
            self.faults.append(fault)
        return fault

    def sigcont(self, proc: ServiceProcess) -> Fault | None:
        with self._lock:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.proc.pid, signal.SIGCONT)
            self._stopped.discard(id(proc))
            for f in reversed(self.faults):
                if f.kind == "sigstop" and f.name == proc.name and f.until is None:
                    f.until = time.time()
                    return f
        return None

    # ------------------------------------------------------------------ supervisor
    def supervise(self, delay: tuple[float, float] = (0.5, 1.0), interval: float = 0.1) -> "FaultCluster":
        """Start a background thread that restarts any service process found dead, `delay`
        seconds (uniform) after it was found so; each restart is a Fault(kind="restart"), and a
        death the harness did not cause is first recorded as Fault(kind="died")."""
        if self._supervisor is not None:
            return self
        self._supervise_stop.clear()

        def loop() -> None:
            wait: dict[int, float] = {}
            while not self._supervise_stop.wait(interval):
                now = time.monotonic()
                for p in self.processes():
                    with self._lock:
                        if p.running:
                            wait.pop(id(p), None)
                            continue
                        if id(p) not in wait:
                            wait[id(p)] = now + random.uniform(*delay)
                            if id(p) not in self._expected_down:
                                self.faults.append(Fault("died", self.role_of(p), p.name, None, time.time(),
                                                         detail=f"exit code {p.returncode}; log tail:\n"
                                                                f"{p.log_tail(15)}"))
                                self._expected_down[id(p)] = time.time()
                            continue
                        if now < wait[id(p)]:
                            continue
                        try:
                            p.start()
                        except Exception as exc:  # noqa: BLE001 - try again next round
                            self.faults.append(Fault("restart", self.role_of(p), p.name, None, time.time(),
                                                     detail=f"failed: {exc!r}"))
                            wait[id(p)] = now + 1.0
                            continue
                        wait.pop(id(p), None)
                        self._expected_down.pop(id(p), None)
                        self.faults.append(Fault("restart", self.role_of(p), p.name, p.pid, time.time()))

        self._supervisor = threading.Thread(target=loop, name="fault-supervisor", daemon=True)
        self._supervisor.start()
        return self

    def unsupervise(self) -> None:
        if self._supervisor is None:
            return
        self._supervise_stop.set()
        self._supervisor.join(timeout=10)
        self._supervisor = None

    def unexpected_deaths(self) -> list[Fault]:
        return [f for f in self.faults if f.kind == "died"]

    def kills(self, role: str | None = None) -> list[Fault]:
        return [f for f in self.faults if f.kind == "kill" and (role is None or f.role == role)]

    # ------------------------------------------------------------------ NATS and Postgres
    def kill_nats(self) -> Fault:
        """SIGKILL nats-server (no flush: `sync_interval: always` is what keeps the store whole)."""
        in_flight = self.in_flight()
        pid = self.nats.pid
        self.nats.kill()
        f = Fault("nats_kill", "nats", "nats-server", pid, time.time(), in_flight)
        self.faults.append(f)
        self.outages.append({"what": "nats", "start": f.time, "end": None})
        return f

    def start_nats(self) -> Fault:
        """Start nats-server again on the same port and store; returns once JetStream answers."""
        self.nats.start()
        f = Fault("nats_start", "nats", "nats-server", self.nats.pid, time.time())
        self.faults.append(f)
        self._close_outage("nats", f.time)
        return f

    def stop_postgres_immediate(self) -> Fault:
        """`pg_ctl stop -m immediate` (SIGQUIT): no checkpoint; the next start does crash recovery."""
        in_flight = self.in_flight()
        pid = self.pg.pid
        self.pg.stop_immediate()
        f = Fault("pg_stop", "postgres", "postgres", pid, time.time(), in_flight)
        self.faults.append(f)
        self.outages.append({"what": "postgres", "start": f.time, "end": None})
        return f

    def start_postgres(self) -> Fault:
        """Start Postgres again on the same port and data dir; returns once it accepts connections."""
        self.pg.start(deadline=120)
        f = Fault("pg_start", "postgres", "postgres", self.pg.pid, time.time())
        self.faults.append(f)
        self._close_outage("postgres", f.time)
        return f

    def _close_outage(self, what: str, t: float) -> None:
        for o in reversed(self.outages):
            if o["what"] == what and o["end"] is None:
                o["end"] = t
                return

    # ------------------------------------------------------------------ inspection
    def sql(self, query: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def wait_sql(self, query: str, predicate: Callable[[Any], bool], timeout: float = 120,
                 message: str | None = None) -> Any:
        """Poll `query` (first column of the first row) until `predicate(value)`; Postgres errors
        (down, restarting) count as "not yet"."""
        def check():
            value = self.sql(query)[0][0]
            return (value,) if predicate(value) else None

        return wait_for(check, timeout=timeout, interval=0.2, message=message or query)[0]

    def watch_log(self, seconds: float, interval: float = 0.25) -> float:
        """Wait `seconds` while polling the log head; return the longest time (s) it did not move,
        i.e. how long appends were stalled (a moment Postgres does not answer counts as stalled)."""
        end = time.monotonic() + seconds
        last_seq, since, longest = None, time.monotonic(), 0.0
        conn = None
        try:
            while True:
                now = time.monotonic()
                seq = last_seq
                try:
                    if conn is None:
                        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                    seq = conn.execute("SELECT seq FROM log_head").fetchone()[0]
                except Exception:  # noqa: BLE001 - down or restarting: not moving
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                if seq != last_seq:
                    last_seq, since = seq, now
                longest = max(longest, now - since)
                if now >= end:
                    return round(longest, 2)
                time.sleep(min(interval, end - now))
        finally:
            if conn is not None:
                conn.close()

    def logs(self, lines: int = 40) -> str:
        parts = []
        for p in self.processes():
            parts.append(f"--- {p.name} (pid {p.pid}, starts {p.starts}, {p.log_path})\n{p.log_tail(lines)}")
        for name, server in (("postgres", self.pg), ("nats", self.nats)):
            if server is not None:
                tail = "\n".join(server.log_text().splitlines()[-15:])
                parts.append(f"--- {name} ({server.log_path})\n{tail}")
        if self.faults:
            parts.append("--- faults\n" + "\n".join(
                f"{f.kind} {f.name} pid={f.pid} t=+{f.time - self.started_at:.1f}s"
                + (f" until=+{f.until - self.started_at:.1f}s" if f.until else "")
                + (f" in_flight={f.in_flight}" if f.in_flight is not None else "")
                + (f" {f.detail}" if f.detail else "") for f in self.faults))
        return "\n".join(parts)

    def dump(self) -> None:
        """For a post-mortem: `<tmp>/target-requests.jsonl` (every request the Target saw, without
        bodies) and `<tmp>/faults.jsonl` (every Fault). Called by stop(); Postgres' data dir
        (`<tmp>/pg`) and the service logs (`<tmp>/logs`) stay too."""
        with self.target.lock:
            reqs = list(self.target.requests)
        with open(self.tmp / "target-requests.jsonl", "w") as f:
            for r in reqs:
                f.write(json.dumps({k: v for k, v in r.items() if k != "body"}) + "\n")
        with open(self.tmp / "faults.jsonl", "w") as f:
            for fault in self.faults:
                f.write(json.dumps(fault.to_json()) + "\n")

    def log_counts(self, pattern: str) -> Counter:
        """How many lines of each service log match `pattern` (a regex), by process name."""
        rx = re.compile(pattern)
        return Counter({p.name: sum(1 for line in p.log_text().splitlines() if rx.search(line))
                        for p in self.processes()})
