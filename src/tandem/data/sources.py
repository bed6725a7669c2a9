"""Reading CSV and Parquet files into DuckDB relations, and describing their columns."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import duckdb

from tandem.errors import DataError
from tandem.spec import TableSource

NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
    "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN",
)  # fmt: skip


def quote(identifier: str) -> str:
    """Quote a column or view name for SQL (user-supplied names never reach SQL unquoted)."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string literal for SQL."""
    return "'" + value.replace("'", "''") + "'"


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


def read_source(con: duckdb.DuckDBPyConnection, source: TableSource, view: str) -> list[tuple[str, str]]:
    """Create view `view` over the file and return its (column, type) pairs.

    Raises DataError when the file is missing, unreadable, or has no columns.
    """
    path = resolve_path(source.path)
    if not path.is_file():
        raise DataError(f"{source.path}: no such file")
    if table_format(source, path) == "parquet":
        sql = f"SELECT * FROM read_parquet({literal(str(path))})"
    else:
        options = [f"header = {str(source.header).lower()}", f"encoding = {literal(source.encoding)}"]
        if source.delimiter is not None:
            options.append(f"delim = {literal(source.delimiter)}")
        if source.columns:
            options.append("names = [" + ", ".join(literal(c) for c in source.columns) + "]")
        if source.delimiter is not None and not source.header:
            options.append("quote = ''")  # headerless delimited files (e.g. MovieLens) use no quoting
        sql = f"SELECT * FROM read_csv({literal(str(path))}, {', '.join(options)})"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS {sql}")
        rel = con.sql(f"SELECT * FROM {quote(view)}")
        columns = list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    except duckdb.Error as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{source.path}: cannot be read as {table_format(source, path)}: {first_line}") from None
    if not columns:
        raise DataError(f"{source.path}: the file has no columns")
    return columns


def is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.split("(")[0].upper() in NUMERIC_TYPES
