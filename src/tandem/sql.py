"""Quoting for the SQL the engine builds: user-supplied names and values never reach DuckDB unquoted."""

from __future__ import annotations


def quote(identifier: str) -> str:
    """Quote a column or view name for SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string literal for SQL."""
    return "'" + value.replace("'", "''") + "'"
