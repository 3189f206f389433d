"""The OpenAPI document: 3.1, real schemas for every request and response, problems documented."""
import pytest
from jsonschema import Draft202012Validator

from wf_gateway.app import create_app
from wf_gateway.settings import GatewaySettings


@pytest.fixture(scope="module")
def doc():
    return create_app(GatewaySettings.from_env()).openapi()


def _ops(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_openapi_31_with_bearer_auth(doc):
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, _, op in _ops(doc):
        assert op["security"] == [{"bearer": []}], path


OWN_TAGS = {"workflows", "versions", "templates", "keys"}  # issue 3's routers


def test_every_body_and_answer_has_a_schema(doc):
    for path, method, op in _ops(doc):
        if not OWN_TAGS & set(op.get("tags", ())):
            continue
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["schema"], (method, path)
        for status, resp in op["responses"].items():
            if status == "204":
                continue
            content = resp["content"]
            media = "application/problem+json" if int(status) >= 400 else "application/json"
            assert content[media]["schema"] != {}, (method, path, status)


def test_errors_are_problems_and_fastapi_422_shape_is_gone(doc):
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
    for path, method, op in _ops(doc):
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(op["responses"]), (method, path)


def test_definition_schema_is_valid_json_schema_and_matches_seed(doc):
    schemas = doc["components"]["schemas"]
    Draft202012Validator.check_schema(schemas["Definition"])
    step = schemas["Step"]
    seed_step = {"id": "fetch", "type": "http_request", "config": {"method": "GET", "url": "https://x.example"}}
    assert not list(Draft202012Validator(step).iter_errors(seed_step))
    assert list(Draft202012Validator(step).iter_errors({**seed_step, "id": "Bad-Id"}))
    assert schemas["Definition"]["required"] == ["name", "steps"]


def test_create_workflow_refers_to_the_definition_schema(doc):
    body = doc["paths"]["/api/workflows"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    create = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert create["properties"]["definition"]["allOf"] == [{"$ref": "#/components/schemas/Definition"}]
    assert create["additionalProperties"] is False
