"""`wf-dev` (what `make run` calls): the whole system on one machine, no Docker needed.

1. Unless DATABASE_URL is set, starts the embedded Postgres with its data in ./.data/postgres (port 5432
   when free, else any free port); unless NATS_URL is set, the embedded NATS/JetStream in ./.data/nats
   (port 4222 when free). The data survives the next `make run` (`make clean-data` wipes it).
2. Starts the four services as child processes, with the environment passed through plus DATABASE_URL,
   NATS_URL and their ports: wf-gateway (GATEWAY_PORT, 8080), wf-orchestrator (8081), wf-step-runner (8082),
   wf-scheduler (8083). Their output is shown prefixed with the service name. A service that exits on
   its own is restarted with exponential backoff.
3. Prints `Gateway ready at ...` once the gateway's /readyz answers 200.
4. Ctrl-C / SIGTERM: SIGTERM to the services, up to 15 s, then SIGKILL; then NATS and Postgres are
   stopped cleanly. A second Ctrl-C skips the wait.

Overrides (mostly for tests): WF_DEV_DATA_DIR (./.data), WF_DEV_PG_PORT, WF_DEV_NATS_PORT,
ORCHESTRATOR_OPS_PORT / STEP_RUNNER_OPS_PORT / SCHEDULER_OPS_PORT, WF_DEV_READY_TIMEOUT (60), and
WF_DEV_SERVICES: a JSON object {"gateway": ["cmd", "arg", ...], ...} replacing a service's command
(null drops the service). When WORKFLOW_BOOTSTRAP_API_KEY is unset, a random admin key is generated
once, kept in <data dir>/dev-api-key and passed to the gateway.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from wf_platform import embedded

SHUTDOWN_GRACE_S = 15.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a run this long resets the backoff

_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        sys.stdout.write(f"[wf-dev] {msg}\n")
        sys.stdout.flush()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _pick_port(preferred: int, override_var: str) -> int:
    raw = os.environ.get(override_var, "").strip()
    if raw:
        return int(raw)
    return preferred if embedded.port_is_free(preferred) else embedded.free_port()


def _resolve(command: str) -> str | None:
    candidate = Path(sys.executable).parent / command
    if candidate.exists():
        return str(candidate)
    return shutil.which(command)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only wf-dev, which then stops things in order
            preexec_fn=embedded.parent_death_preexec(signal.SIGTERM))
        self.started_at = time.monotonic()
        self.restart_at = None
        self.reader = threading.Thread(target=self._pump, args=(self.proc,), name=f"out-{self.name}", daemon=True)
        self.reader.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        prefix = f"{self.name:<12} | "
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with _print_lock:
                sys.stdout.write(prefix + line + "\n")
                sys.stdout.flush()
        proc.stdout.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _service_specs(env: dict[str, str]) -> list[Service]:
    gateway_port = _env_int("GATEWAY_PORT", 8080)
    defaults = [
        ("gateway", "wf-gateway", {"GATEWAY_PORT": str(gateway_port)}),
        ("orchestrator", "wf-orchestrator", {"OPS_PORT": str(_env_int("ORCHESTRATOR_OPS_PORT", 8081))}),
        ("step-runner", "wf-step-runner", {"OPS_PORT": str(_env_int("STEP_RUNNER_OPS_PORT", 8082))}),
        ("scheduler", "wf-scheduler", {"OPS_PORT": str(_env_int("SCHEDULER_OPS_PORT", 8083))}),
    ]
    overrides = json.loads(os.environ.get("WF_DEV_SERVICES") or "{}")
    services = []
    for name, command, extra in defaults:
        if name in overrides:
            argv = overrides[name]
            if argv is None:
                continue
            argv = [str(a) for a in argv]
        else:
            exe = _resolve(command)
            if exe is None:
                say(f"{command} is not installed (run `make install`); {name} not started")
                continue
            argv = [exe]
        services.append(Service(name=name, argv=argv, env={**env, **extra, "WF_SERVICE_NAME": name}))
    return services


class Supervisor:
    def __init__(self, services: list[Service]):
        self.services = services

    def start_all(self) -> None:
        for svc in self.services:
            port = svc.env.get("GATEWAY_PORT") if svc.name == "gateway" else svc.env.get("OPS_PORT")
            if port and port.isdigit() and not embedded.port_is_free(int(port)):
                say(f"warning: port {port} is already in use (another wf-dev?); {svc.name} will likely fail to bind")
            svc.start()
            say(f"started {svc.name} (pid {svc.proc.pid}): {' '.join(svc.argv)}")

    def check(self) -> None:
        """Restart services that exited, with exponential backoff."""
        now = time.monotonic()
        for svc in self.services:
            if svc.proc is None:
                continue
            if svc.restart_at is not None:
                if now >= svc.restart_at:
                    svc.start()
                    say(f"restarted {svc.name} (pid {svc.proc.pid})")
                continue
            code = svc.proc.poll()
            if code is None:
                continue
            ran = now - svc.started_at
            svc.failures = 1 if ran >= STABLE_AFTER_S else svc.failures + 1
            delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (svc.failures - 1))
            say(f"{svc.name} exited unexpectedly with code {code} after {ran:.1f}s; restarting in {delay:.1f}s")
            svc.restart_at = now + delay

    def shutdown(self, grace: float, force: threading.Event) -> None:
        live = [s for s in self.services if s.running]
        for svc in live:
            try:
                svc.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        if live:
            say(f"stopping {', '.join(s.name for s in live)} (up to {grace:.0f}s)")
        end = time.monotonic() + grace
        while any(s.running for s in live) and time.monotonic() < end and not force.is_set():
            time.sleep(0.05)
        for svc in live:
            if svc.running:
                say(f"{svc.name} did not stop in time; killing it")
            if svc.proc is not None:
                try:  # the service's own children (script steps...) go too
                    os.killpg(svc.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                svc.proc.wait()
        for svc in self.services:
            if svc.reader is not None:
                svc.reader.join(timeout=2)


def _gateway_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _dev_api_key(data_root: Path) -> str:
    path = data_root / "dev-api-key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    data_root.mkdir(parents=True, exist_ok=True)
    key = "wf_dev_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def main(argv: list[str] | None = None) -> int:
    stop = threading.Event()
    force = threading.Event()
    first_signal_at: list[float] = []

    def on_signal(signum, _frame):
        now = time.monotonic()
        if not first_signal_at:
            first_signal_at.append(now)
        elif now - first_signal_at[0] > 1.0 and not force.is_set():
            # a second, separate Ctrl-C (a duplicate delivered at once, e.g. by `timeout`, does not count)
            force.set()
            say("second signal: not waiting for the services any longer")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    data_root = Path(os.environ.get("WF_DEV_DATA_DIR") or ".data").absolute()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    pg = nats = None
    supervisor: Supervisor | None = None
    code = 0
    try:
        if not os.environ.get("DATABASE_URL"):
            t0 = time.monotonic()
            pg = embedded.start_postgres(data_root / "postgres", _pick_port(5432, "WF_DEV_PG_PORT"))
            env["DATABASE_URL"] = pg.dsn
            say(f"Postgres (embedded) at {pg.dsn}, data in {pg.data_dir} "
                f"[{time.monotonic() - t0:.1f}s, log {pg.log_path}]")
        else:
            say("using DATABASE_URL from the environment")
        if stop.is_set():
            return 0
        if not os.environ.get("NATS_URL"):
            t0 = time.monotonic()
            nats = embedded.start_nats(data_root / "nats", _pick_port(4222, "WF_DEV_NATS_PORT"))
            env["NATS_URL"] = nats.url
            say(f"NATS/JetStream (embedded) at {nats.url}, data in {nats.data_dir} "
                f"[{time.monotonic() - t0:.1f}s, log {nats.log_path}]")
        else:
            say("using NATS_URL from the environment")

        api_key = env.get("WORKFLOW_BOOTSTRAP_API_KEY")
        if not api_key:
            api_key = _dev_api_key(data_root)
            env["WORKFLOW_BOOTSTRAP_API_KEY"] = api_key

        supervisor = Supervisor(_service_specs(env))
        if stop.is_set():
            return 0
        supervisor.start_all()

        base = f"http://127.0.0.1:{_env_int('GATEWAY_PORT', 8080)}"
        ready_url = base + "/readyz"
        ready_timeout = float(os.environ.get("WF_DEV_READY_TIMEOUT") or 60)
        ready_deadline = time.monotonic() + ready_timeout
        ready = warned = False
        next_probe = 0.0
        while not stop.is_set():
            supervisor.check()
            now = time.monotonic()
            if not ready and now >= next_probe:
                next_probe = now + 0.25
                if _gateway_ready(ready_url):
                    ready = True
                    say(f"Gateway ready at {base}")
                    say(f'Try: curl -H "Authorization: Bearer {api_key}" {base}/api/workflows')
                    say("Ctrl-C stops everything.")
                elif not warned and now >= ready_deadline:
                    warned = True
                    say(f"gateway not ready at {ready_url} after {ready_timeout:.0f}s; "
                        "still waiting (see the service output above)")
            stop.wait(0.1)
    except Exception as exc:  # start-up failure of Postgres/NATS, bad override...
        say(f"error: {exc}")
        code = 1
    finally:
        say("shutting down")
        if supervisor is not None:
            supervisor.shutdown(0 if force.is_set() else SHUTDOWN_GRACE_S, force)
        if nats is not None:
            nats.stop()
            say("NATS stopped")
        if pg is not None:
            pg.stop()
            say("Postgres stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
