"""Derived columns on a table: the spec's formulas compiled to SQL and added to a DuckDB view."""

from __future__ import annotations

import duckdb

from tandem.errors import Problem
from tandem.expressions import ExpressionError, compile_expression
from tandem.spec import DerivedColumn
from tandem.sql import quote


def add_derived(
    con: duckdb.DuckDBPyConnection, columns: dict[str, str], derived: list[DerivedColumn], source: str, view: str
) -> tuple[dict[str, str], list[Problem]]:
    """Create view `view`: the rows of `source` (whose column types are `columns`) plus each derived column.

    Returns the view's column types and a problem (path `data.derived.N.…`) for each formula that names an
    unknown column, reuses a name, or cannot be computed from the data (arithmetic on text); such a column is
    left out. A formula may use the columns derived before it.
    """
    sql_of = {c: quote(c) for c in columns}
    parts, out, problems = [], dict(columns), []
    for i, c in enumerate(derived):
        path = f"data.derived.{i}"
        if c.name in out:
            problems.append(Problem(f"{path}.name", f"'{c.name}' is already a column; choose another name"))
            continue
        try:
            sql = compile_expression(c.expr, sql_of)
            kind = con.sql(f"SELECT {sql} AS v FROM {quote(source)}").types[0]
        except ExpressionError as e:
            problems.append(Problem(f"{path}.expr", str(e)))
            continue
        except duckdb.Error as e:
            reason = str(e).strip().splitlines()[0]
            problems.append(Problem(f"{path}.expr", f"'{c.expr}' cannot be computed from the data: {reason}"))
            continue
        sql_of[c.name], out[c.name] = f"({sql})", str(kind)
        parts.append(f", {sql} AS {quote(c.name)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS SELECT *{''.join(parts)} FROM {quote(source)}")
    return out, problems
