"""Infrastructure helpers for the test suite.

- `postgres_for_tests(tmpdir)` / `nats_for_tests(tmpdir)`: real servers, from testcontainers when a Docker
  engine answers, else the embedded launchers in `wf_platform.embedded` (own data dir, free port).
  Both yield an object with `.dsn` / `.url` and `stop()`, `kill()`, `start()`.
- `ServiceProcess`: one service console script (`wf-gateway`, ...) as a subprocess with its own log file.
- `wait_for` / `async_wait_for`: poll a predicate instead of sleeping.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from wf_platform import embedded

VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- polling

def _describe(predicate: Callable, message: str | None, timeout: float, last_exc: BaseException | None) -> str:
    what = message or getattr(predicate, "__name__", repr(predicate))
    text = f"timed out after {timeout}s waiting for {what}"
    if last_exc is not None:
        text += f" (last error: {type(last_exc).__name__}: {last_exc})"
    return text


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05, message: str | None = None,
             ignore: tuple[type[BaseException], ...] = (Exception,)) -> Any:
    """Call `predicate` until it returns something truthy and return that; AssertionError after `timeout`.

    Exceptions of the types in `ignore` count as "not yet" (the last one is reported on timeout).
    """
    end = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as exc:
            last_exc = exc
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= end:
            raise AssertionError(_describe(predicate, message, timeout, last_exc))
        time.sleep(interval)


async def async_wait_for(predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 30, interval: float = 0.05,
                         message: str | None = None,
                         ignore: tuple[type[BaseException], ...] = (Exception,)) -> Any:
    """Async `wait_for`: `predicate` may be a plain function or return an awaitable (e.g. an async def)."""
    end = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except AssertionError as exc:
            last_exc = exc
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= end:
            raise AssertionError(_describe(predicate, message, timeout, last_exc))
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- docker

@functools.lru_cache(maxsize=1)
def docker_available() -> bool:
    """A Docker engine answers `docker info` within 3 s (False on any error; cached per process)."""
    if os.environ.get("WF_TESTS_NO_DOCKER"):
        return False
    exe = shutil.which("docker")
    if not exe:
        return False
    try:
        res = subprocess.run([exe, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3)
        return res.returncode == 0
    except Exception:
        return False


class _DockerServer:
    """stop/kill/start on a testcontainers container; the host port is looked up again after a restart."""

    def __init__(self, container, internal_port: int, ready: Callable[["_DockerServer"], bool]):
        self.container = container
        self.internal_port = internal_port
        self._ready = ready

    @property
    def host(self) -> str:
        return self.container.get_container_host_ip()

    @property
    def port(self) -> int:
        return int(self.container.get_exposed_port(self.internal_port))

    @property
    def pid(self) -> int | None:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return wrapped.attrs.get("State", {}).get("Pid") or None

    def wait_ready(self, deadline: float = 30) -> None:
        wait_for(lambda: self._ready(self), timeout=deadline, message=f"{self.container.image} to be ready")

    def start(self) -> "_DockerServer":
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status != "running":
            wrapped.start()
        self.wait_ready()
        return self

    def stop(self, timeout: float = 30) -> None:
        self.container.get_wrapped_container().stop(timeout=int(timeout))

    def kill(self) -> None:
        self.container.get_wrapped_container().kill()

    def remove(self) -> None:
        self.container.stop()


class DockerPostgres(_DockerServer):
    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:postgres@{self.host}:{self.port}/postgres"

    url = dsn

    def stop_immediate(self) -> None:
        self.container.get_wrapped_container().kill(signal="SIGQUIT")
        wait_for(lambda: self.container.get_wrapped_container().reload()
                 or self.container.get_wrapped_container().status != "running", timeout=30)


class DockerNats(_DockerServer):
    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


def _pg_ready(server: _DockerServer) -> bool:
    import psycopg

    with psycopg.connect(server.dsn, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def _nats_ready(server: _DockerServer) -> bool:
    return embedded.jetstream_ready(server.host, server.port)


# --------------------------------------------------------------------------- servers

@contextlib.contextmanager
def postgres_for_tests(tmpdir: Path | str) -> Iterator[Any]:
    """A Postgres 16 for one test (module, session...): docker if available, else embedded in tmpdir/postgres."""
    if docker_available():
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers layout
            from testcontainers.postgres import PostgresContainer
        container = PostgresContainer("postgres:16", username="postgres", password="postgres", dbname="postgres",
                                      driver=None)
        container.start()
        server = DockerPostgres(container, 5432, _pg_ready)
        try:
            server.wait_ready()
            yield server
        finally:
            server.remove()
        return
    server = embedded.start_postgres(Path(tmpdir) / "postgres")
    try:
        yield server
    finally:
        server.stop()


NATS_TEST_CONF = """\
listen: "0.0.0.0:4222"
max_payload: 16MB
jetstream {
  store_dir: "/data"
  sync_interval: always
}
"""


@contextlib.contextmanager
def nats_for_tests(tmpdir: Path | str, sync_always: bool = True) -> Iterator[Any]:
    """A NATS with JetStream for one test: docker nats:2.11 if available, else embedded in tmpdir/nats."""
    if docker_available():
        from testcontainers.core.container import DockerContainer

        container = DockerContainer("nats:2.11").with_exposed_ports(4222)
        if sync_always:
            container = (container.with_copy_into_container(NATS_TEST_CONF.encode(), "/etc/nats/wf.conf")
                         .with_command("-c /etc/nats/wf.conf"))
        else:
            container = container.with_command("-js -sd /data")
        container.start()
        server = DockerNats(container, 4222, _nats_ready)
        try:
            server.wait_ready()
            yield server
        finally:
            server.remove()
        return
    server = embedded.start_nats(Path(tmpdir) / "nats", sync_always=sync_always)
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- services

def resolve_command(command: str) -> str:
    """A console script from the venv's bin dir first, then PATH."""
    candidate = VENV_BIN / command
    if candidate.exists():
        return str(candidate)
    found = shutil.which(command)
    if not found:
        raise FileNotFoundError(f"console script {command!r} not found in {VENV_BIN} or PATH")
    return found


class ServiceProcess:
    """A service (`wf-gateway`, `wf-orchestrator`, ...) run as a subprocess with its own log file.

    `env` is laid over the current environment (pass `inherit_env=False` to use it alone).
    The process runs in its own session: `kill()` SIGKILLs its whole process group (like a crashed
    container), `terminate()` sends SIGTERM to the service and lets it shut down on its own.
    """

    def __init__(self, command: str | list[str], env: dict[str, str] | None = None, log_dir: Path | str | None = None,
                 *, name: str | None = None, args: list[str] | None = None, inherit_env: bool = True):
        if isinstance(command, str):
            self.argv = [resolve_command(command), *(args or [])]
            default_name = command
        else:
            self.argv = [*command, *(args or [])]
            default_name = Path(command[0]).name
        self.name = name or default_name
        base = dict(os.environ) if inherit_env else {}
        base.update(env or {})
        self.env = base
        if log_dir is None:
            import tempfile

            log_dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- state
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    # -- lifecycle
    def start(self) -> "ServiceProcess":
        if self.running:
            return self
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=embedded.parent_death_preexec(signal.SIGKILL))
        return self

    def wait_ready(self, url: str, deadline: float = 60) -> None:
        """Poll `url` until it answers 200; AssertionError (with the log's tail) if the process exits or time runs out."""
        end = time.monotonic() + deadline
        last: str = "no answer yet"
        while True:
            if not self.running:
                raise AssertionError(f"{self.name} exited with code {self.returncode} before {url} was ready; "
                                     f"log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() >= end:
                raise AssertionError(f"{self.name}: {url} not ready after {deadline}s ({last}); "
                                     f"log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the group. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
                self.proc.wait()
        self._reap_group()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the service and everything in its process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._killpg()
            self.proc.wait()
        self._reap_group()

    def restart(self, timeout: float = 15) -> "ServiceProcess":
        self.terminate(timeout)
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.terminate()

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, pid={self.pid}, log={str(self.log_path)!r})"

    # -- internals
    def _killpg(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _reap_group(self) -> None:
        """Children the service left behind in its group (e.g. script steps) go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
