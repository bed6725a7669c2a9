"""Limits every request meets before any view reads its body: its declared size and its multipart framing.

Django reads a body when a view first touches `request.POST` or `request.FILES`, writing uploads to disk as they
arrive; a 300 MiB body to the login page would be read before the CSRF check refuses it. Here the size is judged
from `Content-Length` alone: a dataset upload may carry three files of `upload_bytes` each, any other body only
DATA_UPLOAD_MAX_MEMORY_SIZE. A multipart body without a usable boundary is refused here too, rather than raising
deep inside the parser, and so is a JSON body whose text is not valid Unicode (a lone surrogate).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from io import BytesIO

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.urls import Resolver404, resolve

from tandem.jsontext import may_hold_surrogates, unencodable_path
from tandem.web import budgets, errors

# Views that take dataset files, and how many files one upload may hold.
UPLOAD_VIEWS = {"api:upload_dataset", "pages:dataset_new"}
FILES_PER_UPLOAD = 3
FORM_FIELDS_BYTES = 1024**2  # the form fields beside the files


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse(errors.body(status, code, message), status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _is_upload(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).view_name in UPLOAD_VIEWS
    except Resolver404:
        return False


def body_limit(request: HttpRequest) -> int:
    """The most bytes this request's body may declare."""
    if request.content_type == "multipart/form-data" and _is_upload(request):
        return FILES_PER_UPLOAD * budgets.defaults()["upload_bytes"] + FORM_FIELDS_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestLimits:
    """Refuse a body over its limit (413) or a malformed multipart body (400), unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            return _refusal(request, 400, "bad_request", "The Content-Length header is not a number of bytes.")
        size, cap = int(declared), body_limit(request)
        if size > cap:
            message = (
                f"The request body is {budgets.figure(size, 'body_bytes')}; "
                f"this address accepts at most {budgets.figure(cap, 'body_bytes')}."
            )
            return _refusal(request, 413, "too_large", message)
        if request.content_type == "multipart/form-data" and size:
            try:
                MultiPartParser(request.META, BytesIO(), [], request.encoding)
            except MultiPartParserError:
                message = "The multipart body has no valid boundary in its Content-Type header."
                return _refusal(request, 400, "bad_request", message)
        if request.content_type == "application/json" and size and may_hold_surrogates(request.body):
            where = _unencodable(request.body)
            if where is not None:
                message = f"{where}: the text holds a lone surrogate (\\ud800–\\udfff), which is not valid Unicode."
                return JsonResponse(errors.body(422, "invalid", message, {where.split(".")[0]: [message]}), status=422)
        return self.get_response(request)


def _unencodable(raw: bytes) -> str | None:
    """Where a JSON body's text cannot be encoded; None when it can, or when it is not JSON (the view says so)."""
    try:
        return unencodable_path(json.loads(raw))
    except (ValueError, RecursionError):
        return None


# Pages load their scripts and styles from the platform itself (htmx and Chart.js are vendored); style
# attributes are used in templates, and htmx adds its indicator style, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# ninja's interactive docs start Swagger UI from an inline script.
_CSP_EXEMPT = ("/api/docs",)


class ContentSecurityPolicy:
    """Adds the Content-Security-Policy header to every answer but the API's interactive docs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path_info.startswith(_CSP_EXEMPT):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
