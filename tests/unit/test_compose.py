"""docker-compose.yml is consistent with the code: services, healthchecks, env, scaling, durability."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {
    "api-gateway": ("wf-gateway", 8080),
    "orchestrator": ("wf-orchestrator", 8081),
    "step-runner": ("wf-step-runner", 8082),
    "scheduler": ("wf-scheduler", 8083),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _command(svc: dict) -> list[str]:
    cmd = svc.get("command")
    return cmd.split() if isinstance(cmd, str) else list(cmd or [])


def _console_scripts() -> set[str]:
    scripts = set()
    for pyproject in (ROOT / "services").glob("*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    return scripts


def test_names_the_six_services(compose):
    assert set(compose["services"]) == {"postgres", "nats", *APP_SERVICES}
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    assert compose["services"]["nats"]["image"].startswith("nats:2.11")


def test_no_container_name_anywhere(compose):
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, name


def test_only_the_gateway_publishes_a_port(compose):
    for name, svc in compose["services"].items():
        if name == "api-gateway":
            assert any(str(p).endswith(":8080") for p in svc["ports"])
        else:
            assert not svc.get("ports"), f"{name} publishes a host port and could not be scaled"


def test_every_service_has_a_healthcheck_and_limits(compose):
    for name, svc in compose["services"].items():
        assert svc.get("healthcheck", {}).get("test"), name
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), name
        assert "replicas" not in svc.get("deploy", {}), name
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service(compose, name):
    svc = compose["services"][name]
    script, port = APP_SERVICES[name]
    assert _command(svc) == [script]
    assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    env = _env(svc)
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["NATS_URL"] == "nats://nats:4222"
    for var in ("WORKFLOW_MAX_CONCURRENT_RUNS", "WORKFLOW_BOOTSTRAP_API_KEY", "WORKFLOW_EGRESS_ALLOW",
                "WORKFLOW_MAX_RESPONSE_BYTES", "WORKFLOW_AGENTS_FILE"):
        assert var in env, (name, var)
    health = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in health
    if name == "api-gateway":
        assert env["GATEWAY_HOST"] == "0.0.0.0" and str(env["GATEWAY_PORT"]) == "8080"
    else:
        assert env["OPS_HOST"] == "0.0.0.0" and str(env["OPS_PORT"]) == str(port)
    deps = svc["depends_on"]
    assert deps["postgres"]["condition"] == deps["nats"]["condition"] == "service_healthy"


def test_console_scripts_in_compose_exist(compose):
    scripts = _console_scripts()
    named = {_command(s)[0] for n, s in compose["services"].items() if n in APP_SERVICES}
    assert named == {s for s, _ in APP_SERVICES.values()}
    assert named <= scripts, named - scripts


def test_nats_syncs_every_write(compose):
    nats = compose["services"]["nats"]
    mounts = [str(v) for v in nats["volumes"]]
    conf_mount = next(v for v in mounts if v.startswith("./deploy/nats/nats.conf:"))
    target = conf_mount.split(":")[1]
    assert target in " ".join(_command(nats))
    conf = (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    body = re.sub(r"#.*", "", conf)
    js = re.search(r"jetstream\s*\{([^}]*)\}", body)
    assert js, "no jetstream block"
    assert re.search(r"^\s*sync_interval\s*:\s*always\s*$", js.group(1), re.M)
    assert re.search(r"^\s*store_dir\s*:\s*/data\s*$", js.group(1), re.M)
    assert any(v.endswith(":/data") for v in mounts)


def test_dockerfile_installs_lock_then_our_packages_without_deps():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.findall(r"^FROM\s+(\S+)", text, re.M) == ["python:3.11-slim"]
    lock = text.index("requirements.lock")
    ours = text.index("--no-deps")
    assert lock < ours
    for pkg in ("libs/contracts", "libs/expressions", "libs/platform", "services/api-gateway",
                "services/orchestrator", "services/step-runner", "services/scheduler"):
        assert pkg in text[ours:], pkg
        assert (ROOT / pkg / "pyproject.toml").exists(), pkg
