"""The one error type of the serving layer: a request the server refuses, with the HTTP status that says why."""

from __future__ import annotations

from typing import Any

from tandem.errors import TandemError


class RequestError(TandemError):
    """A refused request: `status` (4xx), a stable `code` callers can test, a sentence, optional field errors."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body

    def __repr__(self) -> str:
        return f"RequestError(status={self.status}, code={self.code!r}, message={self.message!r})"
