"""Workflow definition validation (SPEC §3 and §6).

``validate_definition(defn) -> list[str]`` returns every problem at once, one sentence
each, and never raises whatever JSON it is given. The fixed forms of SPEC §3:

- ``Step 'notify' depends on 'fetch' which doesn't exist``
- ``Cycle detected: step_a → step_b → step_a``: steps in execution order (``a → b``
  means ``b`` depends on ``a``), starting at the step of the cycle defined first, that
  step repeated at the end. Each distinct elementary cycle is reported once (at most 10).
- ``Duplicate step id 'fetch'`` (once per duplicated id)
- ``Step 'x' has unknown type 'foo'``
- ``Step 'x': <what is wrong with its config or fields>``
- ``Step 'x': invalid expression '<expr>': <reason>``
- ``Step 'c' branch references unknown step 'y'``

A step without a usable string id is named by its 1-based position: ``Step 3``.

Rules beyond the SPEC's list, which the orchestrator and the step-runner rely on:

- Unknown fields are errors, at the top level (``Unknown workflow field 'x'``), in a step
  (``Step 'x': unknown field 'y'``), in ``retry`` and in ``config``
  (``Step 'x': unknown config field 'y'``). ``description`` and a free-form ``metadata``
  object are accepted at the top level and in steps.
- ``config`` is required and must be an object.
- Any config field that is not a string may instead be a string holding exactly one
  ``{{ }}`` template (its type is then checked after rendering; see ``check_step_config``
  with ``rendered=True``).
- ``if``, ``condition.expression`` and ``wait.condition`` are CEL expressions, written
  bare (``input.n > 1``) or as one template (``{{ input.n > 1 }}``); evaluate them with
  ``wf_expr.evaluate_bool`` which accepts both.
- ``loop.items`` is a list or a string that is exactly one template.
- ``script.language`` is required (``python`` or ``shell``).
- ``http_request.method`` is case-insensitive.
- ``wait``: exactly one of ``duration_seconds`` (number >= 0), ``until`` (RFC 3339 with a
  time zone), ``condition``, ``approval: true`` (``approval: false`` counts as absent).
- A loop body is ``{"type", "config"}``; its problems read ``Step 'x': in loop body, ...``.
- Every expression is compiled: syntax errors and references to variables other than
  ``input, steps, run, item, index, secrets`` are reported.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wf_expr.cel import ExpressionError, compile_expr
from wf_expr.templates import exact_template, split_template

__all__ = ["STEP_TYPES", "check_step_config", "validate_definition"]

STEP_TYPES = ("http_request", "webhook", "script", "agent_task", "condition", "loop", "wait")
ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_ID_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
TRIGGER_RULES = ("all_success", "none_failed", "all_done")
ON_ERROR = ("fail", "continue", "pause")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_CYCLES_REPORTED = 10

_TOP_FIELDS = ("name", "description", "steps", "input_schema", "timeout_seconds",
               "max_concurrent_runs", "metadata")
_STEP_FIELDS = ("id", "type", "config", "depends_on", "name", "description", "if",
                "trigger_rule", "retry", "timeout_seconds", "on_error", "metadata")
_RETRY_FIELDS = ("max_attempts", "backoff_seconds", "backoff_multiplier", "max_backoff_seconds")
_CONFIG_FIELDS = {
    "http_request": ("method", "url", "headers", "query", "json", "body", "timeout_seconds",
                     "expected_status", "follow_redirects"),
    "webhook": ("url", "payload", "event", "headers", "secret", "timeout_seconds", "max_attempts"),
    "script": ("language", "code", "timeout_seconds", "env"),
    "agent_task": ("agent_id", "goal", "context", "timeout_seconds"),
    "condition": ("expression", "then", "else"),
    "loop": ("items", "step", "max_concurrency", "fail_fast"),
    "wait": ("duration_seconds", "until", "condition", "poll_interval_seconds",
             "timeout_seconds", "approval"),
}
# Config fields holding a bare CEL expression (not scanned for templates as text).
_EXPRESSION_FIELDS = {"condition": ("expression",), "wait": ("condition",)}

_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)

Add = Callable[[str], None]


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _q(value: Any, limit: int = 80) -> str:
    """A value as it appears between quotes in a sentence."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split()) if "\n" in text or "\r" in text else text
    return text if len(text) <= limit else text[:limit] + "…"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_template(v: Any) -> bool:
    return isinstance(v, str) and exact_template(v) is not None


class _Fields:
    """Typed checks on one config object; template strings pass any non-string check."""

    def __init__(self, cfg: dict, add: Add, templates_ok: bool):
        self.cfg = cfg
        self.add = add
        self.templates_ok = templates_ok

    def present(self, key: str) -> bool:
        return key in self.cfg

    def deferred(self, key: str) -> bool:
        """The value is a template whose type is only known after rendering."""
        return self.templates_ok and _is_template(self.cfg.get(key))

    def required(self, key: str) -> bool:
        if key not in self.cfg or self.cfg[key] is None:
            self.add(f"'{key}' is required")
            return False
        return True

    def string(self, key: str, *, required: bool = False, non_empty: bool = False) -> None:
        if required and not self.required(key):
            return
        if key not in self.cfg:
            return
        v = self.cfg[key]
        if not isinstance(v, str):
            self.add(f"'{key}' must be a string")
        elif non_empty and not v.strip():
            self.add(f"'{key}' must not be empty")

    def positive(self, key: str) -> None:
        if key in self.cfg and not self.deferred(key):
            v = self.cfg[key]
            if not (_is_number(v) and v > 0):
                self.add(f"'{key}' must be a positive number of seconds")

    def non_negative(self, key: str) -> None:
        if key in self.cfg and not self.deferred(key):
            v = self.cfg[key]
            if not (_is_number(v) and v >= 0):
                self.add(f"'{key}' must be a number >= 0")

    def boolean(self, key: str) -> None:
        if key in self.cfg and not self.deferred(key):
            if not isinstance(self.cfg[key], bool):
                self.add(f"'{key}' must be true or false")

    def int_range(self, key: str, low: int, high: int | None = None) -> None:
        if key in self.cfg and not self.deferred(key):
            v = self.cfg[key]
            ok = _is_int(v) and v >= low and (high is None or v <= high)
            if not ok:
                if high is None:
                    self.add(f"'{key}' must be an integer >= {low}")
                else:
                    self.add(f"'{key}' must be an integer between {low} and {high}")

    def string_map(self, key: str) -> None:
        """An object whose values are strings."""
        if key not in self.cfg or self.deferred(key):
            return
        v = self.cfg[key]
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            self.add(f"'{key}' must be an object whose values are strings")

    def url(self, key: str, *, required: bool) -> None:
        if required and not self.required(key):
            return
        if key not in self.cfg:
            return
        v = self.cfg[key]
        if not isinstance(v, str):
            self.add(f"'{key}' must be a string")
            return
        if "{{" in v:
            return  # checked after rendering
        if not re.match(r"(?i)https?://[^\s/?#]+", v) or any(c.isspace() for c in v):
            self.add(f"'{key}' must be an absolute http:// or https:// URL")

    def unknown(self, allowed: tuple[str, ...]) -> None:
        for key in self.cfg:
            if key not in allowed:
                self.add(f"unknown config field '{_q(key)}'")


# --------------------------------------------------------------------------------------
# Per-type config checks
# --------------------------------------------------------------------------------------


def _check_http_request(f: _Fields) -> None:
    f.url("url", required=True)
    if f.present("method") and not f.deferred("method"):
        m = f.cfg["method"]
        if not isinstance(m, str) or m.upper() not in HTTP_METHODS:
            f.add("'method' must be one of " + ", ".join(HTTP_METHODS))
    f.string_map("headers")
    if f.present("query") and not f.deferred("query"):
        q = f.cfg["query"]
        scalar = (str, int, float, bool)
        ok = isinstance(q, dict) and all(
            isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(x, scalar) for x in v))
            for v in q.values()
        )
        if not ok:
            f.add("'query' must be an object whose values are strings, numbers, booleans or lists of them")
    if f.present("json") and f.present("body"):
        f.add("'json' and 'body' cannot both be set")
    if f.present("body") and not f.deferred("body") and not isinstance(f.cfg["body"], str):
        f.add("'body' must be a string (use 'json' for structured data)")
    f.positive("timeout_seconds")
    if f.present("expected_status") and not f.deferred("expected_status"):
        es = f.cfg["expected_status"]
        ok = isinstance(es, list) and len(es) > 0 and all(
            (_is_int(x) and 100 <= x <= 599) or (f.templates_ok and _is_template(x)) for x in es
        )
        if not ok:
            f.add("'expected_status' must be a non-empty list of status codes between 100 and 599")
    f.boolean("follow_redirects")
    f.unknown(_CONFIG_FIELDS["http_request"])


def _check_webhook(f: _Fields) -> None:
    f.url("url", required=True)
    f.string("event")
    f.string_map("headers")
    f.string("secret")
    f.positive("timeout_seconds")
    f.int_range("max_attempts", 1, 20)
    f.unknown(_CONFIG_FIELDS["webhook"])


def _check_script(f: _Fields) -> None:
    if f.required("language") and not f.deferred("language"):
        if f.cfg["language"] not in ("python", "shell"):
            f.add("'language' must be 'python' or 'shell'")
    f.string("code", required=True, non_empty=True)
    f.positive("timeout_seconds")
    f.string_map("env")
    f.unknown(_CONFIG_FIELDS["script"])


def _check_agent_task(f: _Fields) -> None:
    f.string("agent_id", required=True, non_empty=True)
    f.string("goal", required=True, non_empty=True)
    f.positive("timeout_seconds")
    f.unknown(_CONFIG_FIELDS["agent_task"])


class _Ctx:
    """What a config check needs to know about the whole definition."""

    def __init__(self, add_error: Add, all_ids: set[str], label: str):
        self.add_error = add_error
        self.all_ids = all_ids
        self.label = label


def _check_condition(f: _Fields, ctx: _Ctx | None) -> None:
    if f.required("expression"):
        if not isinstance(f.cfg["expression"], str):
            f.add("'expression' must be a string (a CEL expression)")
    for key in ("then", "else"):
        if not f.present(key):
            continue
        branch = f.cfg[key]
        if not isinstance(branch, list) or not all(isinstance(x, str) for x in branch):
            f.add(f"'{key}' must be a list of step ids")
            continue
        if ctx is None:
            continue
        for target in branch:
            if target not in ctx.all_ids:
                ctx.add_error(f"{ctx.label} branch references unknown step '{_q(target)}'")
            elif ctx.label == f"Step '{target}'":
                f.add(f"'{key}' cannot name the condition step itself")
    f.unknown(_CONFIG_FIELDS["condition"])


def _check_loop(f: _Fields, ctx: _Ctx | None) -> None:
    if f.required("items"):
        items = f.cfg["items"]
        if not (isinstance(items, list) or (f.templates_ok and _is_template(items))):
            f.add("'items' must be a list or a '{{ }}' template giving a list")
    if f.required("step"):
        body = f.cfg["step"]
        if not isinstance(body, dict):
            f.add("'step' must be an object with 'type' and 'config'")
        else:
            sub_add: Add = lambda p: f.add(f"in loop body, {p}")  # noqa: E731
            for key in body:
                if key not in ("type", "config"):
                    sub_add(f"unknown field '{_q(key)}'")
            btype = body.get("type")
            if "type" not in body or btype is None:
                sub_add("'type' is required")
            elif not isinstance(btype, str):
                sub_add("'type' must be a string")
            elif btype == "loop":
                f.add("a loop body cannot be a loop")
            elif btype not in STEP_TYPES:
                f.add(f"loop body has unknown type '{_q(btype)}'")
            elif "config" not in body or body["config"] is None:
                sub_add("'config' is required")
            elif not isinstance(body["config"], dict):
                sub_add("'config' must be an object")
            else:
                _check_config(btype, body["config"], sub_add, f.templates_ok, ctx)
    f.int_range("max_concurrency", 1)
    f.boolean("fail_fast")
    f.unknown(_CONFIG_FIELDS["loop"])


def _check_wait(f: _Fields) -> None:
    modes = [k for k in ("duration_seconds", "until", "condition") if f.present(k)]
    if f.present("approval"):
        a = f.cfg["approval"]
        if a is True or (f.templates_ok and _is_template(a)):
            modes.append("approval")
        elif a is not False:
            f.add("'approval' must be true or false")
    if len(modes) != 1:
        found = f" (found {', '.join(repr(m) for m in modes)})" if modes else ""
        f.add("exactly one of 'duration_seconds', 'until', 'condition' or 'approval: true' "
              f"must be set{found}")
    f.non_negative("duration_seconds")
    if f.present("until") and not f.deferred("until"):
        u = f.cfg["until"]
        if not isinstance(u, str) or "{{" not in u and not _valid_rfc3339(u):
            f.add("'until' must be an RFC 3339 timestamp with a time zone, "
                  "like 2026-01-01T09:00:00Z")
    if f.present("condition") and not isinstance(f.cfg["condition"], str):
        f.add("'condition' must be a string (a CEL expression)")
    f.positive("poll_interval_seconds")
    f.positive("timeout_seconds")
    f.unknown(_CONFIG_FIELDS["wait"])


def _valid_rfc3339(text: str) -> bool:
    if not _RFC3339_RE.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _check_config(step_type: str, cfg: dict, add: Add, templates_ok: bool, ctx: _Ctx | None) -> None:
    f = _Fields(cfg, add, templates_ok)
    if step_type == "http_request":
        _check_http_request(f)
    elif step_type == "webhook":
        _check_webhook(f)
    elif step_type == "script":
        _check_script(f)
    elif step_type == "agent_task":
        _check_agent_task(f)
    elif step_type == "condition":
        _check_condition(f, ctx)
    elif step_type == "loop":
        _check_loop(f, ctx)
    elif step_type == "wait":
        _check_wait(f)


def check_step_config(step_type: str, config: Any, *, rendered: bool = False) -> list[str]:
    """Problems of one step's config, as phrases (no ``Step 'x':`` prefix).

    With ``rendered=True`` (a config after template rendering) templates no longer stand
    in for other types, and branch targets are not checked. Never raises.
    """
    problems: list[str] = []
    try:
        if step_type not in STEP_TYPES:
            return [f"unknown type '{_q(step_type)}'"]
        if not isinstance(config, dict):
            return ["'config' must be an object"]
        _check_config(step_type, config, problems.append, not rendered, None)
    except Exception as exc:  # pragma: no cover - safety net
        problems.append(f"config could not be checked ({type(exc).__name__})")
    return problems


# --------------------------------------------------------------------------------------
# Templates in a config
# --------------------------------------------------------------------------------------


def _check_templates(step_type: str, cfg: dict, add_error: Add, label: str) -> None:
    """Compile every expression of a config: ``{{ }}`` templates in its string values, and
    the bare-CEL fields (``condition.expression``, ``wait.condition``), loop bodies included."""
    scan: list[Any] = []
    for key, value in cfg.items():
        if key in _EXPRESSION_FIELDS.get(step_type, ()):
            if isinstance(value, str):
                _compile_into(value, add_error, label, bare=True)
        elif step_type == "loop" and key == "step" and isinstance(value, dict):
            btype = value.get("type")
            bskip = _EXPRESSION_FIELDS.get(btype, ()) if isinstance(btype, str) else ()
            for bkey, bvalue in value.items():
                if bkey == "config" and isinstance(bvalue, dict):
                    for ckey, cvalue in bvalue.items():
                        if ckey in bskip:
                            if isinstance(cvalue, str):
                                _compile_into(cvalue, add_error, label, bare=True)
                        else:
                            scan.append(cvalue)
                else:
                    scan.append(bvalue)
        else:
            scan.append(value)
    seen: set[str] = set()
    stack = list(reversed(scan))
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "{{" not in v:
                continue
            try:
                parts = split_template(v)
            except ExpressionError as exc:
                add_error(f"{label}: invalid expression '{_q(exc.expr, 200)}': {exc.reason}")
                continue
            for part in parts:
                if isinstance(part, tuple) and part[0] not in seen:
                    seen.add(part[0])
                    _compile_into(part[0], add_error, label, bare=False)
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))


def _compile_into(expr: str, add_error: Add, label: str, *, bare: bool) -> None:
    if bare:
        inner = exact_template(expr)
        expr = inner if inner is not None else expr
    try:
        compile_expr(expr)
    except ExpressionError as exc:
        add_error(f"{label}: invalid expression '{_q(exc.expr, 500)}': {exc.reason}")


# --------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------


def _cycles(order: list[str], deps: dict[str, list[str]]) -> list[list[str]]:
    """Elementary cycles, each as [n0, n1, ..., n0] with n(i+1) depending on n(i).

    Each cycle starts at its node that comes first in ``order`` (found by searching only
    through later nodes), so every cycle is found once. Bounded work.
    """
    pos = {n: i for i, n in enumerate(order)}
    # dependents: edge dep -> step
    out: dict[str, list[str]] = {n: [] for n in order}
    for step in order:
        for d in deps.get(step, ()):
            if d in out and step not in out[d]:
                out[d].append(step)
    # Only nodes on some cycle matter: restrict to non-trivial strongly connected components.
    comp = _scc(order, out)
    found: list[list[str]] = []
    budget = 200_000
    for start in order:
        if len(found) >= MAX_CYCLES_REPORTED or budget <= 0:
            break
        c = comp[start]
        if start not in out[start] and sum(1 for n in out[start] if comp[n] == c) == 0:
            continue
        base = pos[start]
        path = [start]
        on_path = {start}
        iters = [iter(out[start])]
        while iters and budget > 0 and len(found) < MAX_CYCLES_REPORTED:
            budget -= 1
            nxt = next(iters[-1], None)
            if nxt is None:
                iters.pop()
                on_path.discard(path.pop())
                continue
            if comp[nxt] != c or pos[nxt] < base:
                continue
            if nxt == start:
                found.append(path + [start])
                continue
            if nxt in on_path:
                continue
            path.append(nxt)
            on_path.add(nxt)
            iters.append(iter(out[nxt]))
    return found


def _scc(order: list[str], out: dict[str, list[str]]) -> dict[str, int]:
    """Tarjan's strongly connected components, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    ncomp = 0
    for root in order:
        if root in index:
            continue
        work = [(root, iter(out[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            child = next(it, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(out[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp[w] = ncomp
                    if w == node:
                        break
                ncomp += 1
    return comp


# --------------------------------------------------------------------------------------
# Definition
# --------------------------------------------------------------------------------------


def _number_field(obj: dict, key: str, add: Add, label: str, *, positive: bool = True) -> None:
    if key in obj:
        v = obj[key]
        if not (_is_number(v) and (v > 0 if positive else v >= 0)):
            add(f"{label}'{key}' must be a positive number of seconds")


def _validate(defn: Any, errors: list[str]) -> None:
    seen_errors: set[str] = set()

    def add(msg: str) -> None:
        if msg not in seen_errors:
            seen_errors.add(msg)
            errors.append(msg)

    if not isinstance(defn, dict):
        add("Definition must be a JSON object with 'name' and 'steps'")
        return

    # ---- top level ---------------------------------------------------------------------
    for key in defn:
        if key not in _TOP_FIELDS:
            add(f"Unknown workflow field '{_q(key)}'")
    name = defn.get("name")
    if "name" not in defn or name is None:
        add("Workflow 'name' is required")
    elif not isinstance(name, str) or not name.strip():
        add("Workflow 'name' must be a non-empty string")
    if defn.get("description") is not None and not isinstance(defn["description"], str):
        add("Workflow 'description' must be a string")
    if defn.get("metadata") is not None and not isinstance(defn["metadata"], dict):
        add("Workflow 'metadata' must be an object")
    if "timeout_seconds" in defn and defn["timeout_seconds"] is not None:
        _number_field(defn, "timeout_seconds", add, "Workflow ")
    if "max_concurrent_runs" in defn and defn["max_concurrent_runs"] is not None:
        v = defn["max_concurrent_runs"]
        if not (_is_int(v) and v >= 1):
            add("Workflow 'max_concurrent_runs' must be an integer >= 1")
    if "input_schema" in defn and defn["input_schema"] is not None:
        _check_input_schema(defn["input_schema"], add)

    steps = defn.get("steps")
    if "steps" not in defn or steps is None:
        add("Workflow must have at least one step ('steps' is missing)")
        return
    if not isinstance(steps, list):
        add("Workflow 'steps' must be a list of steps")
        return
    if not steps:
        add("Workflow must have at least one step")
        return

    # ---- ids ---------------------------------------------------------------------------
    all_ids: set[str] = set()
    counts: dict[str, int] = {}
    labels: list[str] = []
    for i, step in enumerate(steps):
        sid = step.get("id") if isinstance(step, dict) else None
        if isinstance(sid, str) and sid:
            all_ids.add(sid)
            counts[sid] = counts.get(sid, 0) + 1
            labels.append(f"Step '{_q(sid)}'")
        else:
            labels.append(f"Step {i + 1}")
    for sid, n in counts.items():
        if n > 1:
            add(f"Duplicate step id '{_q(sid)}'")

    order: list[str] = []  # valid, first occurrence only
    deps: dict[str, list[str]] = {}

    for i, step in enumerate(steps):
        label = labels[i]
        if not isinstance(step, dict):
            add(f"{label} must be an object")
            continue
        sid = step.get("id")
        if "id" not in step or sid is None or sid == "":
            add(f"{label}: 'id' is required")
        elif not isinstance(sid, str):
            add(f"{label}: 'id' must be a string")
        elif not _ID_RE.fullmatch(sid):
            add(f"{label}: id must match {ID_PATTERN}")
        for key in step:
            if key not in _STEP_FIELDS:
                add(f"{label}: unknown field '{_q(key)}'")

        # depends_on
        step_deps: list[str] = []
        if "depends_on" in step and step["depends_on"] is not None:
            dep_list = step["depends_on"]
            if not isinstance(dep_list, list) or not all(isinstance(d, str) for d in dep_list):
                add(f"{label}: 'depends_on' must be a list of step ids")
            else:
                for d in dep_list:
                    if d not in all_ids:
                        add(f"{label} depends on '{_q(d)}' which doesn't exist")
                    elif d not in step_deps:
                        step_deps.append(d)
        if isinstance(sid, str) and _ID_RE.fullmatch(sid) and sid not in deps:
            order.append(sid)
            deps[sid] = step_deps

        # simple fields
        for key in ("name", "description"):
            if step.get(key) is not None and not isinstance(step[key], str):
                add(f"{label}: '{key}' must be a string")
        if step.get("metadata") is not None and not isinstance(step["metadata"], dict):
            add(f"{label}: 'metadata' must be an object")
        if "if" in step and step["if"] is not None:
            cond = step["if"]
            if not isinstance(cond, str):
                add(f"{label}: 'if' must be a string (a CEL expression)")
            else:
                _compile_into(cond, add, label, bare=True)
        if step.get("trigger_rule") is not None and step["trigger_rule"] not in TRIGGER_RULES:
            add(f"{label}: 'trigger_rule' must be one of " + ", ".join(TRIGGER_RULES))
        if step.get("on_error") is not None and step["on_error"] not in ON_ERROR:
            add(f"{label}: 'on_error' must be one of " + ", ".join(ON_ERROR))
        if "timeout_seconds" in step and step["timeout_seconds"] is not None:
            _number_field(step, "timeout_seconds", add, f"{label}: the step's ")
        if "retry" in step and step["retry"] is not None:
            _check_retry(step["retry"], add, label)

        # type and config
        stype = step.get("type")
        type_ok = False
        if "type" not in step or stype is None:
            add(f"{label}: 'type' is required")
        elif not isinstance(stype, str):
            add(f"{label}: 'type' must be a string")
        elif stype not in STEP_TYPES:
            add(f"{label} has unknown type '{_q(stype)}'")
        else:
            type_ok = True
        cfg = step.get("config")
        if "config" not in step or cfg is None:
            add(f"{label}: 'config' is required")
            continue
        if not isinstance(cfg, dict):
            add(f"{label}: 'config' must be an object")
            continue
        if not type_ok:
            continue
        ctx = _Ctx(add, all_ids, label)
        _check_config(stype, cfg, lambda p, _l=label: add(f"{_l}: {p}"), True, ctx)
        _check_templates(stype, cfg, add, label)

    # ---- cycles ------------------------------------------------------------------------
    for cycle in _cycles(order, deps):
        add("Cycle detected: " + " → ".join(cycle))


def _check_retry(retry: Any, add: Add, label: str) -> None:
    if not isinstance(retry, dict):
        add(f"{label}: 'retry' must be an object")
        return
    for key in retry:
        if key not in _RETRY_FIELDS:
            add(f"{label}: unknown retry field '{_q(key)}'")
    checks = (
        ("max_attempts", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        ("backoff_seconds", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
        ("backoff_multiplier", lambda v: _is_number(v) and v >= 1, "a number >= 1"),
        ("max_backoff_seconds", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    )
    for key, ok, what in checks:
        if key in retry and not ok(retry[key]):
            add(f"{label}: retry '{key}' must be {what}")


def _check_input_schema(schema: Any, add: Add) -> None:
    if not isinstance(schema, (dict, bool)):
        add("Workflow 'input_schema' must be a JSON Schema object")
        return
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            suffix = f" (at '{where}')" if where else ""
            add(f"Workflow 'input_schema' is not a valid JSON Schema: {_q(exc.message, 200)}{suffix}")
    except RecursionError:
        add("Workflow 'input_schema' is nested too deeply")
    except Exception as exc:  # jsonschema may choke on exotic input
        add(f"Workflow 'input_schema' is not a valid JSON Schema ({type(exc).__name__})")


def validate_definition(defn: Any) -> list[str]:
    """Every problem of a workflow definition, one sentence each; ``[]`` when valid.

    Never raises, whatever ``defn`` is.
    """
    errors: list[str] = []
    try:
        _validate(defn, errors)
    except RecursionError:
        errors.append("Definition is nested too deeply")
    except Exception as exc:  # safety net: a validator must answer, not crash
        errors.append(f"Definition could not be validated completely ({type(exc).__name__})")
    return errors
