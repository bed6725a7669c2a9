"""What one request, one file, one model and one organisation may use, decided before the work starts.

Every limit is here, by name, with its default; `TANDEM_BUDGETS` in the settings (a JSON object in the
environment variable of the same name) changes the defaults, and an organisation's `budgets` field changes
single values for that organisation. A refusal is an :class:`OverBudget` (413 for sizes, 429 for counts) whose
message gives the figure, the limit's value and its name, so the person refused knows what to ask for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from tandem.web.errors import ApiError

MiB, GiB = 1024**2, 1024**3

DEFAULTS: dict[str, int] = {
    "upload_bytes": 512 * MiB,  # one uploaded file, refused from Content-Length before the body is read
    "decompressed_bytes": 2 * GiB,  # a .csv.gz once expanded
    "rows": 50_000_000,  # rows of one file
    "columns": 500,  # columns of one file
    "column_name_length": 200,  # characters of one column name
    "parameters": 200_000_000,  # a model's trainable numbers, from the spec and the dataset's profile
    "training_memory_bytes": 8 * GiB,  # a training step's estimated memory
    "rank_pairs": 100_000,  # buyers × product ids in one rank request
    "retrieve_results": 100_000,  # buyers × k in one retrieve or recommend request
    "queued_experiments": 8,  # pending or running experiments of an organisation
    "running_servers": 4,  # live model servers of an organisation
    "stored_bytes": 20 * GiB,  # dataset files of an organisation
    "profile_memory_bytes": 1 * GiB,  # DuckDB's memory while profiling one file (it spills to disk past it)
}

# Which status a limit's refusal answers: sizes are 413, counts of running things 429.
_THROTTLES = {"queued_experiments", "running_servers"}


class OverBudget(ApiError):
    """A request that would pass one of the limits; `limit` names it."""

    status = 413
    code = "over_budget"

    def __init__(self, limit: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, errors={field: [message]} if field else None)
        self.limit = limit
        if limit in _THROTTLES:
            self.status = 429


def defaults() -> dict[str, int]:
    """The platform's limits: DEFAULTS with the settings' TANDEM_BUDGETS applied."""
    return {**DEFAULTS, **getattr(settings, "TANDEM_BUDGETS", {})}


def of(organisation: Any | None) -> dict[str, int]:
    """The limits that apply to `organisation` (None: the platform's defaults)."""
    own = getattr(organisation, "budgets", None) or {}
    return {**defaults(), **{k: int(v) for k, v in own.items() if k in DEFAULTS}}


def limit(organisation: Any | None, name: str) -> int:
    """One limit's value for `organisation`."""
    return of(organisation)[name]


def figure(n: int, name: str) -> str:
    """A number as a person reads it: bytes in KiB/MiB/GiB, counts with thousands separators."""
    if not name.endswith("_bytes"):
        return f"{n:,}"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check(organisation: Any | None, name: str, value: int, what: str, *, field: str | None = None) -> None:
    """Raise OverBudget when `value` passes the limit `name`; `what` says what was counted ("the file")."""
    cap = limit(organisation, name)
    if value > cap:
        raise OverBudget(
            name,
            f"{what} is {figure(value, name)}; the limit ({name}) is {figure(cap, name)}.",
            field=field,
        )
