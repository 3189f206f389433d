"""http_request: one outbound HTTP call (SPEC §6), through the egress guard."""
import json as jsonlib
from typing import Any, Mapping

from wf_platform import faults

from .. import egress
from .base import StepContext, StepError, number

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
DEFAULT_TIMEOUT = 30.0
ERROR_EXCERPT = 200     # characters of an unexpected answer's body kept in the error: enough to debug


def parse_body(resp: egress.SafeResponse) -> Any:
    """JSON when the response says so (application/json, +json), text otherwise."""
    text = resp.text
    if "json" in resp.headers.get("content-type", "").lower() and text.strip():
        try:
            return jsonlib.loads(text)
        except ValueError:
            return text   # a server that lies about its content type: keep what it sent
    return text


def outbound_headers(raw: Any, ctx: StepContext) -> dict[str, str]:
    """The configured headers plus our Idempotency-Key, which replaces any configured one
    (SPEC §6: every call carries `<run_id>:<step_id>:<attempt>`), and, unless the step sets its
    own, a User-Agent naming this runner instance, so a receiver that sees a key twice can tell
    which runner sent each copy."""
    if raw is not None and not isinstance(raw, Mapping):
        raise invalid("config.headers must be an object")
    headers = {str(k): str(v) for k, v in (raw or {}).items() if str(k).lower() != "idempotency-key"}
    headers["Idempotency-Key"] = ctx.idempotency_key
    if ctx.runner and not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = f"wf-step-runner/{ctx.runner}"
    return headers


def invalid(message: str) -> StepError:
    return StepError(message, retryable=False, error_type="invalid_config")


def expected_statuses(raw: Any) -> set[int] | None:
    if raw is None:
        return None
    try:
        codes = {int(x) for x in raw} if isinstance(raw, list) and raw else None
    except (TypeError, ValueError):
        codes = None
    if not codes:
        raise invalid("config.expected_status must be a non-empty list of status codes")
    return codes


class HttpRequestStep:
    type = "http_request"

    def __init__(self, settings, policy: egress.EgressPolicy | None = None) -> None:
        self.policy = policy or egress.EgressPolicy.from_env(settings.egress_allow)
        self.max_bytes = settings.max_response_bytes

    async def execute(self, ctx: StepContext) -> Any:
        c = ctx.config
        method = str(c.get("method") or "GET").upper()
        if method not in METHODS:
            raise invalid(f"unsupported method '{method}'")
        url = c.get("url")
        if not isinstance(url, str) or not url:
            raise invalid("config.url must be a non-empty string")
        query = c.get("query")
        if query is not None and not isinstance(query, Mapping):
            raise invalid("config.query must be an object")
        timeout = ctx.time_limit(number(c, "timeout_seconds", DEFAULT_TIMEOUT))
        expected = expected_statuses(c.get("expected_status"))
        kwargs: dict[str, Any] = {}
        if c.get("json") is not None:
            kwargs["json"] = c["json"]
        elif c.get("body") is not None:
            body = c["body"]
            kwargs["content"] = body if isinstance(body, str) else jsonlib.dumps(body)
        resp = await egress.safe_request(
            self.policy, method, url, headers=outbound_headers(c.get("headers"), ctx), params=query or None,
            follow_redirects=c.get("follow_redirects") is True, max_bytes=self.max_bytes,
            timeout=timeout, cancel=ctx.cancel, **kwargs,
        )   # raises StepError subclasses: egress_denied, response_too_large, network, cancelled
        faults.crash_point("runner_after_effect", ctx.idempotency_key)
        if resp.redirects:
            ctx.metadata["redirects"], ctx.metadata["final_url"] = resp.redirects, egress.safe_url(resp.url)
        output = {"status_code": resp.status_code, "headers": {k.lower(): v for k, v in resp.headers.items()},
                  "body": parse_body(resp)}
        good = resp.status_code in expected if expected else 200 <= resp.status_code < 300
        if not good:
            excerpt = " ".join(resp.text[:ERROR_EXCERPT].split())
            raise StepError(f"unexpected status {resp.status_code} from {method} {egress.safe_url(url)}"
                            + (f": {excerpt}" if excerpt else ""),
                            retryable=resp.status_code >= 500 or resp.status_code in (408, 429),
                            error_type="http_status")
        return output
