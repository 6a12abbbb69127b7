"""The OpenAPI document (rest_bridge/static/openapi.json) is valid OpenAPI 3.1, names exactly
the routes the bridge registers, and is served at /openapi.json with a page at /docs that
needs nothing from outside the bridge."""

from __future__ import annotations

import json
import re
from typing import Any

from openapi_spec_validator import OpenAPIV31SpecValidator

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.openapi import DOCUMENT
from tests.conftest import Stack

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

NOT_YET_SERVED: set[tuple[str, str]] = set()
"""Documented operations the bridge does not serve yet (none)."""


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return doc


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def registered_routes() -> set[tuple[str, str]]:
    app = create_app(BridgeConfig())
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        routes.add((route.method, resource.canonical))
    return routes


def test_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    errors = [str(error.message) for error in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert not errors, errors


def test_every_route_is_documented_and_every_documented_path_is_served() -> None:
    routes, documented = registered_routes(), documented_operations()
    assert routes - documented == set(), "routes missing from rest_bridge/static/openapi.json"
    assert documented - routes == NOT_YET_SERVED, "documented operations the bridge does not serve"


def test_operation_ids_are_unique_and_every_ref_resolves() -> None:
    doc = document()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', DOCUMENT.read_text())
    for kind, name in refs:
        assert name in doc["components"][kind], f"dangling $ref to {kind}/{name}"


async def test_bridge_serves_the_document_and_an_offline_page(stack: Stack) -> None:
    async with stack.http.get("/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == document()
    async with stack.http.get("/docs") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert 'fetch("openapi.json")' in page
    # Nothing loaded from elsewhere: no external script, stylesheet, font or image.
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert not re.search(r"@import|url\(", page)


def test_the_job_paths_schemas_are_the_job_schema_plus_asyncgates_own_keys() -> None:
    """JobDetail repeats Job's keys (the document's renderer shows one flat table per object),
    so the copies must not drift: Job's keys, then asyncgate's own; ListedJob is JobDetail
    without the result."""
    schemas = document()["components"]["schemas"]
    job, detail, listed = schemas["Job"], schemas["JobDetail"], schemas["ListedJob"]
    own = ["request_type", "queue_position", "attempt", "labels", "webhook"]
    assert list(detail["properties"]) == [*job["properties"], *own]
    assert {key: detail["properties"][key] for key in job["properties"]} == job["properties"]
    assert listed["properties"] == {k: v for k, v in detail["properties"].items() if k != "result"}
    assert job["required"] == detail["required"] == listed["required"]
