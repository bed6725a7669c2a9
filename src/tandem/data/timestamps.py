"""Timestamps as Unix seconds: numbers, dates and times as they are, text by a declared or guessed layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from tandem.data.sources import is_numeric
from tandem.sql import literal, quote

# Date and time layouts tried, over every value, when a timestamp column is text and no format is declared.
TIMESTAMP_FORMATS = (
    "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d",
    "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S",
)  # fmt: skip


def is_temporal(duckdb_type: str) -> bool:
    return duckdb_type.upper().startswith(("TIMESTAMP", "DATE"))


def timestamp_sql(column: str, duckdb_type: str, fmt: str | None = None) -> str:
    """SQL for the Unix seconds of a timestamp column: numbers as they are, dates and times by epoch, text by
    `fmt` (strptime) or, without one, as ISO 8601. Unreadable values give NULL."""
    col = quote(column)
    if is_numeric(duckdb_type):
        return f"CAST({col} AS BIGINT)"
    if is_temporal(duckdb_type):
        return f"CAST(epoch({col}) AS BIGINT)"
    if fmt is not None:
        return f"CAST(epoch(try_strptime(CAST({col} AS VARCHAR), {literal(fmt)})) AS BIGINT)"
    return f"CAST(epoch(TRY_CAST({col} AS TIMESTAMPTZ)) AS BIGINT)"


@dataclass(frozen=True)
class FormatGuess:
    """The layout that reads the most values of a text column (None: ISO 8601 reads as many), and every
    layout that reads all of them when there are several (day/month against month/day)."""

    format: str | None
    ties: list[str] = field(default_factory=list)


def guess_format(con: duckdb.DuckDBPyConnection, view: str, column: str) -> FormatGuess:
    """Try each layout of TIMESTAMP_FORMATS on every value of a text column of `view`.

    Reading every value, not the first lines, tells 11/13/2000 (M/D/Y) from 13/11/2000 (D/M/Y); when two
    layouts read every value (all days ≤ 12) either could be right, so both are returned as ties.
    """
    col = f"CAST({quote(column)} AS VARCHAR)"
    counts = con.execute(
        f"SELECT count({col}), count(TRY_CAST({col} AS TIMESTAMPTZ)), "
        + ", ".join(f"count(try_strptime({col}, {literal(f)}))" for f in TIMESTAMP_FORMATS)
        + f" FROM {quote(view)}"
    ).fetchone()
    total, iso, by_format = counts[0], counts[1], dict(zip(TIMESTAMP_FORMATS, counts[2:], strict=True))
    if iso == total or total == 0:
        return FormatGuess(None)
    complete = [f for f, n in by_format.items() if n == total]
    if len(complete) > 1:
        return FormatGuess(None, complete)
    best = max(by_format, key=lambda f: by_format[f])
    return FormatGuess(best if by_format[best] > iso else None)
