"""The API's list pages: ninja's limit/offset with upper bounds, so no number reaches the database as an overflow."""

from __future__ import annotations

from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

MAX_LIMIT = 1000
MAX_OFFSET = 10**9


class Pages(LimitOffsetPagination):
    """`?limit=` (1–1,000, default 100) and `?offset=` (0–10⁹) items of a list."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_LIMIT)
        offset: int = Field(0, ge=0, le=MAX_OFFSET)
