"""The embedded Postgres/NATS launchers, wf-dev and the test-support helpers, against real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nats
import psutil
import psycopg
import pytest

from tests.support.infra import (
    ServiceProcess,
    async_wait_for,
    nats_for_tests,
    postgres_for_tests,
    wait_for,
)
from wf_platform import embedded
from wf_platform.embedded import free_port, start_nats, start_postgres

VENV_BIN = Path(sys.executable).parent


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute("SELECT id, note FROM survivors ORDER BY id").fetchall()


# --------------------------------------------------------------------------- Postgres

def test_postgres_survives_kill_immediate_and_clean_restarts(tmp_path):
    t0 = time.monotonic()
    pg = start_postgres(tmp_path / "pg")
    first_start = time.monotonic() - t0
    try:
        assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("16")
            conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO survivors VALUES (1, 'before kill -9')")
        # the Unix socket is in the data dir too
        assert (pg.socket_dir / f".s.PGSQL.{pg.port}").exists()

        port, old_pid = pg.port, pg.pid
        kids = [c.pid for c in psutil.Process(old_pid).children(recursive=True)]
        pg.kill()
        assert pg.pid is None and _gone(old_pid) and all(_gone(k) for k in kids)
        assert not (pg.data_dir / "postmaster.pid").exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.dsn, connect_timeout=2)

        t0 = time.monotonic()
        pg.start()
        restart = time.monotonic() - t0
        assert pg.port == port and pg.pid not in (None, old_pid)
        assert _rows(pg.dsn) == [(1, "before kill -9")]

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO survivors VALUES (2, 'before immediate')")
        pg.stop_immediate()
        assert pg.pid is None
        pg.start()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO survivors VALUES (3, 'before stop')")
        pg.stop()
        assert pg.pid is None and not (pg.data_dir / "postmaster.pid").exists()
        pg.start()
        assert [r[0] for r in _rows(pg.dsn)] == [1, 2, 3]
        print(f"postgres: initdb+start {first_start:.2f}s, restart after kill -9 {restart:.2f}s")
    finally:
        pg.stop()
    assert pg.pid is None


def test_postgres_restarts_after_only_the_postmaster_is_killed(tmp_path):
    """An outside `kill -9 <postmaster>` leaves backends and postmaster.pid behind for a moment."""
    pg = start_postgres(tmp_path / "pg")
    try:
        conn = psycopg.connect(pg.dsn, autocommit=True)  # keeps a backend attached to shared memory
        conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO survivors VALUES (7, 'x')")
        os.kill(pg.pid, signal.SIGKILL)
        wait_for(lambda: pg.pid is None, timeout=10, message="postmaster to die")
        pg.kill()  # a no-op on the dead postmaster, but must not break the restart
        pg.start()
        assert _rows(pg.dsn) == [(7, "x")]
        conn.close()
    finally:
        pg.stop()


def test_postgres_data_dir_is_reused_by_a_new_launcher(tmp_path):
    """What the next `make run` does: a fresh launcher (other port) on the same data dir."""
    data = tmp_path / "pg"
    pg = start_postgres(data)
    try:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO survivors VALUES (1, 'first run')")
    finally:
        pg.stop()
    pg2 = start_postgres(data, free_port())
    try:
        assert _rows(pg2.dsn) == [(1, "first run")]
    finally:
        pg2.stop()


# --------------------------------------------------------------------------- NATS

async def _publish(url: str, stream: str, subject: str, payloads: list[bytes], create: bool) -> None:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        if create:
            await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        for p in payloads:
            ack = await js.publish(subject, p, stream=stream)
            assert ack.stream == stream
    finally:
        await nc.close()


async def _read_all(url: str, stream: str) -> list[bytes]:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            out.append((await js.get_msg(stream, seq)).data)
        return out
    finally:
        await nc.close()


async def test_nats_survives_kill_and_restart(tmp_path):
    t0 = time.monotonic()
    srv = start_nats(tmp_path / "nats")
    first_start = time.monotonic() - t0
    try:
        assert srv.url == f"nats://127.0.0.1:{srv.port}"
        assert "sync_interval: always" in srv.config_path.read_text()
        await _publish(srv.url, "EMB", "emb.a", [f"m{i}".encode() for i in range(50)], create=True)

        old_pid, port = srv.pid, srv.port
        srv.kill()
        assert srv.pid is None and _gone(old_pid)
        t0 = time.monotonic()
        srv.start()
        restart = time.monotonic() - t0
        assert srv.port == port and srv.pid != old_pid
        assert await _read_all(srv.url, "EMB") == [f"m{i}".encode() for i in range(50)]

        # a durable consumer sees them too, and a clean stop/start keeps everything
        await _publish(srv.url, "EMB", "emb.b", [b"after-restart"], create=False)
        srv.stop()
        assert srv.pid is None
        srv.start()
        nc = await nats.connect(srv.url, allow_reconnect=False)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe("emb.>", durable="reader", stream="EMB")
            got = []
            while len(got) < 51:
                batch = await sub.fetch(51 - len(got), timeout=5)
                for m in batch:
                    await m.ack()
                got += [m.data for m in batch]
            assert got[-1] == b"after-restart" and len(got) == 51
        finally:
            await nc.close()
        print(f"nats: start {first_start:.2f}s, restart after kill -9 {restart:.2f}s")
    finally:
        srv.stop()
    assert srv.pid is None


def test_nats_without_sync_always_has_default_config(tmp_path):
    srv = start_nats(tmp_path / "nats", sync_always=False)
    try:
        assert "sync_interval" not in srv.config_path.read_text()
        assert embedded.jetstream_ready("127.0.0.1", srv.port)
    finally:
        srv.stop()
    assert not embedded.jetstream_ready("127.0.0.1", srv.port)


def test_old_nats_server_is_refused(tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "nats-server"
    fake.write_text("#!/bin/sh\necho 'nats-server: v2.9.10'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_bin / "python"))
    monkeypatch.setenv("PATH", str(fake_bin))
    with pytest.raises(RuntimeError, match="2.10"):
        embedded.find_nats_server()


# --------------------------------------------------------------------------- tests/support/infra

async def test_infra_servers_and_wait_helpers(tmp_path):
    with postgres_for_tests(tmp_path) as pg, nats_for_tests(tmp_path) as ns:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO survivors VALUES (1, 'infra')")
        await _publish(ns.url, "INFRA", "infra.x", [b"one"], create=True)
        pg.kill()
        ns.kill()
        pg.start()
        ns.start()
        assert wait_for(lambda: _rows(pg.dsn), timeout=10) == [(1, "infra")]
        assert await async_wait_for(lambda: _read_all(ns.url, "INFRA"), timeout=10) == [b"one"]

    assert wait_for(lambda: 42) == 42
    with pytest.raises(AssertionError, match="the impossible"):
        wait_for(lambda: False, timeout=0.2, message="the impossible")
    calls = []

    async def eventually():
        calls.append(1)
        return len(calls) >= 3 and "done"

    assert await async_wait_for(eventually, timeout=5) == "done"
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        await async_wait_for(lambda: 1 / 0, timeout=0.2)


DUMMY_SERVICE = textwrap.dedent("""
    import http.server, json, os, signal, sys, threading
    from pathlib import Path

    name = os.environ.get("WF_SERVICE_NAME", "svc")
    out = Path(os.environ["DUMMY_OUT"])
    keys = ["DATABASE_URL", "NATS_URL", "OPS_PORT", "GATEWAY_PORT", "WORKFLOW_BOOTSTRAP_API_KEY"]
    info = {"pid": os.getpid(), **{k: os.environ.get(k) for k in keys}}
    (out / f"{name}.json.tmp").write_text(json.dumps(info))
    os.replace(out / f"{name}.json.tmp", out / f"{name}.json")

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/readyz", "/healthz") else 404)
            self.end_headers()
            self.wfile.write(b"{}")
        def log_message(self, *a):
            pass

    def on_term(*_):
        print(name, "got SIGTERM", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    port = os.environ.get("GATEWAY_PORT") if name == "gateway" else os.environ.get("OPS_PORT")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
    print(name, "listening on", port, flush=True)
    srv.serve_forever()
""")


def test_service_process_lifecycle(tmp_path):
    script = tmp_path / "dummy.py"
    script.write_text(DUMMY_SERVICE)
    port = free_port()
    env = {"WF_SERVICE_NAME": "gateway", "GATEWAY_PORT": str(port), "DUMMY_OUT": str(tmp_path)}
    svc = ServiceProcess([sys.executable, str(script)], env=env, log_dir=tmp_path / "logs", name="dummy")
    try:
        svc.start()
        svc.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=20)
        first = svc.pid
        svc.kill()
        assert svc.pid is None and svc.returncode == -signal.SIGKILL and _gone(first)
        svc.restart()
        svc.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=20)
        assert svc.pid != first
        assert svc.terminate(10) == 0
        assert "got SIGTERM" in svc.log_text() and svc.log_text().count("===== start #") == 2
        with pytest.raises(AssertionError, match="exited"):
            svc.wait_ready(f"http://127.0.0.1:{port}/readyz", deadline=1)
    finally:
        svc.kill()


# --------------------------------------------------------------------------- wf-dev

def _run_devstack(tmp_path: Path, data_dir: Path, out_dir: Path, log: Path, ports: dict[str, int]):
    script = tmp_path / "dummy.py"
    script.write_text(DUMMY_SERVICE)
    dummy = [sys.executable, str(script)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "NATS_URL", "WORKFLOW_BOOTSTRAP_API_KEY")}
    env.update({
        "WF_DEV_DATA_DIR": str(data_dir),
        "WF_DEV_PG_PORT": str(ports["pg"]),
        "WF_DEV_NATS_PORT": str(ports["nats"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "ORCHESTRATOR_OPS_PORT": str(ports["orchestrator"]),
        "STEP_RUNNER_OPS_PORT": str(ports["step-runner"]),
        "SCHEDULER_OPS_PORT": str(ports["scheduler"]),
        "WF_DEV_SERVICES": json.dumps({n: dummy for n in ("gateway", "orchestrator", "step-runner", "scheduler")}),
        "DUMMY_OUT": str(out_dir),
    })
    fh = open(log, "ab")
    proc = subprocess.Popen([str(VENV_BIN / "wf-dev")], env=env, stdout=fh, stderr=subprocess.STDOUT,
                            cwd=str(tmp_path), start_new_session=True)
    fh.close()
    return proc


def _service_info(out_dir: Path, name: str) -> dict:
    return json.loads((out_dir / f"{name}.json").read_text())


def test_devstack_runs_restarts_and_stops_everything(tmp_path):
    data_dir, out_dir, log = tmp_path / "data", tmp_path / "out", tmp_path / "wf-dev.log"
    out_dir.mkdir()
    ports = {n: free_port() for n in ("pg", "nats", "gateway", "orchestrator", "step-runner", "scheduler")}
    proc = _run_devstack(tmp_path, data_dir, out_dir, log, ports)
    try:
        wait_for(lambda: "Gateway ready at" in log.read_text(), timeout=60,
                 message="wf-dev to report the gateway ready")
        text = log.read_text()
        assert f"Gateway ready at http://127.0.0.1:{ports['gateway']}" in text
        assert "curl" in text
        infos = {n: wait_for(lambda n=n: _service_info(out_dir, n), timeout=20)
                 for n in ("gateway", "orchestrator", "step-runner", "scheduler")}
        dsn = infos["gateway"]["DATABASE_URL"]
        assert dsn == f"postgresql://postgres@127.0.0.1:{ports['pg']}/postgres"
        assert infos["orchestrator"]["NATS_URL"] == f"nats://127.0.0.1:{ports['nats']}"
        assert infos["step-runner"]["OPS_PORT"] == str(ports["step-runner"])
        api_key = infos["gateway"]["WORKFLOW_BOOTSTRAP_API_KEY"]
        assert api_key and api_key in text
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO survivors VALUES (1, 'from the first make run')")

        # a crashed service is restarted
        old = infos["orchestrator"]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: _service_info(out_dir, "orchestrator")["pid"] != old, timeout=20,
                 message="orchestrator to be restarted")
        assert "orchestrator exited unexpectedly" in log.read_text()

        svc_pids = [_service_info(out_dir, n)["pid"] for n in infos]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        assert all(_gone(p) for p in svc_pids)
        text = log.read_text()
        assert "Postgres stopped" in text and "NATS stopped" in text
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # the next run finds the data (and the same dev API key)
    for f in out_dir.iterdir():
        f.unlink()
    proc = _run_devstack(tmp_path, data_dir, out_dir, log, ports)
    try:
        wait_for(lambda: log.read_text().count("Gateway ready at") == 2, timeout=60,
                 message="second wf-dev run to be ready")
        info = wait_for(lambda: _service_info(out_dir, "gateway"), timeout=20)
        assert info["WORKFLOW_BOOTSTRAP_API_KEY"] == api_key
        assert _rows(info["DATABASE_URL"]) == [(1, "from the first make run")]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
