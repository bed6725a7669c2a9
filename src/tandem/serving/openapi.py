"""The model server's routes as an OpenAPI 3.1 document, built from the request classes that validate the bodies
(one source for both), so that clients and API fuzzers know every route, body and status."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from tandem.bundle_format import ROUTES
from tandem.serving.requests import RankRequest, RecommendRequest, RetrieveRequest

PATH = "/v1/openapi.json"
_ERROR = {
    "type": "object",
    "required": ["status", "code", "message"],
    "properties": {
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_REFUSALS = {
    "400": "the body is not JSON",
    "404": "the bundle has no signature for this route",
    "413": "the body or the work it asks for (buyers × ids, buyers × k) is over the limit",
    "422": "a field is missing, of the wrong type, out of bounds, or names an unknown product",
}
_POSTS = {
    "retrieve": (RetrieveRequest, "top-k product ids and scores per buyer"),
    "rank": (RankRequest, "a prediction per (buyer, product id), in the request's order"),
    "recommend": (RecommendRequest, "retrieve, then order by the rating head"),
}


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def _refusals() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": why, "content": error} for status, why in _REFUSALS.items()}


def document() -> dict[str, Any]:
    """The OpenAPI document of `tandem serve` (GET /v1/openapi.json)."""
    refs, schemas = models_json_schema(
        [(model, "validation") for model, _ in _POSTS.values()], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, Any] = {
        ROUTES[name]: {"get": {"summary": summary, "responses": {"200": _answer(summary)}}}
        for name, summary in (("health", "liveness and the signatures"), ("metadata", "the bundle's manifest"))
    }
    for name, (model, summary) in _POSTS.items():
        body = {"required": True, "content": {"application/json": {"schema": refs[(model, "validation")]}}}
        paths[ROUTES[name]] = {
            "post": {"summary": summary, "requestBody": body, "responses": {"200": _answer(summary), **_refusals()}}
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tandem serve", "version": "1"},
        "paths": paths,
        "components": {"schemas": {**schemas.get("$defs", {}), "Error": _ERROR}},
    }
