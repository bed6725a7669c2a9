"""Reading CSV and Parquet files into DuckDB relations, and describing their columns."""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import duckdb

from tandem.errors import DataError
from tandem.spec import TableSource
from tandem.sql import literal, quote

NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
    "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN",
)  # fmt: skip


# Rows DuckDB reads to guess a CSV's column types: the whole of most files, a bounded pass over huge ones.
SNIFF_ROWS = 1_000_000


class AmbiguousDatesError(DataError):
    """Every date of a column fits both day/month and month/day; `columns` and `formats` say which."""

    def __init__(self, message: str, columns: list[str], formats: tuple[str, str]) -> None:
        super().__init__(message)
        self.columns, self.formats = columns, formats


def resolve_path(path: str) -> Path:
    """Turn a spec path into a file path; `pkg:package/inner/path` points inside an installed package."""
    if path.startswith("pkg:"):
        package, _, inner = path[4:].partition("/")
        try:
            return Path(str(importlib.resources.files(package).joinpath(inner)))
        except ModuleNotFoundError:
            raise DataError(f"{path}: the package '{package}' is not installed") from None
    return Path(path)


def table_format(source: TableSource, path: Path) -> str:
    if source.format != "auto":
        return source.format
    suffixes = [s.lower() for s in path.suffixes]
    return "parquet" if ".parquet" in suffixes or ".pq" in suffixes else "csv"


def _csv_options(source: TableSource) -> list[str]:
    options = [f"header = {str(source.header).lower()}", f"encoding = {literal(source.encoding)}"]
    if source.delimiter is not None:
        options.append(f"delim = {literal(source.delimiter)}")
    if source.columns:
        options.append("names = [" + ", ".join(literal(c) for c in source.columns) + "]")
    if source.delimiter is not None and not source.header:
        options.append("quote = ''")  # headerless delimited files (e.g. MovieLens) use no quoting
    if source.null_values:
        options.append("nullstr = [" + ", ".join(literal(v) for v in ["", *source.null_values]) + "]")
    if source.timestamp_format:
        options += [f"dateformat = {literal(source.timestamp_format)}"]
        options += [f"timestampformat = {literal(source.timestamp_format)}"]
    return options


def _struct(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in mapping.items()) + "}"


def _csv_sql(con: duckdb.DuckDBPyConnection, source: TableSource, path: Path) -> str:
    """read_csv over the file with every column's type fixed: declared ones as declared, the others as DuckDB
    guesses them from the first SNIFF_ROWS rows (the whole file for most), not from its first lines."""
    options = _csv_options(source)
    sniffed = con.execute(
        f"SELECT Columns, DateFormat, TimestampFormat, SkipRows FROM sniff_csv({literal(str(path))}, "
        f"{', '.join(options)}, sample_size = {SNIFF_ROWS})"
    ).fetchone()
    columns, date_format, timestamp_format, skipped = sniffed
    found = {c["name"]: c["type"] for c in columns}
    if skipped or _one_undivided_column(con, path, options, found, source.delimiter):
        raise DataError(
            f"{source.path}: the rows do not all have the same number of fields, so no delimiter fits; check the "
            "file is a well-formed CSV"
        )
    unknown = [c for c in source.types if c not in found]
    if unknown:
        raise DataError(
            f"{source.path}: 'types' names columns the file does not have ({', '.join(unknown)}); "
            f"it has: {', '.join(list(found)[:30])}"
        )
    types = {name: source.types.get(name, kind) for name, kind in found.items()}
    if not source.timestamp_format:
        dated = [c for c, kind in found.items() if kind in ("DATE", "TIMESTAMP") and c not in source.types]
        for fmt in {date_format, timestamp_format} - {None, ""}:
            _refuse_day_month_doubt(con, path, options, dated, fmt, source.path)
        # Keep the formats found over the whole sample; read_csv would guess them again from the top lines.
        options += [f"dateformat = {literal(date_format)}"] if date_format else []
        options += [f"timestampformat = {literal(timestamp_format)}"] if timestamp_format else []
    options.append(f"types = {_struct(types)}")
    return f"SELECT * FROM read_csv({literal(str(path))}, {', '.join(options)})"


_DELIMITERS = (",", ";", "\t", "|")


def _one_undivided_column(
    con: duckdb.DuckDBPyConnection, path: Path, options: list[str], found: dict[str, str], delimiter: str | None
) -> bool:
    """DuckDB falls back to one text column when no delimiter splits every row the same way: a single column
    whose name or first values hold a delimiter is such a file (unless the spec named the delimiter)."""
    if len(found) != 1 or delimiter is not None:
        return False
    name = next(iter(found))
    if any(d in name for d in _DELIMITERS):
        return True
    sample = con.execute(
        f"SELECT {quote(name)} FROM read_csv({literal(str(path))}, {', '.join(options)}, all_varchar = true) "
        f"WHERE {quote(name)} IS NOT NULL LIMIT 20"
    ).fetchall()
    return any(any(d in v for d in _DELIMITERS) for (v,) in sample)


def _refuse_day_month_doubt(
    con: duckdb.DuckDBPyConnection, path: Path, options: list[str], columns: list[str], fmt: str, name: str
) -> None:
    """Raise DataError when DuckDB chose day/month (or month/day) but the swapped layout reads every value too.

    DuckDB settles such a tie silently (day first); a user's 01/02/2000 may mean either, so they must say.
    Year-first layouts (2000-01-02) are read as ISO 8601 and never doubted.
    """
    if fmt.startswith("%Y") or "%d" not in fmt or "%m" not in fmt or not columns:
        return
    swapped = fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
    parts = [f"count({quote(c)}) = count(try_strptime({quote(c)}, {literal(swapped)}))" for c in columns]
    row = con.execute(
        f"SELECT {', '.join(parts)} FROM read_csv({literal(str(path))}, {', '.join(options)}, all_varchar = true)"
    ).fetchone()
    doubtful = [c for c, both in zip(columns, row, strict=True) if both]
    if doubtful:
        raise AmbiguousDatesError(
            f"{name}: every date in {', '.join(doubtful)} fits both {fmt} and {swapped}; "
            f"declare the file's timestamp_format",
            doubtful,
            (fmt, swapped),
        )


def _parquet_sql(source: TableSource, path: Path) -> str:
    sql = f"SELECT * FROM read_parquet({literal(str(path))})"
    if source.types:
        casts = ", ".join(f"CAST({quote(c)} AS {kind}) AS {quote(c)}" for c, kind in source.types.items())
        sql = f"SELECT * REPLACE ({casts}) FROM read_parquet({literal(str(path))})"
    return sql


def read_source(con: duckdb.DuckDBPyConnection, source: TableSource, view: str) -> list[tuple[str, str]]:
    """Create view `view` over the file and return its (column, type) pairs.

    Raises DataError when the file is missing, unreadable, has no columns, or `types` names a column it lacks.
    """
    path = resolve_path(source.path)
    if not path.is_file():
        raise DataError(f"{source.path}: no such file")
    fmt = table_format(source, path)
    try:
        sql = _parquet_sql(source, path) if fmt == "parquet" else _csv_sql(con, source, path)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS {sql}")
        rel = con.sql(f"SELECT * FROM {quote(view)}")
        columns = list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    except duckdb.Error as e:
        if fmt == "csv" and source.encoding == "utf-8" and (where := _not_utf8(path)) is not None:
            raise DataError(
                f"{source.path}: is not UTF-8 text (byte {where[1]:#04x} at offset {where[0]:,}); it reads as "
                "latin-1: set the encoding to latin-1"
            ) from None
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{source.path}: cannot be read as {fmt}: {first_line}") from None
    if not columns:
        raise DataError(f"{source.path}: the file has no columns")
    return columns


def mostly_numbers(values: int, numbers: int) -> bool:
    """A text column of `values` non-missing values, `numbers` of which read as numbers, is a numeric column with
    a few bad values (a ranking target whose other rows are dropped and counted) rather than a text column."""
    return numbers > 0 and 2 * numbers >= values


def _not_utf8(path: Path, limit: int = 16 * 1024**2) -> tuple[int, int] | None:
    """(offset, byte) of the first byte of the file's first `limit` bytes that is not UTF-8, when the text reads
    as latin-1 instead (no NUL bytes: not a binary file); None otherwise."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(limit)
    if b"\0" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = len(head) == limit and e.start >= limit - 3  # a character cut by `limit`, not a bad byte
        return None if cut else (e.start, head[e.start])
    return None


def is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.split("(")[0].upper() in NUMERIC_TYPES
