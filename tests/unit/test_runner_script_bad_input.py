"""Hostile scripts through the runner's execute path (issue 5 "Bad input"): each is contained, the
result is a clean value, and the runner process is unharmed. The sandbox-level versions of these
live in test_sandbox.py; here the whole step (config, limits, result, redaction) is exercised."""
import json
import os
import subprocess
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.unit.test_runner_execute import dispatch
from wf_runner.execute import Executor
from wf_runner.registry import build_registry
from wf_runner.settings import secrets_from_env

CANARY = f"canary-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def executor():
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKFLOW_SECRET_CANARY", CANARY)     # what a runner holds in its own environment
    settings = SimpleNamespace(egress_allow="", max_response_bytes=1 << 20, agents_file=None)
    yield Executor(build_registry(settings), secrets_from_env())
    mp.undo()


def runner_is_fine() -> None:
    assert subprocess.run(["true"]).returncode == 0          # can still fork
    assert os.environ["WORKFLOW_SECRET_CANARY"] == CANARY


async def run(executor, language: str, code: str, **kw):
    res = await executor.run(dispatch("script", {"language": language, "code": code, **kw}))
    assert CANARY not in json.dumps([res.output, res.error, res.metadata])
    return res


async def test_fork_bomb(executor):
    t0 = time.monotonic()
    res = await run(executor, "shell", ":(){ :|:& };:\nwait\necho survived", timeout_seconds=3)
    assert time.monotonic() - t0 < 6           # the process limit stopped it, or the time-out did
    assert res.ok or res.error_type in ("timeout", "script_error")
    runner_is_fine()


async def test_allocating_8_gib(executor):
    res = await run(executor, "python", "b = bytearray(8 << 30)\nprint('allocated')")
    assert not res.ok and res.error_type == "script_error" and "MemoryError" in res.error
    runner_is_fine()


async def test_writing_a_2_gib_file(executor):
    res = await run(executor, "shell", 'head -c 2147483648 /dev/zero > big\necho "rc=$? size=$(stat -c %s big)"')
    rc, size = (int(x.split("=")[1]) for x in res.output["stdout"].split())
    assert rc == 128 + 25 and size <= 64 << 20          # head was killed by SIGXFSZ at the limit
    runner_is_fine()


async def test_sleeping_past_the_timeout(executor):
    t0 = time.monotonic()
    res = await run(executor, "python", "import time\ntime.sleep(60)", timeout_seconds=0.5)
    assert not res.ok and res.error == "script timed out after 0.5s" and res.retryable
    assert time.monotonic() - t0 < 3


async def test_reading_proc_1_environ_and_the_runner_environment(executor):
    code = f"""
import json, os
found = []
for pid in ["1", "self", str(os.getppid())] + [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        if b"{CANARY}" in open(f"/proc/{{pid}}/environ", "rb").read():
            found.append(pid)
    except OSError:
        pass
print(json.dumps({{"found": found, "env_has_it": any("{CANARY}" in v for v in os.environ.values()),
                   "env_keys": sorted(os.environ)}}))
"""
    res = await run(executor, "python", code)
    assert res.ok, res.error
    out = res.output["result"]
    assert out["found"] == [] and out["env_has_it"] is False
    assert not any(k.startswith("WORKFLOW_SECRET") for k in out["env_keys"])


async def test_printing_a_secret_passed_in_env(executor):
    from wf_expr.templates import secret_marker
    res = await run(executor, "shell", 'echo "token=$TOKEN"; printf \'{"t":"%s"}\' "$TOKEN" >&2; exit 0',
                    env={"TOKEN": secret_marker("CANARY")})
    assert res.ok and res.output["stdout"] == "token=***\n" and res.output["stderr"] == '{"t":"***"}'
