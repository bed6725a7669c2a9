"""The API under /api/: the NinjaAPI, its authentication, its error handlers and the apps' routers.

Docs are served by ninja's bundled Swagger UI files (ninja is in INSTALLED_APPS), so no CDN is contacted.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, ValidationError
from django.db.models import ProtectedError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaValidationError

from tandem.web import errors
from tandem.web.accounts.auth import Actor, SessionActorAuth, TokenAuth

logger = logging.getLogger("tandem.web.api")


class ErrorOut(Schema):
    """The one error shape: status, a stable code, a sentence, and field errors keyed by field or spec path."""

    status: int
    code: str
    message: str
    errors: dict[str, list[str]]


_ERROR_WHEN = {
    400: "The request is malformed (unreadable JSON, too many fields).",
    401: "No valid token or session.",
    404: "No such record in your organisation (or no such address under /api/).",
    409: "The record's state forbids it (in use by an experiment, finished, already running).",
    413: "The request body is larger than the server accepts.",
    422: "The input breaks the schema or the engine's rules; `errors` says where.",
}


class TandemAPI(NinjaAPI):
    """The NinjaAPI whose schema documents, for every operation, each error status it can answer."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ErrorOut.model_json_schema()
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                statuses = [400, 401, 404]  # 404: a record named in the path, query or body that is not yours
                statuses += [409] if method in ("post", "patch", "put", "delete") else []
                statuses += [413] if "requestBody" in operation else []
                statuses += [422] if "requestBody" in operation or operation.get("parameters") else []
                for status in statuses:
                    operation["responses"].setdefault(
                        str(status),
                        {
                            "description": _ERROR_WHEN[status],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                    )
        return schema


api = TandemAPI(
    title="Tandem API",
    version="1",
    description="Datasets, feature and model configs, and experiments of your organisation. "
    "Authenticate with `Authorization: Bearer <token>` (`manage.py create_token USERNAME`).",
    auth=[TokenAuth(), SessionActorAuth()],
    urls_namespace="api",
)

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 429: "throttled"}  # fmt: skip


def _respond(request: HttpRequest, status: int, code: str, message: str, errs: dict | None = None) -> HttpResponse:
    return api.create_response(request, errors.body(status, code, message, errs), status=status)


@api.exception_handler(errors.ApiError)
def _api_error(request: HttpRequest, exc: errors.ApiError) -> HttpResponse:
    return _respond(request, exc.status, exc.code, exc.message, exc.errors)


@api.exception_handler(ValidationError)
def _django_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errs = errors.from_validation_error(exc)
    return _respond(request, 422, "invalid", errors.summary(errs), errs)


@api.exception_handler(SchemaValidationError)
def _schema_validation(request: HttpRequest, exc: SchemaValidationError) -> HttpResponse:
    errs = errors.from_schema_errors(exc.errors)
    return _respond(request, 422, "invalid", errors.summary(errs), errs)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    message = "Authentication required: send 'Authorization: Bearer <token>' (manage.py create_token USERNAME)."
    return _respond(request, 401, "unauthorized", message)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _respond(request, exc.status_code, _CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # Another organisation's record is reported exactly like a missing one.
    return _respond(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(ProtectedError)
def _protected(request: HttpRequest, exc: ProtectedError) -> HttpResponse:
    n = len(exc.protected_objects)
    return _respond(request, 409, "in_use", f"It is used by {n} experiment{'s' if n != 1 else ''}; delete them first.")


@api.exception_handler(SuspiciousOperation)
def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Django's own limits (body size, number of fields or files); Django would answer 400 too.
    if isinstance(exc, RequestDataTooBig):
        return _respond(request, 413, "too_large", "The request body is larger than the server accepts.")
    return _respond(request, 400, "bad_request", "The request was refused as malformed.")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unexpected error in %s %s", request.method, request.path)
    return _respond(request, 500, "internal_error", "Something went wrong on our side; the error was logged.")


class MeOut(Schema):
    """The caller: user name and organisation."""

    username: str
    organisation: str
    organisation_id: int


@api.get("/me", response=MeOut, tags=["accounts"], summary="Who the token or session belongs to")
def me(request: HttpRequest) -> MeOut:
    actor: Actor = request.auth  # type: ignore[attr-defined]
    return MeOut(
        username=actor.user.get_username(),
        organisation=actor.organisation.name,
        organisation_id=actor.organisation.pk,
    )


def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any address under /api/ that no endpoint serves: the JSON error shape, not an HTML page."""
    return _respond(request, 404, "not_found", f"No endpoint at {request.path}; see /api/docs.")


def _mount() -> None:
    from tandem.web.configs.api import router as configs_router
    from tandem.web.datasets.api import router as datasets_router
    from tandem.web.experiments.api import router as experiments_router

    api.add_router("/datasets", datasets_router)
    api.add_router("/", configs_router)
    api.add_router("/experiments", experiments_router)
    api.add_router("/deployments", "tandem.web.deployments.api.router")


_mount()
