"""The OpenAPI schema and docs: complete, and served without any CDN."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tandem.web.api import api


def test_the_schema_is_public_json_listing_every_endpoint() -> None:
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/datasets", "/api/feature-configs", "/api/model-configs", "/api/experiments",
            "/api/experiments/compare", "/api/experiments/{experiment_id}/cancel"} <= set(paths)  # fmt: skip
    assert "BearerAuth" in str(response.json()["components"]["securitySchemes"]) or "TokenAuth" in str(
        response.json()["components"]["securitySchemes"]
    )


def test_operation_ids_are_unique() -> None:
    schema = api.get_openapi_schema()
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.django_db
def test_the_docs_page_loads_only_local_assets(live_server) -> None:
    """Every script and stylesheet of /api/docs comes from this server, and each one is served."""
    import urllib.request

    html = urllib.request.urlopen(f"{live_server.url}/api/docs").read().decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        if asset.endswith((".js", ".css")):
            assert urllib.request.urlopen(f"{live_server.url}{asset}").status == 200
