"""Run one untrusted child process with limits (SPEC §6 `script`).

Layers, each applied when available:
- bubblewrap (probed once, cached): no network, its own user/pid/ipc/uts namespaces, a fresh /proc,
  read-only /usr and a minimal /etc, a size-limited tmpfs /tmp; only the working directory is
  writable. When the child exits, its pid namespace dies with every process it started.
- when the runner is root, a uid of its own per concurrent sandbox (a range with no passwd entries,
  slots held with flock so several runner processes on one host never share one). RLIMIT_NPROC
  counts per uid, so one sandbox's fork bomb cannot starve another, and `kill(-1)` as that uid
  ends every process the sandbox left behind, even ones that called setsid().
- rlimits (address space, CPU, file size, processes, open files, no core files), an environment
  holding only what the caller passes plus PATH/HOME/LANG, a fresh empty working directory that
  is removed afterwards, stdout/stderr capped while still being drained.
- a wall-clock timeout and a cancel event: SIGKILL to the process group (and the uid).

Without bubblewrap the child shares the host's network, /tmp and view of /proc; rlimits, the uid,
the environment and the working directory still apply. Without root there is no uid switch: the
child runs as the runner's own user and a child that escapes its process group may survive.
"""
from __future__ import annotations

import asyncio
import fcntl
import functools
import math
import os
import random
import resource
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

MiB = 1 << 20
Isolation = Literal["auto", "bwrap", "basic"]

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
UID_BASE = 1_900_000_000          # sandbox uids: UID_BASE + slot; no passwd entries
UID_SLOTS = 1024
SLOT_DIRS = ("/run/wf-sandbox", os.path.join(tempfile.gettempdir(), "wf-sandbox-slots"))  # flock files
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
              "/etc/localtime", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group")
_ROOT_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_BOUND_TOP = ("", "usr", "bin", "sbin", "lib", "lib64")   # top-level dirs every sandbox has already
_GRACE = 0.5                      # seconds to wait for output pipes to close after the kill


class SandboxUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 512 * MiB     # RLIMIT_AS, per process
    file_size_bytes: int = 64 * MiB   # RLIMIT_FSIZE
    max_processes: int = 64           # RLIMIT_NPROC, per uid
    open_files: int = 256             # RLIMIT_NOFILE
    cpu_seconds: int | None = None    # RLIMIT_CPU; None: the wall-clock timeout rounded up, + 1
    output_bytes: int = 1 * MiB       # kept per stream; the rest is read and dropped
    tmp_bytes: int = 64 * MiB         # size of the tmpfs /tmp (bwrap only)


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None             # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool
    cancelled: bool
    stdout_truncated: bool
    stderr_truncated: bool
    duration: float                   # seconds from spawn to exit
    isolation: str                    # "bwrap" or "basic"

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


# --- what the host offers (probed once per process) -------------------------------------------

_bwrap_probe: tuple[bool, str] | None = None


async def bwrap_status() -> tuple[bool, str]:
    """(usable, detail): whether `bwrap` is on PATH and can build a sandbox here."""
    global _bwrap_probe
    if _bwrap_probe is None:
        uid, fd = _acquire_uid_slot() if os.geteuid() == 0 else (None, None)
        try:
            _bwrap_probe = await _probe_bwrap(uid)
        finally:
            if fd is not None:
                os.close(fd)
    return _bwrap_probe


async def _probe_bwrap(uid: int | None) -> tuple[bool, str]:
    exe = shutil.which("bwrap")
    if exe is None:
        return False, "bwrap not found on PATH"
    argv = _bwrap_base(exe, Limits()) + ["--chdir", "/", "--", "/bin/sh", "-c", "exit 0"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={"PATH": BASE_PATH}, **_as_user(uid))
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, f"bwrap probe failed: {exc}"
    if proc.returncode != 0:
        return False, f"bwrap probe exited {proc.returncode}: {err.decode(errors='replace').strip()}"
    return True, exe


def _bwrap_base(exe: str, limits: Limits) -> list[str]:
    args = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr"]
    for d in _ROOT_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for f in _ETC_FILES:
        args += ["--ro-bind-try", f, f]
    try:
        binds = interpreter(os.geteuid() == 0)[1]
    except SandboxUnavailable:   # no usable Python: shell scripts still run
        binds = ()
    for d in binds:
        args += ["--ro-bind", d, d]
    return args + ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]


@functools.lru_cache(maxsize=None)
def interpreter(switch_user: bool) -> tuple[str, tuple[str, ...]]:
    """(python executable, directories bwrap must bind for it).

    The real interpreter behind this process (realpath: never a venv link or a pyenv shim) when the
    sandbox user can read it; otherwise the system python3 (a pyenv build under /root is not).
    """
    exe, prefix = os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)
    if not os.access(exe, os.X_OK):
        exe = os.path.realpath(os.path.join(prefix, "bin", f"python{sys.version_info[0]}"))
    if not switch_user or (_open_to_others(exe) and _open_to_others(os.path.join(prefix, "lib"))):
        binds = {d for d in (prefix, os.path.dirname(exe)) if d.split("/")[1] not in _BOUND_TOP}
        return exe, tuple(sorted(d for d in binds if not any(d.startswith(o + "/") for o in binds)))
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if _open_to_others(cand):
            return os.path.realpath(cand), ()
    raise SandboxUnavailable(f"no Python interpreter readable by the sandbox user ({exe} is not)")


def _open_to_others(path: str) -> bool:
    """True when a uid with no relation to the owner can reach and read/execute `path`."""
    try:
        p = os.path.realpath(path)
        if os.stat(p).st_mode & 0o005 != 0o005:
            return False
        while p != "/":
            p = os.path.dirname(p)
            if not os.stat(p).st_mode & 0o001:
                return False
        return True
    except OSError:
        return False


# --- uid slots (root only) ----------------------------------------------------------------------

def _slot_dir() -> str:
    for d in SLOT_DIRS:
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError:
            continue
        st = os.lstat(d)   # refuse a directory someone else planted
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise SandboxUnavailable(f"{d} must be a root-owned directory not writable by others")
        return d
    raise SandboxUnavailable(f"cannot create any of {SLOT_DIRS}")


def _acquire_uid_slot() -> tuple[int, int]:
    """A uid no other sandbox (of any runner process on this host) uses until the fd is closed."""
    slot_dir = _slot_dir()
    start = random.randrange(UID_SLOTS)
    for i in range(UID_SLOTS):
        slot = (start + i) % UID_SLOTS
        fd = os.open(f"{slot_dir}/{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UID_BASE + slot, fd
    raise SandboxUnavailable("every sandbox uid slot is in use")


def _as_user(uid: int | None) -> dict:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


async def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as `uid`: kill(-1) from that uid reaches exactly those."""
    kill = shutil.which("kill", path=BASE_PATH)
    argv = [kill, "-KILL", "-1"] if kill else [interpreter(True)[0], "-I", "-S", "-c", "import os; os.kill(-1, 9)"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env={"PATH": BASE_PATH}, **_as_user(uid))
    await proc.wait()


# --- one child ----------------------------------------------------------------------------------

def _rlimit_setter(limits: Limits, timeout: float):
    cpu = limits.cpu_seconds or math.ceil(timeout) + 1
    wanted = [(resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
              (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
              (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
              (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
              (resource.RLIMIT_CPU, cpu, cpu + 1),
              (resource.RLIMIT_CORE, 0, 0)]
    pairs = []
    for res, soft, hard in wanted:      # computed before fork: the child only calls setrlimit
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        pairs.append((res, (soft, hard)))

    def apply() -> None:
        for res, value in pairs:
            resource.setrlimit(res, value)
    return apply


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Signals the child's exit at once: Process.wait() (3.11) also waits for every pipe to close,
    which a grandchild holding stdout can delay forever."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=1 << 16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


class _Capture:
    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.limit = limit
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.limit - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
            if len(chunk) > room:
                self.truncated = True   # keep reading so the child never blocks on a full pipe

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    try:
        if data:
            stream.write(data)
            await stream.drain()
        stream.close()
    except (BrokenPipeError, ConnectionResetError):
        pass   # the child exited or closed stdin without reading it all


def _check_env(env: Mapping[str, str]) -> None:
    for k, v in env.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or "=" in k or "\0" in k + v:
            raise ValueError(f"invalid environment variable {k!r}")


class Sandbox:
    """A fresh working directory plus the child processes run in it; removed on exit.

        async with Sandbox() as sb:
            path = sb.add_file("input.json", data)      # read-only for the child
            res = await sb.run(sb.python_argv(sb.add_file("main.py", code)), timeout=5)
    """

    def __init__(self, limits: Limits = Limits(), isolation: Isolation = "auto") -> None:
        self.limits = limits
        self._want = isolation
        self.isolation = "basic"
        self.uid: int | None = None       # the child's uid when the runner is root
        self._slot_fd: int | None = None
        self._root = self._in = self.workdir = ""
        self._bwrap = ""

    async def __aenter__(self) -> Sandbox:
        try:
            await self._setup()
        except BaseException:
            self._teardown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._teardown()

    async def _setup(self) -> None:
        if os.geteuid() == 0:
            self.uid, self._slot_fd = _acquire_uid_slot()
        if self._want != "basic":
            ok, detail = await bwrap_status()
            if ok:
                self.isolation, self._bwrap = "bwrap", detail
            elif self._want == "bwrap":
                raise SandboxUnavailable(detail)
        self._root = tempfile.mkdtemp(prefix="wfsbx-")
        self._in = os.path.join(self._root, "in")
        self.workdir = os.path.join(self._root, "work")
        os.mkdir(self._in, 0o750)
        os.mkdir(self.workdir, 0o700)
        if self.uid is not None:   # the child may traverse the root, read `in`, own `work`
            os.chown(self._root, 0, self.uid)
            os.chmod(self._root, 0o710)
            os.chown(self._in, 0, self.uid)
            os.chown(self.workdir, self.uid, self.uid)

    def _teardown(self) -> None:
        if self._root:
            shutil.rmtree(self._root, onerror=_force_remove)
            self._root = ""
        if self._slot_fd is not None:
            os.close(self._slot_fd)
            self._slot_fd = None

    def add_file(self, name: str, data: bytes) -> str:
        """Write a read-only input file for the child; returns its path as the child sees it."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid file name {name!r}")
        path = os.path.join(self._in, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if self.uid is not None:
            os.chown(path, 0, self.uid)
        return path

    def python_argv(self, *args: str) -> list[str]:
        return [interpreter(self.uid is not None)[0], "-I", "-S", "-B", *args]

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: bytes = b"",
                  env: Mapping[str, str] | None = None, cancel: asyncio.Event | None = None) -> SandboxResult:
        full_env = {"PATH": BASE_PATH, "HOME": self.workdir, "LANG": "C.UTF-8", **(env or {})}
        _check_env(full_env)
        cmd = list(argv)
        if self.isolation == "bwrap":
            cmd = _bwrap_base(self._bwrap, self.limits) + [
                "--ro-bind", self._in, self._in, "--bind", self.workdir, self.workdir,
                "--chdir", self.workdir, "--", *cmd]
        if cancel is not None and cancel.is_set():
            return self._result(None, _Capture(0), _Capture(0), False, True, 0.0)
        out, err = _Capture(self.limits.output_bytes), _Capture(self.limits.output_bytes)
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(loop), *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=full_env, cwd=self.workdir, start_new_session=True,
            preexec_fn=_rlimit_setter(self.limits, timeout), **_as_user(self.uid))
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        tasks = [asyncio.ensure_future(c) for c in (
            out.drain(proc.stdout), err.drain(proc.stderr), _feed(proc.stdin, stdin))]
        stopper = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        timed_out = cancelled = False
        try:
            done, _ = await asyncio.wait([t for t in (protocol.exited, stopper) if t], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if protocol.exited not in done:
                cancelled, timed_out = stopper in done, stopper not in done
            await self._kill_all(proc)        # also ends whatever the child left running
            await protocol.exited
            duration = time.monotonic() - start
            # EOF comes once every holder of the pipes is dead; a setsid() escapee out of our
            # reach (no root, no bwrap) could hold them forever, so give up after a grace period
            await asyncio.wait(tasks[:2], timeout=_GRACE)
        finally:
            if transport.get_returncode() is None:
                await self._kill_all(proc)
            for t in (*tasks, stopper):
                if t is not None and not t.done():
                    t.cancel()
            transport.close()
        return self._result(transport.get_returncode(), out, err, timed_out, cancelled, duration)

    async def _kill_all(self, proc: asyncio.subprocess.Process) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the group outlives its leader's pid only while used
        except ProcessLookupError:
            pass
        if self.uid is not None and self.isolation == "basic":
            await _kill_uid(self.uid)           # bwrap: the pid namespace already died with its init

    def _result(self, code, out: _Capture, err: _Capture, timed_out: bool, cancelled: bool,
                duration: float) -> SandboxResult:
        return SandboxResult(code, out.text(), err.text(), timed_out, cancelled, out.truncated,
                             err.truncated, duration, self.isolation)


def _force_remove(func, path, _exc_info) -> None:
    """rmtree fallback for a non-root runner whose child chmod-ed something to 000."""
    try:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            func(path)
    except OSError:
        pass


async def run_sandboxed(argv: Sequence[str], *, timeout: float, stdin: bytes = b"",
                        env: Mapping[str, str] | None = None, cancel: asyncio.Event | None = None,
                        limits: Limits = Limits(), isolation: Isolation = "auto") -> SandboxResult:
    async with Sandbox(limits, isolation) as sb:
        return await sb.run(argv, timeout=timeout, stdin=stdin, env=env, cancel=cancel)
