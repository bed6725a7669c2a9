"""Read an uploaded table with DuckDB (through the engine's reader) into its schema and per-column statistics.

The profile is what pages show and what experiments are checked against (columns present, numeric target,
catalog size), so it is computed once, at upload, and stored as JSON. Values are made JSON- and
PostgreSQL-safe here: no NaN or infinity, no NUL characters, long strings cut.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from pathlib import Path
from typing import Any

import duckdb

from tandem.data.derived import add_derived
from tandem.data.sources import is_numeric, literal, quote, read_source
from tandem.errors import DataError
from tandem.spec import DerivedColumn, TableSource

TOP_VALUES = 5
MAX_STRING = 200
_DELIMITERS = (",", ";", "\t", "|")


class ProfileError(ValueError):
    """The file cannot be used as a table; the message says why, for the person who uploaded it.

    `field` names the upload field at fault when it is not the file itself (a derived column, a declared type).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def file_format(name: str) -> str | None:
    """'csv' or 'parquet' from a file name's suffixes, or None for anything else."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes[-1:] in ([".parquet"], [".pq"]):
        return "parquet"
    if suffixes[-1:] in ([".csv"], [".tsv"], [".txt"]) or suffixes[-2:] in ([".csv", ".gz"], [".tsv", ".gz"]):
        return "csv"
    return None


def _safe(value: Any) -> Any:
    """A JSON value PostgreSQL's jsonb accepts."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _safe(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.replace("\x00", "")
    return text if len(text) <= MAX_STRING else text[: MAX_STRING - 1] + "…"


def _is_orderable(duckdb_type: str) -> bool:
    t = duckdb_type.upper()
    return (is_numeric(t) and not t.startswith("BOOLEAN")) or t.startswith(("DATE", "TIMESTAMP", "TIME"))


def _check_names(columns: list[tuple[str, str]]) -> None:
    for name, _ in columns:
        if not name.strip() or any(ord(ch) < 32 for ch in name):
            raise ProfileError(f"column name {name!r} is empty or holds control characters; fix the header row")
    names = [n for n, _ in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProfileError(f"column names repeat: {', '.join(dupes)}")


def _looks_ragged(con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str]]) -> bool:
    """DuckDB falls back to one text column when rows disagree on their number of fields."""
    if len(columns) != 1:
        return False
    name = columns[0][0]
    if any(d in name for d in _DELIMITERS):
        return True
    sample = con.execute(f"SELECT {quote(name)} FROM file WHERE {quote(name)} IS NOT NULL LIMIT 20").fetchall()
    return any(isinstance(v, str) and any(d in v for d in _DELIMITERS) for (v,) in sample)


def file_columns(path: Path, fmt: str) -> list[str]:
    """The column names of a file, from its first lines (to know which declared types apply to it)."""
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    try:
        with duckdb.connect() as con:
            return con.sql(f"SELECT * FROM {reader}({literal(str(path))})").columns
    except duckdb.Error:
        return []  # profile_table reports why the file cannot be read


def profile_table(
    path: Path, fmt: str, options: dict[str, Any] | None = None, derived: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Schema, row count and per-column statistics of a CSV or Parquet file read with the spec's reading
    `options` (TableSource fields), plus the `derived` columns computed on its rows.

    Returns {"format", "rows", "columns": [{"name", "type", "nulls", "distinct", "min", "max", "mean",
    "top": [{"value", "count"}], "derived"}]}. Raises ProfileError when the file is unreadable, malformed or
    empty, or a derived column cannot be computed (field "derived").
    """
    con = duckdb.connect()
    try:
        try:
            source = TableSource(path=str(path), format=fmt, **(options or {}))
            columns = read_source(con, source, "file")
        except DataError as e:
            raise ProfileError(str(e).removeprefix(f"{path}: ")) from None
        if fmt == "csv" and _looks_ragged(con, columns):
            raise ProfileError(
                "the rows do not all have the same number of fields, so no delimiter fits; check the file is a "
                "well-formed CSV"
            )
        _check_names(columns)
        file_names = {name for name, _ in columns}
        rules = [DerivedColumn.model_validate(d) for d in derived or []]
        typed, problems = add_derived(con, dict(columns), rules, "file", "t")
        if problems:
            raise ProfileError(
                "; ".join(f"{p.path.removeprefix('data.derived.')}: {p.message}" for p in problems), "derived"
            )
        columns = list(typed.items())
        parts = ["count(*)"]
        for name, kind in columns:
            q = quote(name)
            parts += [f"count({q})", f"count(DISTINCT {q})"]
            parts += [f"min({q})", f"max({q})"] if _is_orderable(kind) else ["NULL", "NULL"]
            parts.append(f"avg(CAST({q} AS DOUBLE))" if is_numeric(kind) and kind.upper() != "BOOLEAN" else "NULL")
        row = con.execute(f"SELECT {', '.join(parts)} FROM t").fetchone()
        rows = int(row[0])
        if rows == 0:
            raise ProfileError("the file has no data rows")
        out = []
        for i, (name, kind) in enumerate(columns):
            non_null, distinct, lo, hi, mean = row[1 + 5 * i : 6 + 5 * i]
            top = con.execute(
                f"SELECT {quote(name)} AS v, count(*) AS n FROM t WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v "
                f"LIMIT {TOP_VALUES}"
            ).fetchall()
            out.append(
                {
                    "name": _safe(name),
                    "type": kind,
                    "nulls": rows - int(non_null),
                    "distinct": int(distinct),
                    "min": _safe(lo),
                    "max": _safe(hi),
                    "mean": _safe(mean),
                    "top": [{"value": _safe(v), "count": int(n)} for v, n in top],
                    "derived": name not in file_names,
                }
            )
        return {"format": fmt, "rows": rows, "columns": out}
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ProfileError(f"cannot be read as {fmt}: {first}") from None
    finally:
        con.close()
