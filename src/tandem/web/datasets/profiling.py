"""Read an uploaded table with DuckDB (through the engine's reader) into its schema and per-column statistics.

The profile is what pages show and what experiments are checked against (columns present, numeric target,
catalog size), so it is computed once and stored as JSON: the schema from a sample while the upload waits, the
statistics over the whole file in a background task (both :func:`profile_table`). Values are made JSON- and
PostgreSQL-safe here: no NaN or infinity, no NUL characters, long strings cut.

A hostile file must cost one bounded job: DuckDB runs with a memory limit, one thread and a temporary folder
to spill into; a compressed file's expanded size, the columns, their names' lengths and the rows are checked
against :class:`Limits` before any statistic is computed; and the statistics are computed a few columns per
statement, never one statement over every column. Messages name the uploaded file, never a server path.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gzip
import math
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import duckdb

from tandem.data.derived import add_derived
from tandem.data.sources import is_numeric, literal, quote, read_source
from tandem.errors import DataError
from tandem.spec import DerivedColumn, TableSource

TOP_VALUES = 5
MAX_STRING = 200
COLUMNS_PER_STATEMENT = 16  # five aggregates each: a statement's plan stays small whatever the file's width
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1024**2


@dataclass(frozen=True)
class Limits:
    """What one file may hold (the organisation's budgets of the same names) and what profiling it may use."""

    decompressed_bytes: int
    rows: int
    columns: int
    column_name_length: int
    memory_bytes: int


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


def connect(memory_bytes: int, spill: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB database in the folder `spill` that holds at most `memory_bytes` in memory, on one thread: its
    tables live on disk and its operators spill there past the limit."""
    return duckdb.connect(
        str(spill / "work.duckdb"),
        config={"memory_limit": f"{max(memory_bytes // 1024**2, 64)}MB", "threads": 1, "temp_directory": str(spill)},
    )


def file_columns(path: Path, fmt: str, limits: Limits) -> list[str]:
    """The column names of a file, from its first lines (to know which declared types apply to it)."""
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    try:
        with tempfile.TemporaryDirectory(prefix="profile-") as spill, connect(limits.memory_bytes, Path(spill)) as con:
            return con.sql(f"SELECT * FROM {reader}({literal(str(path))})").columns
    except duckdb.Error:
        return []  # profile_table reports why the file cannot be read


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _expanded_size(path: Path, limit: int) -> int:
    """Bytes of the file once decompressed, counted in chunks and no further than past `limit`."""
    if path.suffix.lower() != ".gz":
        return path.stat().st_size
    total = 0
    with _open(path) as f:
        while chunk := f.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                break
    return total


def _header_width(path: Path) -> int:
    """Fields of a CSV's first line under the delimiter that splits it most (read from its first MiB)."""
    with _open(path) as f:
        head = f.read(_CHUNK).split(b"\n", 1)[0].decode("utf-8", "replace")
    return max(len(next(csv.reader([head], delimiter=d), [])) for d in _DELIMITERS)


def precheck(path: Path, fmt: str, limits: Limits) -> None:
    """Refuse a CSV whose header is wider than `limits` allow, from its first MiB, before DuckDB reads it.

    Raises ProfileError naming the limit (columns).
    """
    try:
        width = _header_width(path) if fmt == "csv" else 0
    except (OSError, EOFError, zlib.error):
        raise ProfileError("is not a readable gzip file") from None
    if width > limits.columns:
        raise ProfileError(f"the header has {width:,} fields; the limit (columns) is {limits.columns:,}")


def _check_expanded(path: Path, limits: Limits) -> None:
    """Refuse a compressed file that expands past decompressed_bytes (counted in chunks, never held)."""
    try:
        expanded = _expanded_size(path, limits.decompressed_bytes)
    except (OSError, EOFError, zlib.error):
        raise ProfileError("is not a readable gzip file") from None
    if expanded > limits.decompressed_bytes:
        raise ProfileError(
            f"expands to more than {limits.decompressed_bytes:,} bytes; the limit (decompressed_bytes) is "
            f"{limits.decompressed_bytes:,}"
        )


def _check_shape(columns: list[tuple[str, str]], limits: Limits) -> None:
    if len(columns) > limits.columns:
        raise ProfileError(f"the file has {len(columns):,} columns; the limit (columns) is {limits.columns:,}")
    long = [name for name, _ in columns if len(name) > limits.column_name_length]
    if long:
        raise ProfileError(
            f"{len(long)} column name(s) are longer than {limits.column_name_length} characters (the limit "
            f"column_name_length), e.g. {long[0][:40]!r}…; shorten the header"
        )


def _column_statistics(con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str]]) -> list[tuple]:
    """(non-null, distinct, min, max, mean, numbers) of every column, COLUMNS_PER_STATEMENT columns per
    statement; `numbers` counts a text column's values that read as numbers (None for other types)."""
    out: list[tuple] = []
    for start in range(0, len(columns), COLUMNS_PER_STATEMENT):
        parts = []
        for name, kind in columns[start : start + COLUMNS_PER_STATEMENT]:
            q = quote(name)
            parts += [f"count({q})", f"count(DISTINCT {q})"]
            parts += [f"min({q})", f"max({q})"] if _is_orderable(kind) else ["NULL", "NULL"]
            parts.append(f"avg(CAST({q} AS DOUBLE))" if is_numeric(kind) and kind.upper() != "BOOLEAN" else "NULL")
            parts.append(f"count(TRY_CAST({q} AS DOUBLE))" if kind.upper() == "VARCHAR" else "NULL")
        row = con.execute(f"SELECT {', '.join(parts)} FROM data").fetchone()
        out += [tuple(row[i : i + 6]) for i in range(0, len(row), 6)]
    return out


def _scrub(message: str, path: Path) -> str:
    """A DuckDB message with the server's folders taken out: the file is named by its stored name only."""
    return message.replace(str(path.parent) + "/", "").replace(str(path.parent), "")


def profile_table(
    path: Path,
    fmt: str,
    limits: Limits,
    options: dict[str, Any] | None = None,
    derived: list[dict[str, Any]] | None = None,
    *,
    statistics: bool = True,
) -> dict[str, Any]:
    """Schema, row count and per-column statistics of a CSV or Parquet file read with the spec's reading
    `options` (TableSource fields), plus the `derived` columns computed on its rows, within `limits`.

    Returns {"format", "rows", "columns": [{"name", "type", "nulls", "distinct", "min", "max", "mean",
    "top": [{"value", "count"}], "numbers", "derived"}]}. With `statistics=False` only the schema, as DuckDB
    reads it from a sample of the first rows: {"format", "columns": [{"name", "type", "derived"}]}; that is
    cheap and bounded, so it runs while an upload waits, and the whole file is read later in the background.
    Raises ProfileError when the file is unreadable, malformed, empty, expands or holds more than a limit, or a
    derived column cannot be computed (field "derived"). Run :func:`precheck` first: it refuses what should not
    reach DuckDB at all.
    """

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        columns, file_names = _schema(con, path, fmt, limits, options, derived)
        if not statistics:
            return {
                "format": fmt,
                "columns": [{"name": n, "type": k, "derived": n not in file_names} for n, k in columns],
            }
        return _statistics(con, fmt, limits, columns, file_names)

    if statistics:
        _check_expanded(path, limits)
    with tempfile.TemporaryDirectory(prefix="profile-") as spill, connect(limits.memory_bytes, Path(spill)) as con:
        try:
            return work(con)
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ProfileError(_scrub(f"cannot be read as {fmt}: {first}", path)) from None


def _schema(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    limits: Limits,
    options: dict[str, Any] | None,
    derived: list[dict[str, Any]] | None,
) -> tuple[list[tuple[str, str]], set[str]]:
    """The view `t` over the file with the derived columns; its (name, type) columns and the file's own names."""
    try:
        source = TableSource(path=str(path), format=fmt, **(options or {}))
        columns = read_source(con, source, "file")
    except DataError as e:
        raise ProfileError(_scrub(str(e).removeprefix(f"{path}: "), path)) from None
    _check_shape(columns, limits)
    _check_names(columns)
    file_names = {name for name, _ in columns}
    rules = [DerivedColumn.model_validate(d) for d in derived or []]
    typed, problems = add_derived(con, dict(columns), rules, "file", "t")
    if problems:
        raise ProfileError(
            "; ".join(f"{p.path.removeprefix('data.derived.')}: {p.message}" for p in problems), "derived"
        )
    columns = list(typed.items())
    _check_shape(columns, limits)
    return columns, file_names


def _statistics(
    con: duckdb.DuckDBPyConnection, fmt: str, limits: Limits, columns: list[tuple[str, str]], file_names: set[str]
) -> dict[str, Any]:
    con.execute("CREATE TABLE data AS SELECT * FROM t")  # one read of the file; each statistic reads this table
    rows = int(con.execute("SELECT count(*) FROM data").fetchone()[0])
    if rows == 0:
        raise ProfileError("the file has no data rows")
    if rows > limits.rows:
        raise ProfileError(f"the file has {rows:,} rows; the limit (rows) is {limits.rows:,}")
    out = []
    statistics = _column_statistics(con, columns)
    for (name, kind), (non_null, distinct, lo, hi, mean, numbers) in zip(columns, statistics, strict=True):
        top = con.execute(
            f"SELECT {quote(name)} AS v, count(*) AS n FROM data WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v "
            f"LIMIT {TOP_VALUES}"
        ).fetchall()
        out.append(
            {
                "name": name,  # checked above: no control characters, within column_name_length
                "type": kind,
                "nulls": rows - int(non_null),
                "distinct": int(distinct),
                "min": _safe(lo),
                "max": _safe(hi),
                "mean": _safe(mean),
                "top": [{"value": _safe(v), "count": int(n)} for v, n in top],
                "numbers": None if numbers is None else int(numbers),
                "derived": name not in file_names,
            }
        )
    return {"format": fmt, "rows": rows, "columns": out}
