"""The HTTP app: a few typed JSON routes over one bundle, loaded once.

  POST /v1/retrieve    {"buyer": {...}, "k": 10, "exclude": [...]}      → {"product_ids", "scores", "fallback"}
  POST /v1/rank        {"buyer": {...}, "product_ids": [...]}           → {"predictions", "fallback"}
  POST /v1/recommend   {"buyer": {...}, "k": 10, "candidates": 100}     → {"product_ids", "predictions", "scores", ...}
  GET  /v1/health, GET /v1/metadata, GET /v1/openapi.json (every route, body and status)

With {"buyers": [...]} instead of "buyer", the answer is {"results": [one answer per buyer]}. Every refusal is a
JSON body {"status", "code", "message", "fields"?} with a 4xx status. The scoring runs in worker threads (numpy,
FAISS and ONNX Runtime release the GIL), so the event loop keeps reading and answering other clients while one
large request computes; COMPUTE_THREADS of them at a time, the others wait their turn. A large body (a long id
list) is decoded and validated in a worker thread too. (Scoring one buyer on the event loop itself, to save the
hand-off, was tried: over a 100K-product catalog it made the median ten times slower, bench/SERVING.md.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import PurePath
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tandem.bundle_format import ROUTES
from tandem.serving import openapi, recommender
from tandem.serving.bundle import Bundle
from tandem.serving.errors import RequestError
from tandem.serving.requests import (
    MAX_BODY_BYTES,
    RankRequest,
    RecommendRequest,
    RetrieveRequest,
    parse_json,
    parse_request,
)

log = logging.getLogger("tandem.serving")
COMPUTE_THREADS = 2
INLINE_BODY_BYTES = 16 * 1024  # a body up to this size is decoded and validated on the event loop


def public_manifest(manifest: Any) -> Any:
    """The manifest with every file `path` cut to its file name: the server's folders are nobody's business."""
    if isinstance(manifest, dict):
        return {
            k: PurePath(v).name if k == "path" and isinstance(v, str) else public_manifest(v)
            for k, v in manifest.items()
        }
    if isinstance(manifest, list):
        return [public_manifest(v) for v in manifest]
    return manifest


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_BODY_BYTES before more of it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(413, "body_too_large", f"the body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "body_too_large", f"the body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parsed(model: type[Any], raw: bytes) -> Any:
    return parse_request(model, parse_json(raw))


def _answer(batched: bool, results: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"results": results} if batched else results[0])


class ServingApp:
    """Route handlers over one loaded bundle."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.public_manifest = public_manifest(bundle.manifest.model_dump(mode="json"))
        self.openapi_document = openapi.document()
        self._limiter: anyio.CapacityLimiter | None = None

    async def _in_thread(self, work: Callable[[], Any]) -> Any:
        if self._limiter is None:  # made inside the event loop that uses it
            self._limiter = anyio.CapacityLimiter(COMPUTE_THREADS)
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)

    async def _parse(self, model: type[Any], request: Request) -> Any:
        """The validated body; a large one (a long id list) is decoded and validated in a worker thread too."""
        raw = await _read_body(request)
        work = partial(_parsed, model, raw)
        return work() if len(raw) <= INLINE_BODY_BYTES else await self._in_thread(work)

    async def _compute(self, fn: Callable[..., list[dict[str, Any]]], *args: Any) -> list[dict[str, Any]]:
        return await self._in_thread(partial(fn, self.bundle, *args))

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "model_type": self.bundle.manifest.model_type,
                "signatures": list(self.bundle.manifest.signatures),
            }
        )

    async def metadata(self, request: Request) -> JSONResponse:
        return JSONResponse(self.public_manifest)

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(self.openapi_document)

    async def retrieve(self, request: Request) -> JSONResponse:
        body = await self._parse(RetrieveRequest, request)
        results = await self._compute(recommender.retrieve, body.buyer_list(), body.k, body.exclude_lists())
        return _answer(body.batched, results)

    async def rank(self, request: Request) -> JSONResponse:
        body = await self._parse(RankRequest, request)
        results = await self._compute(recommender.rank, body.buyer_list(), body.product_lists())
        return _answer(body.batched, results)

    async def recommend(self, request: Request) -> JSONResponse:
        body = await self._parse(RecommendRequest, request)
        args = (body.buyer_list(), body.k, body.exclude_lists(), body.candidates, body.new_only)
        results = await self._compute(recommender.recommend, *args)
        return _answer(body.batched, results)


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"status": exc.status_code, "code": code, "message": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Reaching this is a bug: every input a client controls is refused with a 4xx before it gets here.
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"status": 500, "code": "internal_error", "message": "internal error"}, status_code=500)


def create_app(bundle: Bundle) -> Starlette:
    """The Starlette app serving `bundle`; routes for a signature the bundle lacks answer 404 saying so."""
    handlers = ServingApp(bundle)
    routes = [
        Route(ROUTES["health"], handlers.health, methods=["GET"]),
        Route(ROUTES["metadata"], handlers.metadata, methods=["GET"]),
        Route(openapi.PATH, handlers.openapi, methods=["GET"]),
        Route(ROUTES["retrieve"], handlers.retrieve, methods=["POST"]),
        Route(ROUTES["rank"], handlers.rank, methods=["POST"]),
        Route(ROUTES["recommend"], handlers.recommend, methods=["POST"]),
    ]
    exception_handlers: dict[Any, Callable[..., Any]] = {
        RequestError: _request_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }
    return Starlette(routes=routes, exception_handlers=exception_handlers)
