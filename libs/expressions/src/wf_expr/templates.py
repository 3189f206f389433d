"""``{{ <CEL> }}`` templates inside step configs, and secret placeholders.

Syntax
------
A template starts at ``{{`` and ends at the first ``}}`` that is outside a CEL string
literal and outside braces opened inside the template, so ``{{ {'a': {'b': 1}} }}`` and
``{{ 'x}}y' }}`` work. A ``{{`` without a closing ``}}`` is an error (``unterminated
template``). To produce a literal ``{{``, write ``{{ '{{' }}``. Only string *values* are
templated (recursively through dicts and lists); dict keys are left as they are.

Rendering
---------
- A string that is exactly one template (whitespace around it allowed) becomes the
  expression's value with its type: ``"{{ input.ids }}"`` -> ``[1, 2]``.
- Otherwise every template is replaced by text: strings verbatim, everything else as
  compact JSON (``true``, ``false``, ``null``, ``3``, ``1.5``, ``{"a":1}``, ``[1,2]``).
- A failing expression raises ``ExpressionError`` naming the expression.

Secrets
-------
The orchestrator renders configs but must never see or store secret values. It calls
``render(config, variables, secret_placeholders=True)``: each ``secrets.NAME`` then
evaluates to the marker ``secret_marker(NAME)`` (``"\\x1esecret:NAME\\x1e"``; U+001E, not
NUL, because Postgres jsonb rejects ``\\u0000``). Markers only survive being placed in a
string or concatenated; computing on a secret (``size(secrets.X)``, comparisons) sees the
marker, not the value. Secrets must be referenced as ``secrets.NAME`` (not ``secrets[x]``).
When ``variables["secrets"]`` is a mapping, its keys are the known names and any other
name fails at render time; otherwise every name is accepted and checked by the runner.

The step-runner then calls ``substitute_secrets(config, secret_values)`` to put the real
values in (an unknown name raises ``ExpressionError``), and ``redact(output, secret_values)``
on everything it reports back, which replaces every secret value by ``***``.

Marker forgery: a placeholder render neutralises every U+001E it did not create itself
(each render uses a fresh random nonce internally), so an input value or step output
carrying a marker-like string can never be turned into a secret by the runner. Apply
``substitute_secrets`` only to values produced by a placeholder render.
"""
from __future__ import annotations

import json
import re
import secrets as _random
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from .cel import ExpressionError, _skip_string, compile_expr

__all__ = [
    "ExpressionError",
    "exact_template",
    "find_templates",
    "has_templates",
    "redact",
    "referenced_secrets",
    "render",
    "secret_marker",
    "split_template",
    "substitute_secrets",
]

_SENTINEL = "\x1e"
_NONCE_SEP = "\x1f"
_SECRET_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SECRET_NAME_RE = re.compile(_SECRET_NAME + r"\Z")
_MARKER_RE = re.compile(_SENTINEL + "secret:(" + _SECRET_NAME + ")" + _SENTINEL)
_RAW_MARKER_RE = re.compile(
    _SENTINEL + "(?:secret:(" + _SECRET_NAME + ")" + _NONCE_SEP + "([0-9a-f]{32})" + _SENTINEL + ")?"
)
REDACTED = "***"


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


class _Unterminated(Exception):
    def __init__(self, start: int):
        self.start = start


def split_template(text: str) -> list[str | tuple[str]]:
    """Split ``text`` into literal strings and ``(expression,)`` tuples.

    Raises ``ExpressionError`` (compile phase) for an unterminated ``{{``.
    """
    try:
        return _split(text)
    except _Unterminated as exc:
        rest = text[exc.start:]
        raise ExpressionError(rest if len(rest) <= 200 else rest[:200] + "…",
                              "unterminated template, missing '}}'", "compile") from None


def _split(text: str) -> list[str | tuple[str]]:
    parts: list[str | tuple[str]] = []
    pos = 0
    n = len(text)
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        i = start + 2
        depth = 0
        end = -1
        while i < n:
            c = text[i]
            if c == "'" or c == '"':
                i = _skip_string(text, i)
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth > 0:
                    depth -= 1
                elif i + 1 < n and text[i + 1] == "}":
                    end = i
                    break
            i += 1
        if end < 0:
            raise _Unterminated(start)
        if start > pos:
            parts.append(text[pos:start])
        parts.append((text[start + 2:end].strip(),))
        pos = end + 2
    if pos < n or not parts:
        parts.append(text[pos:])
    return parts


def exact_template(text: str) -> str | None:
    """The expression when ``text`` is exactly one template (whitespace around allowed)."""
    if not isinstance(text, str) or "{{" not in text:
        return None
    stripped = text.strip()
    if not stripped.startswith("{{"):
        return None
    try:
        parts = _split(stripped)
    except _Unterminated:
        return None
    if len(parts) == 1 and isinstance(parts[0], tuple):
        return parts[0][0]
    return None


def has_templates(text: Any) -> bool:
    return isinstance(text, str) and "{{" in text


def _walk_strings(value: Any) -> Iterable[str]:
    """Every string value inside ``value`` (dicts and lists, iteratively; keys skipped)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))


def find_templates(value: Any) -> list[str]:
    """Every distinct template expression in ``value``, in document order.

    Raises ``ExpressionError`` (compile phase) for an unterminated ``{{``.
    """
    seen: dict[str, None] = {}
    for s in _walk_strings(value):
        if "{{" not in s:
            continue
        for part in split_template(s):
            if isinstance(part, tuple):
                seen.setdefault(part[0], None)
    return list(seen)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Renderer:
    def __init__(self, variables: Mapping[str, Any] | None, placeholders: bool):
        self.variables = dict(variables or {})
        self.placeholders = placeholders
        self.nonce = _random.token_hex(16) if placeholders else ""
        known = self.variables.get("secrets")
        self.known_secrets = set(known) if placeholders and isinstance(known, Mapping) else None

    def eval(self, expr: str) -> Any:
        compiled = compile_expr(expr)
        variables = self.variables
        if self.placeholders and "secrets" in compiled.variables:
            names = compiled.fields.get("secrets")
            if names is None:
                raise ExpressionError(expr, "secrets can only be referenced as secrets.NAME")
            markers = {
                name: f"{_SENTINEL}secret:{name}{_NONCE_SEP}{self.nonce}{_SENTINEL}"
                for name in names
                if _SECRET_NAME_RE.match(name)
                and (self.known_secrets is None or name in self.known_secrets)
            }
            variables = {**variables, "secrets": markers}
        return compiled.evaluate(variables)

    def render_string(self, text: str) -> Any:
        if "{{" not in text:
            return text
        parts = split_template(text)
        if len(parts) == 1 and isinstance(parts[0], tuple):
            return self.eval(parts[0][0])
        stripped = text.strip()
        if stripped != text:
            inner = split_template(stripped)
            if len(inner) == 1 and isinstance(inner[0], tuple):
                return self.eval(inner[0][0])
        out = []
        for part in parts:
            if isinstance(part, tuple):
                value = self.eval(part[0])
                try:
                    out.append(_to_text(value))
                except (TypeError, ValueError) as exc:
                    raise ExpressionError(part[0], f"cannot interpolate value as text: {exc}") from None
            else:
                out.append(part)
        return "".join(out)

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.render_string(value)
        if isinstance(value, Mapping):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, tuple):
            return [self.render(v) for v in value]
        return value

    # --- placeholder post-processing -------------------------------------------------

    def _fix(self, m: re.Match) -> str:
        if m.group(1) is not None and m.group(2) == self.nonce:
            return secret_marker(m.group(1))
        return "\ufffd" + m.group(0)[1:].replace(_SENTINEL, "\ufffd")

    def finalize(self, value: Any) -> Any:
        """Turn this render's markers into canonical ones and neutralise every other U+001E."""
        if isinstance(value, str):
            return _RAW_MARKER_RE.sub(self._fix, value) if _SENTINEL in value else value
        if isinstance(value, Mapping):
            return {self.finalize(k) if isinstance(k, str) else k: self.finalize(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.finalize(v) for v in value]
        return value


def render(value: Any, variables: Mapping[str, Any] | None = None, *,
           secret_placeholders: bool = False) -> Any:
    """Render every template in ``value`` (a string, or dicts/lists of them); returns a new value.

    With ``secret_placeholders=True`` secrets become markers (see the module docstring).
    Raises ``ExpressionError``.
    """
    renderer = _Renderer(variables, secret_placeholders)
    try:
        result = renderer.render(value)
        if secret_placeholders:
            result = renderer.finalize(result)
    except RecursionError:
        raise ExpressionError("", "configuration is too deeply nested") from None
    return result


# --------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------


def secret_marker(name: str) -> str:
    """The placeholder a placeholder render leaves for ``secrets.<name>``."""
    return f"{_SENTINEL}secret:{name}{_SENTINEL}"


def referenced_secrets(value: Any) -> set[str]:
    """Names of the secret markers inside a rendered value."""
    names: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SENTINEL in v:
                names.update(_MARKER_RE.findall(v))
        elif isinstance(v, Mapping):
            stack.extend(k for k in v.keys() if isinstance(k, str))
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return names


def substitute_secrets(value: Any, secrets: Mapping[str, str]) -> Any:
    """Replace every secret marker by the secret's value (recursively); returns a new value.

    Raises ``ExpressionError("secrets.NAME", "unknown secret 'NAME'")`` for a name not in
    ``secrets``.
    """

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in secrets:
            raise ExpressionError(f"secrets.{name}", f"unknown secret '{name}'")
        return str(secrets[name])

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return _MARKER_RE.sub(repl, v) if _SENTINEL in v else v
        if isinstance(v, Mapping):
            return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        return v

    return walk(value)


def _variants(secret: str) -> set[str]:
    out = {secret}
    out.add(json.dumps(secret)[1:-1])
    out.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    out.add(quote(secret, safe=""))
    out.add(quote_plus(secret, safe=""))
    return {v for v in out if v}


def _redaction_pattern(values: Iterable[str]) -> re.Pattern | None:
    texts: set[str] = set()
    for v in values:
        if v is None:
            continue
        v = str(v)
        if v:
            texts |= _variants(v)
    if not texts:
        return None
    ordered = sorted(texts, key=len, reverse=True)  # longest first: a secret may contain another
    return re.compile("|".join(re.escape(t) for t in ordered))


def redact(value: Any, secrets: Mapping[str, str] | Iterable[str]) -> Any:
    """Replace every (non-empty) secret value inside ``value`` by ``***``; returns a new value.

    ``secrets`` is a mapping name -> value or an iterable of values. Strings are searched
    recursively through dicts (keys too), lists and tuples; JSON-escaped and URL-encoded
    forms of a secret are redacted as well. Bytes are redacted as UTF-8.
    """
    values = secrets.values() if isinstance(secrets, Mapping) else secrets
    pattern = _redaction_pattern(values)
    if pattern is None:
        return value
    bpattern = None

    def walk(v: Any) -> Any:
        nonlocal bpattern
        if isinstance(v, str):
            return pattern.sub(REDACTED, v)
        if isinstance(v, Mapping):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        if isinstance(v, (bytes, bytearray)):
            if bpattern is None:
                bpattern = re.compile(pattern.pattern.encode("utf-8"))
            return bpattern.sub(REDACTED.encode(), bytes(v))
        return v

    return walk(value)
