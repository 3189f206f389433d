"""The `script` step (SPEC §6): user code run in a sandboxed child process."""
from __future__ import annotations

import json
import os
import signal
from typing import Any, Mapping

from wf_runner.sandbox import Isolation, Limits, Sandbox, SandboxResult, SandboxUnavailable
from wf_runner.steps.base import StepContext, StepError

DEFAULT_TIMEOUT = 60.0
TAIL_CHARS = 2048
REDACTED = "***"
SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"


class ScriptStep:
    type = "script"

    def __init__(self, limits: Limits = Limits(), isolation: Isolation = "auto") -> None:
        self.limits = limits
        self.isolation = isolation

    async def execute(self, ctx: StepContext) -> Any:
        language, code, timeout, env = _parse_config(ctx)
        payload = json.dumps({**ctx.context, "run_id": ctx.run_id, "step_id": ctx.step_id,
                              "attempt": ctx.attempt}, default=str).encode()
        try:
            async with Sandbox(self.limits, self.isolation) as sb:
                input_path = sb.add_file("input.json", payload)
                if language == "python":
                    argv = sb.python_argv(sb.add_file("main.py", code.encode()))
                else:
                    argv = [SHELL, sb.add_file("main.sh", code.encode())]
                res = await sb.run(argv, timeout=timeout, stdin=payload, cancel=ctx.cancel,
                                   env={**env, "WORKFLOW_INPUT": input_path})
        except (SandboxUnavailable, OSError) as exc:
            raise StepError(f"script sandbox failed: {exc}", error_type="sandbox_error") from None
        ctx.metadata["isolation"] = res.isolation
        return _outcome(res, timeout, _Redactor(ctx.secrets), self.limits.output_bytes)


def _parse_config(ctx: StepContext) -> tuple[str, str, float, dict[str, str]]:
    cfg = ctx.config
    language = cfg.get("language", "python")
    if language not in ("python", "shell"):
        raise _invalid(f"script language must be 'python' or 'shell', not {language!r}")
    code = cfg.get("code")
    if not isinstance(code, str) or not code.strip():
        raise _invalid("script needs 'code' (a non-empty string)")
    timeout = cfg.get("timeout_seconds", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise _invalid("script 'timeout_seconds' must be a positive number")
    if ctx.timeout_seconds is not None:
        timeout = min(timeout, ctx.timeout_seconds)
    env: dict[str, str] = {}
    raw_env = cfg.get("env") or {}
    if not isinstance(raw_env, dict):
        raise _invalid("script 'env' must be an object of strings")
    for key, value in raw_env.items():
        if isinstance(value, (int, float, bool)) and not isinstance(value, str):
            value = json.dumps(value)
        if not isinstance(value, str) or not key or "=" in key or "\0" in key + value:
            raise _invalid(f"script env {key!r} must be a string")
        env[key] = value
    return language, code, float(timeout), env


def _invalid(message: str) -> StepError:
    return StepError(message, retryable=False, error_type="invalid_config")


def _outcome(res: SandboxResult, timeout: float, redact: _Redactor, cap: int) -> dict[str, Any]:
    if res.cancelled:
        raise StepError("cancelled", retryable=False, error_type="cancelled")
    if res.timed_out:
        raise StepError(f"script timed out after {timeout:g}s", error_type="timeout")
    stdout, stderr = redact.text(res.stdout), redact.text(res.stderr)
    if res.exit_code != 0:
        code = res.exit_code
        how = f"exited with code {code}"
        if code is not None and code < 0:
            how = f"was killed by signal {-code} ({signal.Signals(-code).name}), exit code {code}"
        tail = stderr[-TAIL_CHARS:].strip() or "(no stderr)"
        raise StepError(f"script {how}: {tail}", error_type="script_error")
    result = None
    try:
        result = redact.value(json.loads(res.stdout.strip()))
    except ValueError:
        pass
    mark = f"\n[truncated: more than {cap} bytes]"
    return {"exit_code": 0, "stdout": stdout + (mark if res.stdout_truncated else ""),
            "stderr": stderr + (mark if res.stderr_truncated else ""), "result": result}


class _Redactor:
    """Replaces every secret value, raw or JSON-escaped, by ***; longest first."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        forms: set[str] = set()
        for v in secrets.values():
            if isinstance(v, str) and v:
                forms |= {v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]}
        self._forms = sorted(forms, key=len, reverse=True)

    def text(self, s: str) -> str:
        for form in self._forms:
            s = s.replace(form, REDACTED)
        return s

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {self.text(k): self.value(x) for k, x in v.items()}
        return v
