"""CEL expressions: compiled once (LRU-cached), evaluated to plain JSON-like Python values.

Backed by the Rust ``common-expression-language`` package (import name ``cel``).

Public API
----------
- ``compile_expr(expr) -> CompiledExpr`` (cached, maxsize 4096; raises ``ExpressionError``
  with ``phase="compile"`` for syntax errors and for references to unknown variables).
- ``evaluate(expr, variables) -> Any``: plain Python result (dict/list/str/int/float/bool/None).
- ``evaluate_bool(expr, variables) -> bool``: for ``if``, ``condition.expression`` and
  ``wait.condition``; the result must be a bool. Accepts a bare CEL expression or one
  wrapped in a single ``{{ }}`` template (see ``unwrap``).
- ``unwrap(expr) -> str``: ``"{{ a > 1 }}" -> "a > 1"``; any other string is returned unchanged.
- ``ExpressionError(expr, reason, phase="evaluate")``; ``str()`` is
  ``invalid expression '<expr>': <reason>`` (compile) or ``expression '<expr>' failed: <reason>``.

Variables: ``input``, ``steps`` (step id -> {"output", "status"}), ``run`` ({"id",
"workflow_id", "trigger"}), ``item``, ``index``, ``secrets``. Any other free identifier is
rejected at compile time (``undeclared reference to 'x'``), except CEL type names
(``int``, ``string``...) and function namespaces (``math``, ``optional``...).

Functions: the CEL standard library plus the extension libraries of ``cel.stdlib``
(``lowerAscii``, ``split``, ``join``, ``math.greatest``, ``base64.encode``, ``lists.range``
(capped at 10,000 items), ...). They are registered only for expressions that call them.

Results are converted to JSON-compatible values: timestamps become RFC 3339 strings (UTC,
``Z``), durations become float seconds, bytes become text when valid UTF-8 and base64
otherwise, optionals become their value or None, non-string map keys become strings.
A NaN or infinite float in the result is an evaluation error (it could not be stored as JSON).

Only the top-level variables an expression references are handed to CEL, and when every
use of a map variable is a plain field selection (``steps.fetch.output``), only the selected
entries of it are: big outputs of unrelated steps are never converted.
"""
from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

import cel as _cel
from cel import stdlib as _stdlib

# The cel package logs a WARNING for every failing extension-function call; those are user
# errors we report as ExpressionError, not operational warnings.
logging.getLogger("cel").setLevel(logging.ERROR)

__all__ = [
    "VARIABLES",
    "CompiledExpr",
    "ExpressionError",
    "compile_expr",
    "evaluate",
    "evaluate_bool",
    "unwrap",
]

#: Variables an expression may reference.
VARIABLES: frozenset[str] = frozenset({"input", "steps", "run", "item", "index", "secrets"})

#: Identifiers that are not variables but may appear as such in ``Program.variables()``:
#: CEL type names (``type(x) == int``) and function namespaces (``math.greatest``).
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
     "timestamp", "duration", "dyn"}
)
_NAMESPACES = frozenset({"math", "sets", "base64", "strings", "lists", "optional"})
_STDLIB_NAMESPACES = frozenset({"math", "sets", "base64", "strings", "lists"})

MAX_EXPRESSION_LENGTH = 10_000
_MAX_RANGE = 10_000


class ExpressionError(Exception):
    """An expression that does not compile (``phase="compile"``) or fails to evaluate."""

    def __init__(self, expr: str, reason: str, phase: Literal["compile", "evaluate"] = "evaluate"):
        self.expr = expr
        self.reason = reason
        self.phase = phase
        if phase == "compile":
            message = f"invalid expression '{expr}': {reason}"
        else:
            message = f"expression '{expr}' failed: {reason}"
        super().__init__(message)

    def __reduce__(self):  # keep pickling/copying working with the extra arguments
        return (type(self), (self.expr, self.reason, self.phase))


# --------------------------------------------------------------------------------------
# Extension functions
# --------------------------------------------------------------------------------------


def _lists_range(n: int) -> list[int]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > _MAX_RANGE:
        raise ValueError(f"lists.range: argument must be an int between 0 and {_MAX_RANGE}")
    return list(range(n))


_FUNCTIONS: dict[str, Any] = dict(_stdlib.STDLIB_FUNCTIONS)
_FUNCTIONS["lists.range"] = _lists_range
# Names as reported by Program.functions(): the last segment of namespaced functions.
_FUNCTION_SHORT_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in _FUNCTIONS)


# --------------------------------------------------------------------------------------
# Static analysis helpers (on the source with string literals blanked out)
# --------------------------------------------------------------------------------------

_QUOTES = ("'", '"')


def _skip_string(src: str, i: int) -> int:
    """``src[i]`` is a quote opening a CEL string literal; return the index just after it.

    Handles triple quotes and raw strings (prefix ``r``/``R``, possibly with ``b``).
    Returns ``len(src)`` for an unterminated literal.
    """
    q = src[i]
    j = i - 1
    raw = False
    while j >= 0 and src[j] in "rRbB":
        if src[j] in "rR":
            raw = True
        j -= 1
    if j >= 0 and (src[j].isalnum() or src[j] == "_") and i - j > 1:
        raw = False  # an identifier ending in r/b, not a prefix
    triple = src.startswith(q * 3, i)
    end_token = q * 3 if triple else q
    k = i + len(end_token)
    n = len(src)
    while k < n:
        c = src[k]
        if c == "\\" and not raw:
            k += 2
            continue
        if src.startswith(end_token, k):
            return k + len(end_token)
        if c == "\n" and not triple:
            return k  # CEL strings do not span lines unless triple-quoted
        k += 1
    return n


def _blank_strings(src: str) -> str:
    """Replace the content of string literals by spaces (keeps positions)."""
    out = []
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c in _QUOTES:
            end = _skip_string(src, i)
            out.append(" " * (end - i))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


_BOUND_RE = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SELECT_RE = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def _selected_fields(blank: str, name: str) -> frozenset[str] | None:
    """Fields selected on variable ``name`` when every use is ``name.<field>``, else None."""
    fields: set[str] = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_])" + name + r"(?![A-Za-z0-9_])", blank):
        k = m.start() - 1
        while k >= 0 and blank[k].isspace():
            k -= 1
        if k >= 0 and blank[k] == ".":
            continue  # a field called like the variable: input.steps
        sel = _SELECT_RE.match(blank, m.end())
        if sel is None:
            return None
        # ``name.f(...)`` is a method call on the variable itself: no narrowing.
        after = sel.end()
        while after < len(blank) and blank[after].isspace():
            after += 1
        if after < len(blank) and blank[after] == "(":
            return None
        fields.add(sel.group(1))
    return frozenset(fields)


# --------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------

_ADVICE = (" CEL does not coerce", " Check that", " Check function", " Convert explicitly",
           " Check the CEL")
_PARSE_ERROR_RE = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _compile_reason(expr: str, exc: BaseException) -> str:
    msg = str(exc)
    m = _PARSE_ERROR_RE.search(msg)
    if m is None:
        prefix = f"Failed to parse expression '{expr}': "
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
        return _lower_first(_one_line(msg)) or "syntax error"
    line, col, detail = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    detail = re.sub(r"^Syntax error:\s*", "", detail)
    # The ANTLR "expecting {...}" sets are long and unhelpful.
    detail = re.sub(r"\s+expecting \{[^}]*\}$", "", detail)
    detail = detail.replace("mismatched input '<EOF>'", "unexpected end of expression")
    where = f"line {line}, column {col}" if "\n" in expr else f"column {col}"
    return f"syntax error at {where}: {_lower_first(_one_line(detail))}"


def _runtime_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}" if exc.args else "no such key"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    msg = str(exc)
    msg = re.sub(r"Python function call failed: (?:[A-Za-z_][A-Za-z0-9_.]*: )?", "", msg)
    m = re.match(r"Undefined variable or function: '([^']*)'", msg)
    if m:
        return f"undeclared reference to '{m.group(1)}'"
    for phrase in _ADVICE:
        idx = msg.find(phrase)
        if idx > 0:
            msg = msg[:idx]
    msg = _one_line(msg).rstrip(".")
    if not msg:
        msg = type(exc).__name__
    return _lower_first(msg)


# --------------------------------------------------------------------------------------
# Result conversion
# --------------------------------------------------------------------------------------


def _rfc3339(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    text = dt.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _to_plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"result {value} is not a finite number")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, bool):
                key = "true" if k else "false"
            elif isinstance(k, str):
                key = k
            else:
                key = str(_to_plain(k))
            out[key] = _to_plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, _cel.OptionalValue):
        return _to_plain(value.value()) if value.has_value() else None
    return str(value)


# --------------------------------------------------------------------------------------
# Compile and evaluate
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    """A compiled expression. ``variables``: the top-level variables it references.

    ``fields[name]``: when not None, the only entries of map variable ``name`` it selects.
    """

    source: str
    program: Any
    variables: frozenset[str]
    fields: Mapping[str, frozenset[str] | None]
    uses_functions: bool

    def evaluate(self, variables: Mapping[str, Any] | None = None) -> Any:
        variables = variables or {}
        ctx: dict[str, Any] = {}
        for name in self.variables:
            if name not in variables:
                continue
            value = variables[name]
            keys = self.fields.get(name)
            if keys is not None and isinstance(value, Mapping):
                value = {k: value[k] for k in keys if k in value}
            ctx[name] = value
        try:
            if self.uses_functions:
                result = self.program.execute(_cel.Context(variables=ctx, functions=_FUNCTIONS))
            else:
                result = self.program.execute(ctx)
            return _to_plain(result)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError(self.source, "value is too deeply nested") from None
        except Exception as exc:  # the Rust side raises many built-in exception types
            raise ExpressionError(self.source, _runtime_reason(exc)) from None


@lru_cache(maxsize=4096)
def _compile_cached(expr: str) -> CompiledExpr:
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(expr, f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", "compile")
    if not expr.strip():
        raise ExpressionError(expr, "empty expression", "compile")
    try:
        program = _cel.compile(expr)
        names = set(program.variables())
        functions = set(program.functions())
    except Exception as exc:
        raise ExpressionError(expr, _compile_reason(expr, exc), "compile") from None
    blank = _blank_strings(expr)
    bound = set(_BOUND_RE.findall(blank))
    for name in sorted(names):
        if name in VARIABLES or name in bound or name in _TYPE_NAMES or name in _NAMESPACES:
            continue
        raise ExpressionError(expr, f"undeclared reference to '{name}'", "compile")
    used = frozenset(n for n in names if n in VARIABLES)
    fields = {name: _selected_fields(blank, name) for name in used if name not in bound}
    for name in used & bound:  # shadowed by a comprehension variable somewhere: pass it whole
        fields[name] = None
    uses_functions = bool(functions & _FUNCTION_SHORT_NAMES) or bool(names & _STDLIB_NAMESPACES)
    return CompiledExpr(expr, program, used, fields, uses_functions)


def compile_expr(expr: str) -> CompiledExpr:
    """Compile ``expr`` (cached). Raises ``ExpressionError`` (phase ``compile``)."""
    if not isinstance(expr, str):
        raise ExpressionError(str(expr), "expression must be a string", "compile")
    return _compile_cached(expr)


compile_expr.cache_info = _compile_cached.cache_info  # type: ignore[attr-defined]
compile_expr.cache_clear = _compile_cached.cache_clear  # type: ignore[attr-defined]


def evaluate(expr: str, variables: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a bare CEL expression to a plain Python value. Raises ``ExpressionError``."""
    return compile_expr(expr).evaluate(variables)


def unwrap(expr: str) -> str:
    """The inner expression when ``expr`` is exactly one ``{{ }}`` template, else ``expr``."""
    if isinstance(expr, str) and "{{" in expr:
        from .templates import exact_template  # local import: templates imports this module

        inner = exact_template(expr)
        if inner is not None:
            return inner
    return expr


def evaluate_bool(expr: str, variables: Mapping[str, Any] | None = None) -> bool:
    """Evaluate a condition (bare CEL or a single ``{{ }}`` template); the result must be a bool."""
    source = unwrap(expr)
    result = evaluate(source, variables)
    if not isinstance(result, bool):
        kind = "null" if result is None else type(result).__name__
        raise ExpressionError(source, f"result must be a bool, got {kind}")
    return result
