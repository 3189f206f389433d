"""Builtin templates (SPEC §7): data shipped with the gateway, visible to every tenant, never events.

Each one takes its endpoints from `input_data` (declared in its `input_schema`) so that it runs
end to end anywhere, including against a local test server. Ids are stable across releases so an
installed workflow can name where it came from; unit tests check every definition is valid.
"""
import copy
from typing import Any

BUILTIN_CREATED_AT = "2026-01-01T00:00:00Z"


def _schema(required: dict[str, dict], optional: dict[str, dict] | None = None) -> dict:
    return {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required)}


_URL = {"type": "string", "format": "uri"}

_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "tpl_fetch_and_summarize",
        "name": "Fetch and summarize",
        "category": "ai",
        "description": "Fetch a JSON document over HTTP and have an agent summarize it.",
        "definition": {
            "name": "Fetch and summarize",
            "input_schema": _schema({"url": _URL}, {"agent_id": {"type": "string"}}),
            "steps": [
                {"id": "fetch", "type": "http_request", "config": {"method": "GET", "url": "{{ input.url }}"},
                 "retry": {"max_attempts": 3, "backoff_seconds": 1}},
                {"id": "summarize", "type": "agent_task", "depends_on": ["fetch"],
                 "config": {"agent_id": "{{ has(input.agent_id) ? input.agent_id : 'summarizer' }}",
                            "goal": "Summarize the fetched document in three sentences.",
                            "context": "{{ steps.fetch.output.body }}"}},
            ],
        },
    },
    {
        "id": "tpl_http_health_check",
        "name": "HTTP health check with alert",
        "category": "monitoring",
        "description": "Probe a URL; when it is down, send a signed webhook alert.",
        "definition": {
            "name": "HTTP health check",
            "input_schema": _schema({"url": _URL, "alert_url": _URL}),
            "steps": [
                {"id": "probe", "type": "http_request", "on_error": "continue",
                 "config": {"url": "{{ input.url }}", "timeout_seconds": 10, "expected_status": [200]}},
                {"id": "is_down", "type": "condition", "depends_on": ["probe"], "trigger_rule": "all_done",
                 "config": {"expression": "steps.probe.status != 'completed'", "then": ["alert"], "else": []}},
                {"id": "alert", "type": "webhook", "depends_on": ["is_down"],
                 "config": {"url": "{{ input.alert_url }}", "event": "health_check.failed",
                            "payload": {"url": "{{ input.url }}", "run_id": "{{ run.id }}"}}},
            ],
        },
    },
    {
        "id": "tpl_etl_python",
        "name": "ETL with a Python transform",
        "category": "data",
        "description": "Extract records over HTTP, transform them in Python, load them with a POST.",
        "definition": {
            "name": "ETL pipeline",
            "input_schema": _schema({"source_url": _URL, "sink_url": _URL}),
            "steps": [
                {"id": "extract", "type": "http_request", "config": {"url": "{{ input.source_url }}"}},
                {"id": "transform", "type": "script", "depends_on": ["extract"],
                 "config": {"language": "python", "timeout_seconds": 30, "code": (
                     "import json, os\n"
                     "ctx = json.load(open(os.environ['WORKFLOW_INPUT']))\n"
                     "body = ctx['steps']['extract']['output']['body']\n"
                     "rows = body if isinstance(body, list) else [body]\n"
                     "print(json.dumps({'count': len(rows), 'rows': rows}))\n")}},
                {"id": "load", "type": "http_request", "depends_on": ["transform"],
                 "config": {"method": "POST", "url": "{{ input.sink_url }}",
                            "json": "{{ steps.transform.output.result }}"}},
            ],
        },
    },
    {
        "id": "tpl_fan_out",
        "name": "Fan out over a list",
        "category": "data",
        "description": "Call one URL per item of a list, four at a time, and collect the answers.",
        "definition": {
            "name": "Fan out",
            "input_schema": _schema({"urls": {"type": "array", "items": _URL, "minItems": 1}}),
            "steps": [
                {"id": "each", "type": "loop",
                 "config": {"items": "{{ input.urls }}", "max_concurrency": 4, "fail_fast": False,
                            "step": {"type": "http_request", "config": {"url": "{{ item }}"}}}},
                {"id": "report", "type": "script", "depends_on": ["each"],
                 "config": {"language": "python", "code": (
                     "import json, sys\n"
                     "ctx = json.load(sys.stdin)\n"
                     "out = ctx['steps']['each']['output']\n"
                     "print(json.dumps({'calls': len(out)}))\n")}},
            ],
        },
    },
    {
        "id": "tpl_approval_gate",
        "name": "Approval gate",
        "category": "operations",
        "description": "Prepare a change, pause for a human approval (resume the run), then apply it.",
        "definition": {
            "name": "Approval gate",
            "input_schema": _schema({"apply_url": _URL}),
            "steps": [
                {"id": "prepare", "type": "script",
                 "config": {"language": "shell", "code": "echo '{\"plan\": \"ready\"}'"}},
                {"id": "approve", "type": "wait", "depends_on": ["prepare"], "config": {"approval": True}},
                {"id": "apply", "type": "http_request", "depends_on": ["approve"],
                 "config": {"method": "POST", "url": "{{ input.apply_url }}",
                            "json": {"plan": "{{ steps.prepare.output.result.plan }}"}}},
            ],
        },
    },
    {
        "id": "tpl_daily_report",
        "name": "Daily report",
        "category": "reporting",
        "description": "Collect metrics, format a report and post it; add a schedule such as '0 9 * * 1-5'.",
        "definition": {
            "name": "Daily report",
            "input_schema": _schema({"metrics_url": _URL, "webhook_url": _URL}),
            "steps": [
                {"id": "collect", "type": "http_request", "config": {"url": "{{ input.metrics_url }}"}},
                {"id": "format", "type": "script", "depends_on": ["collect"],
                 "config": {"language": "python", "code": (
                     "import json, sys\n"
                     "ctx = json.load(sys.stdin)\n"
                     "body = ctx['steps']['collect']['output']['body']\n"
                     "print(json.dumps({'text': 'Daily report: ' + json.dumps(body, sort_keys=True)}))\n")}},
                {"id": "publish", "type": "webhook", "depends_on": ["format"],
                 "config": {"url": "{{ input.webhook_url }}", "event": "report.daily",
                            "payload": {"text": "{{ steps.format.output.result.text }}"}}},
            ],
        },
    },
    {
        "id": "tpl_retry_with_fallback",
        "name": "Retry with fallback",
        "category": "reliability",
        "description": "Call a primary endpoint with retries and backoff; if it still fails, call a fallback.",
        "definition": {
            "name": "Retry with fallback",
            "input_schema": _schema({"primary_url": _URL, "fallback_url": _URL}),
            "steps": [
                {"id": "primary", "type": "http_request", "on_error": "continue",
                 "retry": {"max_attempts": 3, "backoff_seconds": 0.5, "backoff_multiplier": 2,
                           "max_backoff_seconds": 5},
                 "config": {"url": "{{ input.primary_url }}", "timeout_seconds": 10}},
                {"id": "fallback", "type": "http_request", "depends_on": ["primary"],
                 "trigger_rule": "all_done", "if": "steps.primary.status == 'failed'",
                 "config": {"url": "{{ input.fallback_url }}"}},
            ],
        },
    },
    {
        "id": "tpl_incident_triage",
        "name": "Incident triage",
        "category": "operations",
        "description": "Fetch an incident, let an agent rate its severity, page on high, else open a ticket.",
        "definition": {
            "name": "Incident triage",
            "input_schema": _schema({"incident_url": _URL, "page_url": _URL, "ticket_url": _URL},
                                    {"agent_id": {"type": "string"}}),
            "steps": [
                {"id": "fetch", "type": "http_request", "config": {"url": "{{ input.incident_url }}"}},
                {"id": "triage", "type": "agent_task", "depends_on": ["fetch"],
                 "config": {"agent_id": "{{ has(input.agent_id) ? input.agent_id : 'triager' }}",
                            "goal": "Rate this incident's severity. Answer JSON: {\"severity\": \"high\" or \"low\"}."}},
                {"id": "route", "type": "condition", "depends_on": ["triage"],
                 "config": {"expression": ("type(steps.triage.output) == map && has(steps.triage.output.severity)"
                                           " && steps.triage.output.severity == 'high'"),
                            "then": ["page"], "else": ["ticket"]}},
                {"id": "page", "type": "webhook", "depends_on": ["route"],
                 "config": {"url": "{{ input.page_url }}", "event": "incident.page",
                            "payload": {"incident": "{{ steps.fetch.output.body }}"}}},
                {"id": "ticket", "type": "http_request", "depends_on": ["route"],
                 "config": {"method": "POST", "url": "{{ input.ticket_url }}",
                            "json": {"incident": "{{ steps.fetch.output.body }}"}}},
            ],
        },
    },
    {
        "id": "tpl_delayed_follow_up",
        "name": "Delayed follow-up",
        "category": "notifications",
        "description": "Wait a number of seconds (durably: survives restarts), then send a webhook.",
        "definition": {
            "name": "Delayed follow-up",
            "input_schema": _schema({"webhook_url": _URL, "delay_seconds": {"type": "number", "minimum": 0}}),
            "steps": [
                {"id": "delay", "type": "wait", "config": {"duration_seconds": "{{ input.delay_seconds }}"}},
                {"id": "notify", "type": "webhook", "depends_on": ["delay"],
                 "config": {"url": "{{ input.webhook_url }}", "event": "follow_up.due",
                            "payload": {"run_id": "{{ run.id }}"}}},
            ],
        },
    },
]


def builtin_templates() -> list[dict[str, Any]]:
    """Every builtin template as the API shows it, in a stable order (by category, then name)."""
    out = [{**copy.deepcopy(t), "is_builtin": True, "created_at": BUILTIN_CREATED_AT} for t in _TEMPLATES]
    return sorted(out, key=lambda t: (t["category"], t["name"]))


BUILTIN_BY_ID: dict[str, dict[str, Any]] = {t["id"]: t for t in builtin_templates()}
