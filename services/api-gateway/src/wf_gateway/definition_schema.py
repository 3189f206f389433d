"""JSON Schema of a workflow definition (SPEC §3), for the OpenAPI document.

It describes what domain/validation.py enforces, never more: anything this schema rejects the
validator rejects too (so generated bad data always gets a 4xx), while the validator also checks
what a schema cannot say (dependencies exist, no cycles, per-type configs, CEL expressions).
Fields the validator treats as absent when null are nullable here.
"""
from typing import Any

from .domain.validation import ID_PATTERN, ON_ERROR, STEP_TYPES, TRIGGER_RULES

REF = "#/components/schemas/{}"

_CONFIG_DOC = (
    "Per step type (SPEC §6). http_request: method, url, headers, query, json | body, timeout_seconds, "
    "expected_status, follow_redirects. webhook: url, payload, event, headers, secret, timeout_seconds, "
    "max_attempts. script: language (python | shell), code, timeout_seconds, env. agent_task: agent_id, goal, "
    "context, timeout_seconds. condition: expression, then, else. loop: items, step {type, config}, "
    "max_concurrency, fail_fast. wait: exactly one of duration_seconds, until, condition (with "
    "poll_interval_seconds, timeout_seconds), approval: true. Strings may hold {{ CEL }} templates."
)


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1},
        "backoff_seconds": {"type": "number", "minimum": 0},
        "backoff_multiplier": {"type": "number", "minimum": 1},
        "max_backoff_seconds": {"type": "number", "minimum": 0},
    },
}

STEP_SCHEMA: dict[str, Any] = {
    "title": "Step",
    "type": "object",
    "required": ["id", "type", "config"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": ID_PATTERN, "description": "Unique in the workflow."},
        "type": {"type": "string", "enum": list(STEP_TYPES)},
        "config": {"type": "object", "description": _CONFIG_DOC},
        "depends_on": _nullable({"type": "array", "items": {"type": "string"}}),
        "name": _nullable({"type": "string"}),
        "description": _nullable({"type": "string"}),
        "if": _nullable({"type": "string", "description": "CEL expression; false skips the step."}),
        "trigger_rule": _nullable({"type": "string", "enum": list(TRIGGER_RULES)}),
        "retry": _nullable(RETRY_SCHEMA),
        "timeout_seconds": _nullable({"type": "number", "exclusiveMinimum": 0}),
        "on_error": _nullable({"type": "string", "enum": list(ON_ERROR)}),
        "metadata": _nullable({"type": "object"}),
    },
}

DEFINITION_SCHEMA: dict[str, Any] = {
    "title": "Definition",
    "type": "object",
    "required": ["name", "steps"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": _nullable({"type": "string"}),
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": REF.format("Step")}},
        "input_schema": _nullable({"type": ["object", "boolean"],
                                   "description": "JSON Schema (2020-12) that input_data must match."}),
        "timeout_seconds": _nullable({"type": "number", "exclusiveMinimum": 0}),
        "max_concurrent_runs": _nullable({"type": "integer", "minimum": 1}),
        "metadata": _nullable({"type": "object"}),
    },
}

COMPONENTS = {"Definition": DEFINITION_SCHEMA, "Step": STEP_SCHEMA}

PATCH_OPERATION_SCHEMA: dict[str, Any] = {
    "title": "PatchOperation",
    "type": "object",
    "required": ["op", "path"],
    "properties": {
        "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
        "path": {"type": "string"},
        "value": {},
        "from": {"type": "string"},
    },
}

COMPONENTS["PatchOperation"] = PATCH_OPERATION_SCHEMA
