"""The compose files are consistent with the code and describe what deploy/README.md says.

- docker-compose.yml: production shape: a 3-node NATS cluster with JetStream (R3 stream), Postgres,
  several replicas per service behind a load balancer, health checks, limits, drain-long grace periods.
- deploy/compose.single.yml: the same system on one node (one NATS, R1, one replica each).
"""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "docker-compose.yml"
SINGLE = ROOT / "deploy" / "compose.single.yml"
APP_SERVICES = {
    "api-gateway": ("wf-gateway", 8080),
    "orchestrator": ("wf-orchestrator", 8081),
    "step-runner": ("wf-step-runner", 8082),
    "scheduler": ("wf-scheduler", 8083),
}
NATS_NODES = ("nats-1", "nats-2", "nats-3")
RUNNER_DRAIN_SECONDS = 25      # wf_runner.settings default
RUN_SERVICE_DRAIN_SECONDS = 30  # wf_platform.runtime.run_service: components get this long after SIGTERM
MIN_REPLICAS = {"api-gateway": 2, "orchestrator": 2, "step-runner": 3, "scheduler": 2}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def prod() -> dict:
    return _load(PROD)


@pytest.fixture(scope="module")
def single() -> dict:
    return _load(SINGLE)


@pytest.fixture(scope="module", params=[PROD, SINGLE], ids=["prod", "single"])
def any_compose(request) -> tuple[Path, dict]:
    return request.param, _load(request.param)


def _env(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _command(svc: dict) -> list[str]:
    cmd = svc.get("command")
    return cmd.split() if isinstance(cmd, str) else list(cmd or [])


def _seconds(duration: str) -> float:
    """A compose duration ("35s", "1m30s", "1m") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?", str(duration).strip())
    assert parts and any(parts.groups()), duration
    h, m, s = (int(x or 0) for x in parts.groups())
    return h * 3600 + m * 60 + s


def _console_scripts() -> set[str]:
    scripts = set()
    for pyproject in (ROOT / "services").glob("*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    return scripts


def _conf_body(path: Path) -> str:
    return re.sub(r"#.*", "", path.read_text())


def _block(body: str, name: str) -> str:
    m = re.search(rf"^\s*{name}\s*\{{(.*?)^\}}", body, re.M | re.S)
    assert m, f"no {name} block"
    return m.group(1)


# --------------------------------------------------------------------------- both files

def test_no_container_name_anywhere(any_compose):
    _, compose = any_compose
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, name


def test_every_service_has_a_healthcheck_limits_and_restarts(any_compose):
    _, compose = any_compose
    for name, svc in compose["services"].items():
        assert svc.get("healthcheck", {}).get("test"), name
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), name
        assert svc.get("restart") == "unless-stopped", name
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])


def test_postgres_is_durable(any_compose):
    _, compose = any_compose
    pg = compose["services"]["postgres"]
    assert pg["image"] == "postgres:16"
    cmd = " ".join(_command(pg))
    assert "fsync=on" in cmd and "synchronous_commit=on" in cmd
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service(any_compose, name):
    path, compose = any_compose
    svc = compose["services"][name]
    script, port = APP_SERVICES[name]
    assert _command(svc) == [script]
    assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (path.parent / svc["build"]["context"]).resolve() == ROOT
    env = _env(svc)
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    for var in ("NATS_URL", "NATS_STREAM_REPLICAS", "WORKFLOW_MAX_CONCURRENT_RUNS", "WORKFLOW_BOOTSTRAP_API_KEY",
                "WORKFLOW_EGRESS_ALLOW", "WORKFLOW_MAX_RESPONSE_BYTES", "WORKFLOW_AGENTS_FILE"):
        assert var in env, (name, var)
    # readiness (Postgres and NATS reachable), not mere liveness
    health = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in health
    if name == "api-gateway":
        assert env["GATEWAY_HOST"] == "0.0.0.0" and str(env["GATEWAY_PORT"]) == "8080"
    else:
        assert env["OPS_HOST"] == "0.0.0.0" and str(env["OPS_PORT"]) == str(port)
    deps = svc["depends_on"]
    nats_deps = [d for d in deps if d.startswith("nats")]
    assert nats_deps and all(deps[d]["condition"] == "service_healthy" for d in nats_deps)
    if name == "step-runner":
        assert "postgres" not in deps  # the runner has no database
    else:
        assert deps["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_grace_period_covers_the_drain(any_compose, name):
    _, compose = any_compose
    grace = _seconds(compose["services"][name]["stop_grace_period"])
    assert grace >= RUNNER_DRAIN_SECONDS
    assert grace > RUN_SERVICE_DRAIN_SECONDS  # docker must not SIGKILL a service still draining
    if name == "step-runner":
        env_drain = str(_env(compose["services"][name]).get("RUNNER_DRAIN_SECONDS") or RUNNER_DRAIN_SECONDS)
        drain = int(re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", env_drain))
        assert grace >= drain + 10, "in-flight steps need their drain plus the time to hand back and close"


def test_console_scripts_in_compose_exist(any_compose):
    _, compose = any_compose
    scripts = _console_scripts()
    named = {_command(s)[0] for n, s in compose["services"].items() if n in APP_SERVICES}
    assert named == {s for s, _ in APP_SERVICES.values()}
    assert named <= scripts, named - scripts


def test_bind_mounts_and_env_files_exist(any_compose):
    path, compose = any_compose
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = str(v).split(":")[0]
            if src.startswith("."):
                assert (path.parent / src).exists(), (name, src)
        for ef in svc.get("env_file", []):
            if isinstance(ef, dict):
                assert ef.get("required") is False, name  # deploy/secrets.env is optional and not committed
                assert (path.parent / ef["path"]).resolve().parent == ROOT / "deploy", name


def test_env_variables_are_ones_the_code_reads(any_compose):
    _, compose = any_compose
    source = "\n".join(p.read_text() for p in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")])
    for name in APP_SERVICES:
        for var in _env(compose["services"][name]):
            assert f'"{var}"' in source or var.startswith("WORKFLOW_SECRET_"), f"{name}: {var} is read nowhere"


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


# --------------------------------------------------------------------------- production: docker-compose.yml

def test_prod_names_its_services(prod):
    assert set(prod["services"]) == {"postgres", *NATS_NODES, "lb", *APP_SERVICES, "prometheus"}
    assert prod["services"]["prometheus"].get("profiles") == ["monitoring"]  # optional


def test_prod_nats_is_a_three_node_jetstream_cluster(prod):
    names, stores = set(), set()
    for node in NATS_NODES:
        svc = prod["services"][node]
        assert svc["image"].startswith("nats:2.11")
        cmd = _command(svc)
        names.add(cmd[cmd.index("--server_name") + 1])
        mounts = [str(v) for v in svc["volumes"]]
        conf = next(v for v in mounts if v.startswith("./deploy/nats/cluster.conf:"))
        assert conf.split(":")[1] in cmd
        store = next(v for v in mounts if v.split(":")[1] == "/data")
        assert not store.startswith("."), "a named volume per node"
        stores.add(store.split(":")[0])
        assert "/healthz?js-enabled-only=true" in " ".join(svc["healthcheck"]["test"])
    assert names == set(NATS_NODES), "every node has its own, stable server name"
    assert len(stores) == 3 and stores <= set(prod["volumes"]), "every node has its own store"


def test_prod_cluster_conf_routes_to_every_node_and_syncs_every_write():
    body = _conf_body(ROOT / "deploy" / "nats" / "cluster.conf")
    js = _block(body, "jetstream")
    assert re.search(r"^\s*sync_interval\s*:\s*always\s*$", js, re.M)
    assert re.search(r"^\s*store_dir\s*:\s*/data\s*$", js, re.M)
    cluster = _block(body, "cluster")
    assert re.search(r"^\s*name\s*:\s*\S+", cluster, re.M)
    assert re.search(r"^\s*listen\s*:\s*0\.0\.0\.0:6222\s*$", cluster, re.M)
    routes = set(re.findall(r"nats-route://([\w-]+):6222", cluster))
    assert routes == set(NATS_NODES)
    assert not re.search(r"^\s*server_name\s*:", body, re.M), "the name comes from each node's command line"
    assert re.search(r"^\s*http\s*:\s*0\.0\.0\.0:8222\s*$", body, re.M)  # the healthcheck's port


def test_prod_apps_use_every_node_and_an_r3_stream(prod):
    for name in APP_SERVICES:
        env = _env(prod["services"][name])
        urls = env["NATS_URL"].split(",")
        assert urls == [f"nats://{n}:4222" for n in NATS_NODES], name
        assert str(env["NATS_STREAM_REPLICAS"]) == "3", name
        assert set(NATS_NODES) <= set(prod["services"][name]["depends_on"]), name


def test_prod_replicas(prod):
    for name, least in MIN_REPLICAS.items():
        assert prod["services"][name]["deploy"]["replicas"] >= least, name
    for name in ("postgres", *NATS_NODES, "lb"):
        assert prod["services"][name].get("deploy", {}).get("replicas", 1) == 1, name


def test_prod_only_the_load_balancer_publishes_a_port(prod):
    for name, svc in prod["services"].items():
        if name == "lb":
            assert any(str(p).endswith(":8080") for p in svc["ports"])
        elif name == "prometheus":
            assert all(str(p).startswith("127.0.0.1:") for p in svc["ports"])  # loopback only
        else:
            assert not svc.get("ports"), f"{name} publishes a host port and could not be scaled"


def test_prod_load_balancer_follows_the_gateway_replicas(prod):
    lb = prod["services"]["lb"]
    image, tag = lb["image"].split(":")
    assert image == "nginx"
    major, minor = (int(x) for x in tag.split("-")[0].split(".")[:2])
    assert (major, minor) >= (1, 28), "`resolve` in an upstream needs nginx >= 1.27.3"
    assert lb["depends_on"]["api-gateway"]["condition"] == "service_healthy"
    mount = next(str(v) for v in lb["volumes"] if str(v).startswith("./deploy/nginx/"))
    body = _conf_body(ROOT / mount.split(":")[0])
    assert re.search(r"server\s+api-gateway:8080\s+resolve\b", body)
    assert re.search(r"resolver\s+127\.0\.0\.11\b", body)
    assert re.search(r"zone\s+\w+\s+\d+k;", body)
    assert "listen 8080;" in body
    assert "proxy_buffering off;" in body  # SSE
    assert "non_idempotent" not in body     # a POST that reached a gateway is never sent to another one
    assert "/readyz" in " ".join(lb["healthcheck"]["test"])


def test_prod_prometheus_scrapes_every_service_on_its_port(prod):
    mount = next(str(v) for v in prod["services"]["prometheus"]["volumes"] if str(v).startswith("./"))
    conf = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in conf["scrape_configs"]}
    for name, (_, port) in APP_SERVICES.items():
        assert jobs[name]["names"] == [name] and jobs[name]["port"] == port, name


def test_prod_postgres_has_room_for_every_pool(prod):
    cmd = _command(prod["services"]["postgres"])
    max_conn = int(next(c.split("=")[1] for c in cmd if c.startswith("max_connections=")))
    pool = int(re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", str(_env(prod["services"]["orchestrator"])["WORKFLOW_DB_POOL_MAX"])))
    # each replica: its pool, the relay's LISTEN connection, a migration connection at start
    needed = sum(prod["services"][n]["deploy"]["replicas"] * (pool + 2)
                 for n in APP_SERVICES if n != "step-runner")
    assert needed * 2 <= max_conn, "room to double every replica count"


# --------------------------------------------------------------------------- single node: deploy/compose.single.yml

def test_single_names_its_services(single):
    assert set(single["services"]) == {"postgres", "nats", *APP_SERVICES}
    assert single["services"]["nats"]["image"].startswith("nats:2.11")
    for name in APP_SERVICES:
        env = _env(single["services"][name])
        assert env["NATS_URL"] == "nats://nats:4222" and str(env["NATS_STREAM_REPLICAS"]) == "1"
        assert single["services"][name].get("deploy", {}).get("replicas", 1) == 1


def test_single_publishes_only_the_gateway(single):
    for name, svc in single["services"].items():
        if name == "api-gateway":
            assert any(str(p).endswith(":8080") for p in svc["ports"])
        else:
            assert not svc.get("ports"), name


def test_single_nats_syncs_every_write(single):
    nats = single["services"]["nats"]
    mounts = [str(v) for v in nats["volumes"]]
    conf_mount = next(v for v in mounts if v.startswith("./nats/nats.conf:"))
    target = conf_mount.split(":")[1]
    assert target in " ".join(_command(nats))
    js = _block(_conf_body(ROOT / "deploy" / "nats" / "nats.conf"), "jetstream")
    assert re.search(r"^\s*sync_interval\s*:\s*always\s*$", js, re.M)
    assert re.search(r"^\s*store_dir\s*:\s*/data\s*$", js, re.M)
    assert any(v.endswith(":/data") for v in mounts)
