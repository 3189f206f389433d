"""RFC 9457 problem details: every error leaves the API in this one shape, from this one place."""
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class Problem(Exception):
    def __init__(self, status: int, detail: str, errors: list[Any] | None = None, type_: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.type_, self.headers = status, detail, errors, type_, headers


def problem_response(status: int, detail: str, errors: list[Any] | None = None, type_: str | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_ or f"https://workflow.dev/problems/{status}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _loc(err: dict) -> str:
    return ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"


def _leaf_routes(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI wraps included routers
        if inner is not None:
            yield from _leaf_routes(inner.routes)  # routers are included without an extra prefix
        else:
            yield route


def _allowed_methods(request: Request) -> str:
    path = request.url.path
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        regex, allowed = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and allowed and regex.match(path):
            methods |= set(allowed)
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem):
        return problem_response(exc.status, exc.detail, exc.errors, exc.type_, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        errors = [f"{_loc(e)}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return problem_response(422, "The request is not valid.", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # the router names only the first route that matched the path; list them all (RFC 9110)
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(_: Request, exc: psycopg.DataError):
        # the last line of defence: a value Postgres cannot take (a NUL, a number out of range)
        # that reached a query is bad input, not a server fault
        return problem_response(422, "A value in the request cannot be stored or searched for.")

    @app.exception_handler(psycopg.OperationalError)
    async def _database_away(_: Request, exc: psycopg.OperationalError):
        # the database is restarting or unreachable (psycopg_pool.PoolTimeout is one of these):
        # a client should retry; with its Idempotency-Key a retry can never apply a command twice
        return problem_response(503, "The database is unavailable; retry shortly (with the same Idempotency-Key).",
                                headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception):
        # never leak internals; the log has the traceback
        return problem_response(500, "Internal error; the request was not applied.")
