"""What must hold after any fault, checked from Postgres, the API and the Target.

`check_invariants(cluster, accepted_run_ids, allowed_duplicate_key=..., scenario=...)` first waits
for the system to settle (every accepted run terminal, then every run in the `runs` table, then
the log head still for a moment), then runs each check and returns a `Report`:

  runs_finished    (a) every accepted run is terminal, with `expect_status` (default completed),
                       both in the `runs` projection and through the API (GET, any gateway); no
                       concurrency slot left held (`run_schedule.phase <> 'done'`)
  results_once     (b) at most one step.completed/step.failed per (run, step_id, attempt) (loop
                       iterations have their own ids, `each[0]`), one step.dispatched per
                       (run, step_id, attempt), one terminal run event per run
  effects_once     (c) an Idempotency-Key seen more than once at the Target is allowed only when
                       `allowed_duplicate_key(key, requests_for_key)` says so (default:
                       `default_duplicate_rule(cluster)`), and every completed http_request step
                       attempt's key reached the Target (no effect lost)
  versions_gapless (d) every stream's versions are exactly 1..n; global seq is 1..max
  chain_verifies   (e) wf_platform.audit.verify_log over the whole log
  rebuild_equal    (f) wf_platform.rebuild.rebuild(dsn) finds no difference with the live projections
  nothing_lost     (g) every run id that got a 2xx exists (runs table and its event stream)
  fires_once       (h) each (schedule, fire time) fired at most once
  no_crash         (i) no service process exited without being killed by the harness (the
                       supervisor restarts such a process, but it is a finding: services must ride
                       out a broker or database restart by themselves); `tolerate_deaths=True`
                       turns this off

Besides the checks the report carries numbers (`report.info`): accepted/unfinished runs, faults
by kind and role, runs in flight at each fault, recovery times (fault -> first run completing
after it; last fault -> every accepted run terminal; outage end -> first completion), step
retries, repeated keys allowed, lost runs. `report.emit()` prints one summary line (see it with
`pytest -s`), then every check and `report.notes` (findings that fail no check), and, when
`WF_FAULTS_RESULTS` names a file, appends the whole report as a JSON line to it.
`report.assert_ok()` raises with every failed check's details.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import psycopg

from tests.support.infra import wait_for

TERMINAL = ("completed", "failed", "cancelled")
RUN_TERMINAL_EVENTS = ("run.completed", "run.failed", "run.cancelled")
MAX_PROBLEMS = 12


@dataclass
class Check:
    name: str
    ok: bool
    numbers: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        nums = " ".join(f"{k}={v}" for k, v in self.numbers.items())
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {nums}"


@dataclass
class Report:
    scenario: str
    checks: list[Check] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # findings that are not failed checks, printed too

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def summary(self) -> str:
        i = self.info
        failed = [c.name for c in self.checks if not c.ok]
        rec = i.get("recovery", {})
        parts = [
            f"[faults] {self.scenario}: {'OK' if self.ok else 'FAILED ' + ','.join(failed)}",
            f"accepted={i.get('accepted')}",
            f"completed={i.get('statuses', {}).get('completed', 0)}",
            f"in_flight_at_faults(max)={i.get('in_flight_max')}",
            f"faults={i.get('faults_total')} {i.get('faults_by_kind')}",
            f"first_completion_after_fault(max)={_s(rec.get('first_completion_after_fault_max'))}",
            f"all_terminal_after_last_fault={_s(rec.get('all_terminal_after_last_fault'))}",
        ]
        if rec.get("outage_end_to_first_completion"):
            parts.append(f"outage_end_to_first_completion={[_s(x) for x in rec['outage_end_to_first_completion']]}")
        parts += [f"retries={i.get('step_retries')}", f"repeated_keys={i.get('repeated_keys')}",
                  f"lost={i.get('lost')}", f"took={_s(i.get('elapsed'))}"]
        return " ".join(parts)

    def details(self) -> str:
        lines = [c.line() for c in self.checks] + [f"NOTE {n}" for n in self.notes]
        for c in self.checks:
            if not c.ok:
                lines.append(f"  {c.name} problems:")
                lines += [f"    - {p}" for p in c.problems[:MAX_PROBLEMS]]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"scenario": self.scenario, "ok": self.ok, "when": datetime.now().isoformat(timespec="seconds"),
                "scale": os.environ.get("WF_FAULTS_SCALE", "ci"), "info": self.info, "notes": self.notes,
                "checks": [{"name": c.name, "ok": c.ok, "numbers": c.numbers, "problems": c.problems[:MAX_PROBLEMS]}
                           for c in self.checks]}

    def emit(self) -> None:
        print("\n" + self.summary() + "\n" + self.details(), flush=True)
        path = os.environ.get("WF_FAULTS_RESULTS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(self.to_json(), default=str) + "\n")

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError(f"invariants failed in {self.scenario}:\n{self.details()}\n{self.summary()}")


def _s(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}s"


# --------------------------------------------------------------------------- duplicate rule

def default_duplicate_rule(cluster, slack: float = 0.5) -> Callable[[str, list[dict]], bool]:
    """A key may repeat only where a runner lost a step it had taken: every repeat (request i+1)
    must follow a copy (request i) whose runner was SIGKILLed after sending it (it died after the
    effect, JetStream redelivered the step, the next runner sent the same key), or be explained by
    a SIGSTOPped runner (frozen longer than the ack wait, the step went to another runner; the
    frozen one may also send its copy after SIGCONT): the frozen runner sent one of the two copies
    and its freeze window overlaps the time between them.

    The sender is the pid in `User-Agent: wf-step-runner/step-runner-<host>-<pid>-<hex>`. Without
    that header (older runners) any runner kill between the two copies, or any freeze overlapping
    them, is accepted instead."""
    kills = [(f.pid, f.time) for f in cluster.faults if f.kind == "kill" and f.role == "runner"]
    stops = [(f.pid, f.time, f.until if f.until is not None else math.inf)
             for f in cluster.faults if f.kind == "sigstop" and f.role == "runner"]

    def explained(a: dict, b: dict) -> bool:
        lo, hi = a["t_in"], b["t_in"]
        pa, pb = a.get("runner_pid"), b.get("runner_pid")
        for pid, t in kills:
            if lo - slack <= t <= hi + slack and (pa is None or pid == pa):
                return True
        for pid, s, u in stops:
            if s - slack <= hi and u + slack >= lo and (pa is None or pb is None or pid in (pa, pb)):
                return True
        return False

    def allowed(key: str, reqs: list[dict]) -> bool:
        reqs = sorted(reqs, key=lambda r: r["t_in"])
        return all(explained(a, b) for a, b in zip(reqs, reqs[1:]))

    return allowed


# --------------------------------------------------------------------------- settling

def _sql(dsn: str, query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchall()


def settle(cluster, accepted: list[str], timeout: float = 300.0) -> dict[str, Any]:
    """Wait until every accepted run is terminal (up to `timeout`), then until every run is, and
    the log head has not moved for 1.5 s. Returns timings; never raises on a timeout (the checks
    report what is missing)."""
    out: dict[str, Any] = {}
    dsn = cluster.dsn
    t0 = time.monotonic()

    def open_accepted() -> int:
        rows = _sql(dsn, "SELECT count(*) FROM runs WHERE id = ANY(%s) AND status = ANY(%s)",
                    (accepted, list(TERMINAL)))
        return len(accepted) - rows[0][0]

    try:
        wait_for(lambda: open_accepted() == 0, timeout=timeout, interval=0.25,
                 message="every accepted run to be terminal")
        out["accepted_terminal"] = True
    except AssertionError:
        out["accepted_terminal"] = False
    out["settle_accepted_s"] = round(time.monotonic() - t0, 2)
    try:
        wait_for(lambda: _sql(dsn, "SELECT count(*) FROM runs WHERE status <> ALL(%s)", (list(TERMINAL),))[0][0] == 0,
                 timeout=60 if out["accepted_terminal"] else 1, interval=0.25, message="every run to be terminal")
    except AssertionError:
        pass
    last = {"seq": -1, "since": time.monotonic()}

    def still() -> bool:
        seq = _sql(dsn, "SELECT seq FROM log_head")[0][0]
        now = time.monotonic()
        if seq != last["seq"]:
            last.update(seq=seq, since=now)
            return False
        return now - last["since"] >= 1.5

    try:
        wait_for(still, timeout=60, interval=0.25, message="the log head to stay still")
        out["log_still"] = True
    except AssertionError:
        out["log_still"] = False
    out["settle_s"] = round(time.monotonic() - t0, 2)
    return out


# --------------------------------------------------------------------------- checks

def _runs_finished(cluster, accepted: list[str], expect_status: str | None, report: Report) -> None:
    rows = dict(_sql(cluster.dsn, "SELECT id, status FROM runs WHERE id = ANY(%s)", (accepted,)))
    pg_status = Counter(rows.get(r, "missing") for r in accepted)
    problems = []
    api_status: Counter = Counter()
    mismatch = 0
    for r in accepted:
        resp = cluster.api.get(f"/api/workflows/runs/{r}")
        status = resp.json()["run"]["status"] if resp.status_code == 200 else f"HTTP {resp.status_code}"
        api_status[status] += 1
        if status != rows.get(r):
            mismatch += 1
            problems.append(f"{r}: projection says {rows.get(r)}, API says {status}")
    not_terminal = [r for r in accepted if rows.get(r) not in TERMINAL]
    wrong = [r for r in accepted if expect_status and rows.get(r) in TERMINAL and rows.get(r) != expect_status]
    for r in not_terminal[:MAX_PROBLEMS]:
        problems.append(f"{r} is {rows.get(r, 'missing')}")
    for r in wrong[:MAX_PROBLEMS]:
        doc = _sql(cluster.dsn, "SELECT doc->>'error' FROM runs WHERE id = %s", (r,))
        problems.append(f"{r} ended {rows.get(r)} (expected {expect_status}): {doc[0][0] if doc else ''}")
    others = _sql(cluster.dsn, "SELECT count(*) FILTER (WHERE status <> ALL(%s)), count(*) FROM runs "
                  "WHERE NOT (id = ANY(%s))", (list(TERMINAL), accepted))[0]
    held = _sql(cluster.dsn, "SELECT count(*) FROM run_schedule WHERE phase <> 'done'")[0][0]
    if others[0]:
        problems.append(f"{others[0]} runs outside the accepted set are not terminal")
    if held:
        problems.append(f"{held} runs still hold or wait for a concurrency slot (run_schedule.phase <> 'done')")
    report.info["statuses"] = dict(pg_status)
    report.checks.append(Check(
        "runs_finished", not not_terminal and not wrong and not mismatch and not others[0] and not held,
        {"accepted": len(accepted), "terminal": len(accepted) - len(not_terminal),
         f"{expect_status or 'any'}": (pg_status.get(expect_status, 0) if expect_status else
                                       len(accepted) - len(not_terminal)),
         "api_matches": len(accepted) - mismatch, "other_runs": others[1], "other_open": others[0],
         "slots_held": held}, problems))


def _results_once(cluster, report: Report) -> None:
    dsn = cluster.dsn
    results = _sql(dsn, "SELECT stream, payload::jsonb->>'step_id', payload::jsonb->>'attempt', count(*) FROM events "
                   "WHERE type IN ('step.completed', 'step.failed') GROUP BY 1, 2, 3 HAVING count(*) > 1")
    dispatches = _sql(dsn, "SELECT stream, payload::jsonb->>'step_id', payload::jsonb->>'attempt', count(*) "
                      "FROM events WHERE type = 'step.dispatched' GROUP BY 1, 2, 3 HAVING count(*) > 1")
    ends = _sql(dsn, "SELECT stream, count(*) FROM events WHERE type = ANY(%s) GROUP BY 1 HAVING count(*) > 1",
                (list(RUN_TERMINAL_EVENTS),))
    n_results = _sql(dsn, "SELECT count(*) FROM events WHERE type IN ('step.completed', 'step.failed')")[0][0]
    problems = [f"{s} step {st} attempt {a}: {n} results" for s, st, a, n in results]
    problems += [f"{s} step {st} attempt {a}: dispatched {n} times" for s, st, a, n in dispatches]
    problems += [f"{s}: {n} terminal run events" for s, n in ends]
    report.checks.append(Check("results_once", not problems,
                               {"step_results": n_results, "results_twice": len(results),
                                "dispatched_twice": len(dispatches), "runs_ended_twice": len(ends)}, problems))


def _effects_once(cluster, allowed_duplicate_key, report: Report) -> None:
    by_key = cluster.target.requests_by_key()
    repeated = {k: v for k, v in by_key.items() if len(v) > 1}
    allowed, refused = [], []
    for k, reqs in repeated.items():
        (allowed if allowed_duplicate_key(k, reqs) else refused).append(k)
    problems = []
    for k in refused[:MAX_PROBLEMS]:
        copies = ", ".join(f"t=+{r['t_in'] - cluster.started_at:.2f}s pid={r['runner_pid']}"
                           f"{' answered' if r['t_out'] else ' not answered'}" for r in by_key[k])
        problems.append(f"key {k} seen {len(by_key[k])} times: {copies}")
    # every completed http_request attempt must have reached the Target (no effect lost)
    rows = _sql(cluster.dsn, """
        SELECT c.stream, c.payload::jsonb->>'step_id', c.payload::jsonb->>'attempt'
        FROM events c JOIN events d ON d.stream = c.stream AND d.type = 'step.dispatched'
             AND d.payload::jsonb->>'step_id' = c.payload::jsonb->>'step_id'
             AND d.payload::jsonb->>'attempt' = c.payload::jsonb->>'attempt'
             AND d.payload::jsonb->>'step_type' = 'http_request'
        WHERE c.type = 'step.completed'""")
    expected = {f"{s}:{st}:{a}" for s, st, a in rows}
    missing = sorted(expected - set(by_key))
    problems += [f"completed http step attempt {k} never reached the Target" for k in missing[:MAX_PROBLEMS]]
    if repeated:
        report.info["repeated_key_samples"] = [
            {"key": k, "copies": [{"t": round(r["t_in"] - cluster.started_at, 3), "pid": r["runner_pid"],
                                   "answered": r["t_out"] is not None} for r in repeated[k]]}
            for k in list(repeated)[:5]]
    report.info["repeated_keys"] = len(repeated)
    report.checks.append(Check("effects_once", not refused and not missing,
                               {"keys": len(by_key), "requests": sum(len(v) for v in by_key.values()),
                                "repeated": len(repeated), "repeated_allowed": len(allowed),
                                "repeated_refused": len(refused), "completed_http_attempts": len(expected),
                                "effects_missing": len(missing)}, problems))


def _versions_gapless(cluster, report: Report) -> None:
    bad = _sql(cluster.dsn, "SELECT stream, count(*), min(version), max(version), count(DISTINCT version) "
               "FROM events GROUP BY stream HAVING min(version) <> 1 OR max(version) <> count(*) "
               "OR count(DISTINCT version) <> count(*)")
    streams, events, seq_min, seq_max = _sql(
        cluster.dsn, "SELECT count(DISTINCT stream), count(*), min(seq), max(seq) FROM events")[0]
    problems = [f"{s}: {n} events, versions {lo}..{hi} ({d} distinct)" for s, n, lo, hi, d in bad]
    if events and (seq_min != 1 or seq_max != events):
        problems.append(f"global seq {seq_min}..{seq_max} over {events} events")
    report.checks.append(Check("versions_gapless", not problems,
                               {"streams": streams, "events": events, "bad_streams": len(bad)}, problems))


def _chain_verifies(cluster, report: Report) -> None:
    from wf_platform.audit import verify_log
    from wf_platform.db import open_pool

    async def go():
        pool = await open_pool(cluster.dsn, min_size=1, max_size=2)
        try:
            return await verify_log(pool)
        finally:
            await pool.close()

    res = asyncio.run(go())
    report.checks.append(Check("chain_verifies", bool(res.ok),
                               {"events_checked": res.events_checked, "first_bad": res.first_bad},
                               [] if res.ok else [f"first bad event {res.first_bad}: {res.reason}"]))


def _rebuild_equal(cluster, report: Report) -> None:
    from wf_platform.rebuild import rebuild

    for attempt in range(3):
        head = _sql(cluster.dsn, "SELECT seq FROM log_head")[0][0]
        res = asyncio.run(rebuild(cluster.dsn))
        if _sql(cluster.dsn, "SELECT seq FROM log_head")[0][0] == head or attempt == 2:
            break
    diffs = {t: d for t, d in res.differences.items() if d[0] or d[1]}
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS wf_rebuild CASCADE")
    report.checks.append(Check("rebuild_equal", res.identical,
                               {"events": res.events, "seconds": round(res.seconds, 2),
                                "tables_differing": len(diffs)},
                               [f"{t}: {a} rows only live, {b} only rebuilt" for t, (a, b) in diffs.items()]))


def _nothing_lost(cluster, accepted: list[str], report: Report) -> None:
    in_runs = {r for (r,) in _sql(cluster.dsn, "SELECT id FROM runs WHERE id = ANY(%s)", (accepted,))}
    in_log = {s for (s,) in _sql(cluster.dsn, "SELECT DISTINCT stream FROM events WHERE stream = ANY(%s) "
                                 "AND type = 'run.created'", (accepted,))}
    missing = [r for r in accepted if r not in in_runs or r not in in_log]
    dupes = len(accepted) - len(set(accepted))
    report.info["lost"] = len(missing)
    problems = [f"{r}: got a 2xx but is {'not in runs' if r not in in_runs else ''}"
                f"{' and ' if r not in in_runs and r not in in_log else ''}"
                f"{'has no run.created' if r not in in_log else ''}" for r in missing[:MAX_PROBLEMS]]
    if dupes:
        problems.append(f"{dupes} run ids were answered to two submissions")
    report.checks.append(Check("nothing_lost", not missing and not dupes,
                               {"accepted": len(accepted), "missing": len(missing), "answered_twice": dupes},
                               problems))


def _fires_once(cluster, report: Report) -> None:
    rows = _sql(cluster.dsn, "SELECT payload::jsonb->>'schedule_id', payload::jsonb->>'fire_time', count(*), "
                "count(payload::jsonb->>'run_id') FROM events WHERE type = 'schedule.fired' GROUP BY 1, 2")
    twice = [(s, t, n) for s, t, n, _ in rows if n > 1]
    report.checks.append(Check("fires_once", not twice,
                               {"fires": len(rows), "runs_started": sum(r[3] for r in rows), "fired_twice": len(twice)},
                               [f"schedule {s} fire {t}: {n} times" for s, t, n in twice]))


def _no_crash(cluster, tolerate: bool, report: Report) -> None:
    died = cluster.unexpected_deaths()
    report.checks.append(Check("no_crash", tolerate or not died,
                               {"unexpected_exits": len(died), "tolerated": tolerate},
                               [f"{f.name} exited on its own at +{f.time - cluster.started_at:.1f}s ({f.detail})"
                                for f in died]))


# --------------------------------------------------------------------------- numbers

def _epoch(ts: datetime) -> float:
    return ts.timestamp()


def _fault_numbers(cluster, accepted: list[str], report: Report) -> None:
    faults = [f for f in cluster.faults if f.kind in ("kill", "sigstop", "nats_kill", "pg_stop")]
    report.info["faults_total"] = len(faults)
    report.info["faults_by_kind"] = dict(Counter(f"{f.kind}:{f.role}" for f in faults))
    report.info["restarts"] = sum(1 for f in cluster.faults if f.kind == "restart")
    in_flight = [f.in_flight for f in faults if f.in_flight is not None]
    report.info["in_flight_at_faults"] = in_flight
    report.info["in_flight_max"] = max(in_flight) if in_flight else None
    report.info["faults"] = [{"kind": f.kind, "role": f.role, "name": f.name, "pid": f.pid,
                              "t": round(f.time - cluster.started_at, 2),
                              "until": round(f.until - cluster.started_at, 2) if f.until else None,
                              "in_flight": f.in_flight} for f in cluster.faults]
    ends = sorted(_epoch(t) for (t,) in _sql(cluster.dsn,
                                             "SELECT recorded_at FROM events WHERE type = 'run.completed'"))
    acc_end = _sql(cluster.dsn, "SELECT max(recorded_at) FROM events WHERE type = ANY(%s) AND stream = ANY(%s)",
                   (list(RUN_TERMINAL_EVENTS), accepted))[0][0]

    def first_after(t: float) -> float | None:
        later = [e for e in ends if e > t]
        return later[0] - t if later else None

    per_fault = [first_after(f.time) for f in faults]
    known = [x for x in per_fault if x is not None]
    rec: dict[str, Any] = {"first_completion_after_fault": [None if x is None else round(x, 2) for x in per_fault],
                           "first_completion_after_fault_max": max(known) if known else None}
    if faults and acc_end is not None:
        last = max(f.until or f.time for f in faults)
        rec["all_terminal_after_last_fault"] = max(0.0, _epoch(acc_end) - last)
    outage_ends = [o["end"] for o in cluster.outages if o["end"] is not None]
    rec["outages"] = [{"what": o["what"], "seconds": round(o["end"] - o["start"], 2) if o["end"] else None}
                      for o in cluster.outages]
    rec["outage_end_to_first_completion"] = [first_after(t) for t in outage_ends]
    report.info["recovery"] = rec
    retries = _sql(cluster.dsn, "SELECT payload::jsonb->>'error_type', count(*), min(payload::jsonb->>'error') "
                   "FROM events WHERE type = 'step.retrying' GROUP BY 1")
    report.info["step_retries"] = sum(n for _, n, _ in retries)
    report.info["step_retry_samples"] = [
        f"+{_epoch(t) - cluster.started_at:.2f}s {s} {st} attempt {a} ({et}): {(e or '')[:100]}"
        for s, st, a, et, e, t in _sql(cluster.dsn, """
            SELECT stream, payload::jsonb->>'step_id', payload::jsonb->>'attempt', payload::jsonb->>'error_type',
                   payload::jsonb->>'error', recorded_at
            FROM events WHERE type = 'step.retrying' ORDER BY seq LIMIT 8""")]
    report.info["step_retry_kinds"] = {t: {"count": n, "sample": (e or "")[:160]} for t, n, e in retries}


# --------------------------------------------------------------------------- entry point

def check_invariants(cluster, accepted_run_ids: list[str], *,
                     allowed_duplicate_key: Callable[[str, list[dict]], bool] | None = None,
                     scenario: str = "scenario", expect_status: str | None = "completed",
                     finish_timeout: float = 300.0, tolerate_deaths: bool = False,
                     load_report=None, extra_info: dict | None = None) -> Report:
    """Settle, then run every check (each reported on its own, with numbers). Never raises for a
    failed check: call `report.assert_ok()` (and `report.emit()` first to print/record it)."""
    t0 = time.monotonic()
    accepted = list(accepted_run_ids)
    report = Report(scenario)
    report.info["accepted"] = len(accepted)
    report.info.update(settle(cluster, accepted, finish_timeout))
    if load_report is not None:
        report.info["load"] = {"submitted": load_report.submitted, "errors": load_report.errors,
                               "error_samples": load_report.error_samples[:3], "retries": load_report.retries,
                               "unfinished_at_loadgen": len(load_report.unfinished),
                               "submitted_per_s": round(load_report.submitted_per_s, 2),
                               "p50": _round(load_report.p(50)), "p99": _round(load_report.p(99))}
    rule = allowed_duplicate_key or default_duplicate_rule(cluster)
    _runs_finished(cluster, accepted, expect_status, report)
    _results_once(cluster, report)
    _effects_once(cluster, rule, report)
    _versions_gapless(cluster, report)
    _chain_verifies(cluster, report)
    _rebuild_equal(cluster, report)
    _nothing_lost(cluster, accepted, report)
    _fires_once(cluster, report)
    _no_crash(cluster, tolerate_deaths, report)
    _fault_numbers(cluster, accepted, report)
    report.info.update(extra_info or {})
    report.info["elapsed"] = round(time.time() - cluster.started_at, 1)
    report.info["check_seconds"] = round(time.monotonic() - t0, 1)
    return report


def _round(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 3)
