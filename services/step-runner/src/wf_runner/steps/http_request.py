"""http_request: one outbound HTTP call (SPEC §6), through the egress guard."""
import json as jsonlib
from typing import Any

from .. import egress
from .base import StepContext, StepError

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def parse_body(headers: dict[str, str], raw: bytes) -> Any:
    ctype = headers.get("content-type", "")
    text = raw.decode("utf-8", errors="replace")
    if "json" in ctype.lower():
        try:
            return jsonlib.loads(text)
        except ValueError:
            return text
    return text


class HttpRequestStep:
    type = "http_request"

    def __init__(self, settings) -> None:
        self.policy = egress.EgressPolicy.from_env(settings.egress_allow)
        self.max_bytes = settings.max_response_bytes

    async def execute(self, ctx: StepContext) -> Any:
        c = ctx.config
        method = str(c.get("method", "GET")).upper()
        if method not in METHODS:
            raise StepError(f"unsupported method '{method}'", retryable=False)
        url = c.get("url")
        if not isinstance(url, str) or not url:
            raise StepError("config.url must be a non-empty string", retryable=False)
        headers = {str(k): str(v) for k, v in (c.get("headers") or {}).items()}
        headers["Idempotency-Key"] = ctx.idempotency_key
        timeout = float(c.get("timeout_seconds", 30))
        kwargs: dict[str, Any] = {}
        if "json" in c:
            kwargs["json"] = c["json"]
        elif "body" in c:
            body = c["body"]
            kwargs["content"] = body if isinstance(body, str) else jsonlib.dumps(body)
        try:
            resp = await egress.safe_request(
                self.policy, method, url, headers=headers, params=c.get("query") or None,
                follow_redirects=bool(c.get("follow_redirects", False)), max_bytes=self.max_bytes,
                timeout=timeout, cancel=ctx.cancel, **kwargs,
            )
        except egress.EgressDenied as exc:
            raise StepError(str(exc), retryable=False, error_type="egress_denied") from exc
        except egress.ResponseTooLarge as exc:
            raise StepError(str(exc), retryable=False, error_type="response_too_large") from exc
        except egress.RequestFailed as exc:
            raise StepError(str(exc), retryable=True, error_type="network") from exc
        resp_headers = {k.lower(): v for k, v in resp.headers.items()}
        output = {"status_code": resp.status_code, "headers": resp_headers,
                  "body": parse_body(resp_headers, resp.body)}
        expected = c.get("expected_status")
        good = resp.status_code in expected if expected else 200 <= resp.status_code < 300
        if not good:
            raise StepError(f"unexpected status {resp.status_code} from {method} {egress.safe_url(url)}",
                            retryable=resp.status_code >= 500 or resp.status_code == 429, error_type="http_status")
        return output
