"""The OpenAPI document describes exactly the app's routes, and is well formed."""
from __future__ import annotations

import re

from starlette.routing import Mount, Route

from web import openapi
from web.app import routes


def app_operations() -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        if getattr(route, "include_in_schema", True) is False or isinstance(route, Mount) and route.path == "/static":
            continue  # the HTML pages and their static files (web/pages.py) are not the JSON API
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((path, method.lower()))
    return found


def test_the_document_lists_exactly_the_routes_and_methods_of_the_app():
    documented = {(path, method) for path, item in openapi.document()["paths"].items() for method in item}
    assert documented == app_operations()


def test_every_operation_has_an_id_responses_and_declares_its_path_parameters():
    ids = set()
    for path, item in openapi.document()["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"] not in ids
            ids.add(operation["operationId"])
            assert operation["responses"]
            declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method)


def test_every_reference_resolves():
    document = openapi.document()
    text = repr(document)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in document["components"]["schemas"]
    for operation in (op for item in document["paths"].values() for op in item.values()):
        for requirement in operation.get("security", ()):
            assert set(requirement) <= set(document["components"]["securitySchemes"])


def test_the_analytics_sections_are_the_same_in_the_document_and_the_code():
    from web import analytics, openapi

    assert openapi.ANALYTICS_SECTIONS == analytics.SECTIONS
    assert [int(p) for p in openapi._ANALYTICS_FILTER[0]["schema"]["enum"]] == list(analytics.PERIODS)
