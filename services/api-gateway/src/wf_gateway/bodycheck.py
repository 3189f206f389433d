"""Refuse JSON bodies that would crash something further in, with a clear 422, before routing.

What it catches, and where it would otherwise break:
- bytes that are not UTF-8, and malformed JSON (the framework would answer a vague 400);
- nesting deeper than MAX_DEPTH (recursion limits in the parser, pydantic, the validator);
- NUL characters and lone surrogates in strings or keys (Postgres text and jsonb refuse them);
- NaN/Infinity and integers outside 64 bits (msgspec, which encodes events, refuses them).
The body is read once (BodyLimit, outside this, has already capped its size) and handed on.
"""
import json
import re
from typing import Any

from .problems import problem_response

MAX_DEPTH = 64
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_JSON_TYPES = ("application/json",)


class _Bad(Exception):
    pass


def _constant(name: str) -> Any:
    raise _Bad(f"'{name}' is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Bad(f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise _Bad(f"integer {text[:40]} is out of range (64 bits)")
    return value


def check_json(data: bytes) -> str | None:
    """Why ``data`` is not an acceptable JSON body, or None when it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"Request body is not valid UTF-8 (byte {exc.start})."
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Bad as exc:
        return f"Request body is not acceptable JSON: {exc}."
    except RecursionError:
        return f"Request body is nested too deeply (at most {MAX_DEPTH} levels)."
    except ValueError as exc:
        return f"Request body is not valid JSON: {str(exc)[:200]}."
    return _walk(value)


def _walk(root: Any) -> str | None:
    stack = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _BAD_CHARS.search(value):
                return "Request body holds a NUL character or a lone surrogate, which cannot be stored."
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"Request body is nested too deeply (at most {MAX_DEPTH} levels)."
            if isinstance(value, dict):
                for k, v in value.items():
                    if _BAD_CHARS.search(k):
                        return "Request body holds a NUL character or a lone surrogate, which cannot be stored."
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in value)
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media in _JSON_TYPES or media.endswith("+json")


class BodyCheck:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1")
        if not _is_json(content_type):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        problem = check_json(body) if body else None
        if problem:
            return await problem_response(422, problem)(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
