"""The whole system as separate processes on loopback, for end-to-end tests."""
from pathlib import Path

import httpx

from wf_platform.embedded import free_port

from .infra import ServiceProcess

API_KEY = "wf-test-bootstrap-key"


class Stack:
    def __init__(self, tmp: Path, dsn: str, nats_url: str, env: dict[str, str] | None = None,
                 orchestrators: int = 2, runners: int = 1, schedulers: int = 1, gateways: int = 1) -> None:
        self.tmp = Path(tmp)
        self.gateway_port = free_port()
        self.base_env = {
            "DATABASE_URL": dsn,
            "NATS_URL": nats_url,
            "WORKFLOW_BOOTSTRAP_API_KEY": API_KEY,
            "WORKFLOW_EGRESS_ALLOW": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.procs: dict[str, list[tuple[ServiceProcess, str]]] = {}
        self.gateway_ports = [self.gateway_port] + [free_port() for _ in range(gateways - 1)]
        for port in self.gateway_ports:
            self.add("gateway", "wf-gateway", {"GATEWAY_PORT": str(port)}, f"http://127.0.0.1:{port}/readyz")
        for _ in range(orchestrators):
            self.add_ops("orchestrator", "wf-orchestrator")
        for _ in range(runners):
            self.add_ops("runner", "wf-step-runner")
        for _ in range(schedulers):
            self.add_ops("scheduler", "wf-scheduler")
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

    def add(self, role: str, cmd: str, env: dict[str, str], ready_url: str) -> ServiceProcess:
        n = len(self.procs.get(role, []))
        p = ServiceProcess(cmd, {**self.base_env, **env}, self.tmp / "logs", name=f"{role}-{n}")
        self.procs.setdefault(role, []).append((p, ready_url))
        return p

    def add_ops(self, role: str, cmd: str, env: dict[str, str] | None = None) -> ServiceProcess:
        port = free_port()
        return self.add(role, cmd, {"OPS_PORT": str(port), **(env or {})}, f"http://127.0.0.1:{port}/readyz")

    def role(self, role: str) -> list[ServiceProcess]:
        return [p for p, _ in self.procs.get(role, [])]

    def ready_url(self, proc: ServiceProcess) -> str:
        for items in self.procs.values():
            for p, url in items:
                if p is proc:
                    return url
        raise KeyError(proc.name)

    def start(self) -> "Stack":
        for items in self.procs.values():
            for p, _ in items:
                p.start()
        for items in self.procs.values():
            for p, url in items:
                p.wait_ready(url, deadline=90)
        return self

    def restart(self, proc: ServiceProcess) -> None:
        proc.start()
        proc.wait_ready(self.ready_url(proc), deadline=90)

    def stop(self) -> None:
        self.client.close()
        for items in self.procs.values():
            for p, _ in items:
                p.terminate(timeout=20)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(40)}" for items in self.procs.values() for p, _ in items)

    def __enter__(self) -> "Stack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
