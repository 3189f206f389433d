"""The OpenAPI 3.1 document at /api/openapi.json, completed where FastAPI leaves gaps:

- the definition, step and patch schemas (definition_schema.py) as components;
- every error an operation can answer, as RFC 9457 `application/problem+json` (FastAPI only
  documents its own 422 shape, which this API never sends);
- bearer authentication on every /api operation.
"""
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .definition_schema import COMPONENTS
from .models import Problem

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_WHY = {
    401: "Missing, unknown or revoked API key.",
    403: "The key lacks the scope this operation needs.",
    404: "Unknown id, or another tenant's.",
    409: "Not allowed in the current state, or an Idempotency-Key reused with a different body.",
    413: "Request body over the size limit.",
    422: "Bad body, query or header; `errors` lists every problem.",
}


def _problem_response(status: int) -> dict[str, Any]:
    return {"description": _WHY[status], "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _statuses(path: str, method: str, op: dict[str, Any]) -> list[int]:
    out = [401, 403]
    if "{" in path:
        out.append(404)
    if method in ("post", "put", "patch", "delete"):
        out.append(409)
    if "requestBody" in op:
        out += [413, 422]
    elif op.get("parameters"):
        out.append(422)
    return out


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(COMPONENTS)
    schemas["Problem"] = Problem.model_json_schema()
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                       "description": "An API key (SPEC §2)."}}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not path.startswith("/api/"):
                continue
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for status in _statuses(path, method, op):
                responses[str(status)] = _problem_response(status)
            op["security"] = [{"bearer": []}]
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
