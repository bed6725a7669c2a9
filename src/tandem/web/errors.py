"""The API's one error shape, and the exceptions services raise to produce it.

Every error response is::

    {"status": 422, "code": "invalid", "message": "…", "errors": {"field": ["message", …], "__all__": […]}}

`errors` is keyed like Django's `ValidationError.message_dict` (`__all__` for cross-field problems) and is
empty when the error concerns no field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

# Request sources ninja puts first in an error's location, and the name every body/form schema parameter has.
_SOURCES = {"body", "query", "path", "form", "file", "header", "cookie"}
BODY_PARAM = "payload"


class ApiError(Exception):
    """An error a service raises for the API to report: a status, a stable code and a sentence."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.errors = errors or {}


class Conflict(ApiError):
    """The request is valid but the record's state forbids it (a config in use, a finished experiment)."""

    status = 409
    code = "conflict"


def body(status: int, code: str, message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The error shape as a dict."""
    return {"status": status, "code": code, "message": message, "errors": errors or {}}


def from_validation_error(error: ValidationError) -> dict[str, list[str]]:
    """Field → messages, from a Django ValidationError of any form (message, list or dict)."""
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {NON_FIELD_ERRORS: list(error.messages)}


def from_schema_errors(errors: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Field → messages, from ninja/pydantic errors, whose locations look like ("body", "payload", "epochs")."""
    out: dict[str, list[str]] = {}
    for err in errors:
        loc: Sequence[Any] = list(err.get("loc", ()))
        if loc and loc[0] in _SOURCES:
            loc = loc[1:]
        if loc and loc[0] == BODY_PARAM:
            loc = loc[1:]
        field = str(loc[0]) if loc else NON_FIELD_ERRORS
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if len(loc) > 1:
            msg = ".".join(str(p) for p in loc[1:]) + ": " + msg
        out.setdefault(field, []).append(msg)
    return out


def summary(errors: dict[str, list[str]]) -> str:
    """One sentence over all field errors: 'The input has 2 problems: epochs, __all__.'"""
    n = sum(len(v) for v in errors.values())
    fields = ", ".join(errors)
    return f"The input has {n} problem{'s' if n != 1 else ''} ({fields})."
