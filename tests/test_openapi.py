"""The OpenAPI document: valid, complete, bounded, and the same rules the API enforces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from api.openapi import build_document, routes
from api.schemas import PATH_PARAMETERS

DOCUMENT_PATH = "/api/0/openapi.json"
SAMPLE_PATH_VALUES = {"file_id": "1", "repo_id": "1", "project_id": "1", "signature": "ab",
                      "plugin": "builtin"}


@pytest.fixture
def document(client) -> dict[str, Any]:
    return client.simulate_get(DOCUMENT_PATH).json


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def request_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every schema a request is checked against, named by where it is."""
    for path, method, operation in operations(document):
        for parameter in operation["parameters"]:
            yield f"{method} {path} {parameter['name']}", parameter["schema"]
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{method} {path} {media_type}", content["schema"]


def subschemas(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    yield where, schema
    for name, prop in schema.get("properties", {}).items():
        yield from subschemas(prop, f"{where}.{name}")
    if "items" in schema:
        yield from subschemas(schema["items"], f"{where}[]")
    for option in schema.get("anyOf", []):
        yield from subschemas(option, where)


def types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def sample_path(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: SAMPLE_PATH_VALUES.get(m.group(1), "x"), path)


def test_document_is_valid_openapi_3_1(document):
    validate(document)

    assert document["openapi"] == "3.1.0"


def test_document_describes_every_route_and_method(client, document):
    served = {(re.sub(r"{(\w+):\w+}", r"{\1}", template), method)
              for template, method, _, _ in routes(client.app)}

    described = {(path, method) for path, method, _ in operations(document)}

    assert described == served
    assert ("/api/0/organizations/{org}/releases/", "POST") in described
    assert (DOCUMENT_PATH, "GET") in described


def test_document_is_served_as_built(client):
    response = client.simulate_get(DOCUMENT_PATH)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json == build_document(client.app)


def test_every_input_string_and_list_is_bounded(document):
    unbounded = []
    for name, schema in request_schemas(document):
        for where, sub in subschemas(schema, name):
            if "string" in types(sub) and "maxLength" not in sub:
                unbounded.append(where)
            if "array" in types(sub) and "maxItems" not in sub:
                unbounded.append(where)

    assert unbounded == []


def test_every_operation_documents_its_errors(document):
    for path, method, operation in operations(document):
        statuses = set(operation["responses"])
        if "security" in operation:
            assert {"401", "403"} <= statuses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= statuses, (method, path)
        for status, response in operation["responses"].items():
            if status >= "400" and status != "414":
                assert "application/json" in response["content"], (method, path, status)


def test_path_parameters_come_from_one_table(document):
    for _, _, operation in operations(document):
        for parameter in operation["parameters"]:
            if parameter["in"] == "path":
                assert parameter["schema"] == PATH_PARAMETERS[parameter["name"]].schema


def json_string_fields(document) -> Iterator[tuple[str, str, dict[str, Any], str, int]]:
    """Yield each top-level string field of every JSON request body with its maxLength.

    Each comes with a body that has an example value for every required field.

    Release hooks check their signature before their body, so they are left out.
    """
    for path, method, operation in operations(document):
        if path.startswith("/api/hooks/"):
            continue
        content = operation.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            continue
        properties = schema["properties"]
        valid = {name: properties[name]["examples"][0] for name in schema.get("required", [])}
        for name, prop in properties.items():
            if "string" in types(prop) and "integer" not in types(prop):
                yield path, method, valid, name, prop["maxLength"]


def test_json_fields_over_their_max_length_are_rejected(client, document):
    for path, method, valid, name, max_length in json_string_fields(document):
        response = client.simulate_request(method, sample_path(path),
                                           json={**valid, name: "a" * (max_length + 1)})

        assert response.status_code == 400, (method, path, name)
        assert list(response.json) in ([name], ["detail"]), (method, path, response.json)
        if list(response.json) == ["detail"]:
            assert "version" in response.json["detail"], (method, path, response.json)


def test_query_parameters_over_their_bounds_are_rejected(client, document):
    for path, method, operation in operations(document):
        for parameter in operation["parameters"]:
            schema = parameter["schema"]
            if parameter["in"] != "query":
                continue
            if "array" in types(schema):
                values = ["1"] * (schema["maxItems"] + 1)
            elif "string" in types(schema) and "enum" not in schema:
                values = ["1" * (schema["maxLength"] + 1)]
            elif "integer" in types(schema):
                values = [str(schema["maximum"] + 1)]
            else:
                values = ["not-a-value"]

            response = client.simulate_request(method, sample_path(path),
                                               params={parameter["name"]: values})

            assert response.status_code == 400, (method, path, parameter["name"])
            assert list(response.json) == [parameter["name"]], (method, path, response.json)
