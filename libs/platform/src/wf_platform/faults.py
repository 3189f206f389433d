"""Test-only fault injection, off unless WORKFLOW_FAULT is set (it costs a set lookup otherwise).

WORKFLOW_FAULT is a comma-separated list of `name` or `name@probability` (0..1, default 1):
- crash points (`crash_point(name)`): the process SIGKILLs itself there, e.g.
  `gateway_after_append`, `runner_after_reply_before_ack`, `runner_after_effect` (an HTTP step got
  its answer, the result is not published yet), `runner_poison` (a step whose id starts with
  "poison" kills its runner every time, see `poison`);
- `bus_redeliver`: consumers hand every message back once after handling it (nak with a random
  delay instead of the ack), so every bus message is delivered twice and many out of order, and
  fetched batches are handled in shuffled order.

WORKFLOW_FAULT_LOG=<path>: before a crash point kills the process it appends one JSON line
{"fault", "pid", "detail", "at"} there (fsynced), so a test knows which effects a death may repeat.
"""
import json
import os
import random
import signal
import time


def _parse(spec: str) -> dict[str, float]:
    armed: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, p = item.partition("@")
        armed[name] = float(p) if p else 1.0
    return armed


_ARMED = _parse(os.environ.get("WORKFLOW_FAULT", ""))
_LOG = os.environ.get("WORKFLOW_FAULT_LOG")
_rng = random.Random()


def armed(name: str) -> bool:
    """Is the fault on, this time (its probability drawn)?"""
    p = _ARMED.get(name)
    return p is not None and (p >= 1.0 or _rng.random() < p)


def crash_point(name: str, detail: str | None = None) -> None:
    if name in _ARMED and armed(name):
        _record(name, detail)
        os.kill(os.getpid(), signal.SIGKILL)


def poison(step_id: str, detail: str | None = None) -> None:
    """`runner_poison`: a step whose id starts with "poison" crashes its runner on every delivery."""
    if step_id.startswith("poison"):
        crash_point("runner_poison", detail)


def shuffled(items: list) -> list:
    if "bus_redeliver" in _ARMED:
        items = list(items)
        _rng.shuffle(items)
    return items


def redeliver_delay(num_delivered: int) -> float | None:
    """`bus_redeliver`: after handling a first delivery, hand it back (nak) with this delay."""
    if num_delivered <= 1 and armed("bus_redeliver"):
        return _rng.uniform(0.0, 1.0)
    return None


def _record(name: str, detail: str | None) -> None:
    if not _LOG:
        return
    line = json.dumps({"fault": name, "pid": os.getpid(), "detail": detail, "at": time.time()}) + "\n"
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
