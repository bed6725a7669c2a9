"""Small histograms of a dataset's columns, for the statistics table.

The platform's profile holds counts, extremes and the top values, not a distribution, so columns are
summarised here with DuckDB straight from the stored file (read with the dataset's reading options, in the
bounded memory profiling has, spilling to a temporary folder past it), once per dataset version (cached):

- numbers and times: equal-width bins between min and max (one bar per value when there are few values);
- text with few values: one bar per value;
- ids (the buyer and product columns, the join keys) and text with many values: how often values occur,
  binned (for products, the popularity curve), whatever their type.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from django.core.cache import cache

from tandem.data.sources import is_numeric, quote, read_source
from tandem.errors import DataError
from tandem.spec import TableSource
from tandem.web import budgets, storage
from tandem.web.datasets.models import ROLES, Dataset
from tandem.web.datasets.profiling import connect

BINS = 12
# The drawing's size in SVG units; the template scales it.
WIDTH, HEIGHT, GAP = 120.0, 28.0, 1.0


@dataclass(frozen=True)
class Bar:
    """One bar of a small histogram: its rectangle in a WIDTH × HEIGHT drawing, a tooltip (range: count), and the
    range's ends as labels (the same label twice for a bar of one value), for the axis under the drawing."""

    x: float
    y: float
    width: float
    height: float
    title: str
    low: str
    high: str


def _is_time(kind: str) -> bool:
    return kind.upper().startswith(("DATE", "TIMESTAMP"))


def _bars(counts: list[int], ranges: list[tuple[str, str]]) -> list[Bar]:
    """Bars scaled to the tallest; a non-empty bin is at least one unit high so that it stays visible."""
    top = max(counts, default=0) or 1
    width = (WIDTH - GAP * (len(counts) - 1)) / max(len(counts), 1)
    out = []
    for i, (n, (low, high)) in enumerate(zip(counts, ranges, strict=True)):
        height = max(1.0, HEIGHT * n / top) if n else 0.0
        title = low if low == high else f"{low} – {high}"
        out.append(
            Bar(
                round(i * (width + GAP), 2),
                round(HEIGHT - height, 2),
                round(width, 2),
                round(height, 2),
                f"{title}: {n:,}",
                low,
                high,
            )
        )
    return out


Label = Callable[[Any], str]


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _moment(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _times(n: float) -> str:
    return f"{n:.0f}×"


def _per_value(con: duckdb.DuckDBPyConnection, value: str, order: str, label: Label = _number) -> list[Bar]:
    """One bar per distinct value of the expression `value`, in `order`."""
    rows = con.execute(
        f"SELECT {value} AS v, count(*) AS n FROM m WHERE v IS NOT NULL GROUP BY v ORDER BY {order}"
    ).fetchall()
    return _bars([int(n) for _, n in rows], [(label(v), label(v)) for v, _ in rows])


def _binned(con: duckdb.DuckDBPyConnection, value: str, label: Label = _number, source: str = "m") -> list[Bar]:
    """Equal-width bins of the expression `value` over `source`, between its min and max."""
    lo, hi = con.execute(f"SELECT min({value}), max({value}) FROM {source}").fetchone()
    if lo is None:
        return []
    if hi == lo:
        (n,) = con.execute(f"SELECT count({value}) FROM {source}").fetchone()
        return _bars([int(n)], [(label(lo), label(lo))])
    width = (hi - lo) / BINS
    rows = con.execute(
        f"SELECT least(CAST(floor(({value} - ?) / ?) AS INTEGER), {BINS - 1}) AS b, count(*) FROM {source} "
        f"WHERE {value} IS NOT NULL GROUP BY b",
        [lo, width],
    ).fetchall()
    counts = [0] * BINS
    for b, n in rows:
        counts[int(b)] = int(n)
    ranges = [(label(lo + i * width), label(lo + (i + 1) * width)) for i in range(BINS)]
    return _bars(counts, ranges)


def _column_bars(con: duckdb.DuckDBPyConnection, column: dict[str, Any], is_id: bool, is_time: bool) -> list[Bar]:
    """`is_time`: the dataset's timestamp column, whose numbers are Unix seconds (labelled as moments)."""
    name, kind, distinct = quote(column["name"]), column["type"], int(column.get("distinct") or 0)
    measured = _is_time(kind) or (is_numeric(kind) and kind.upper() != "BOOLEAN")
    if is_id or (not measured and distinct > BINS):
        # How often each value occurs: an id's size or range says nothing, its popularity does.
        grouped = f"SELECT count(*) AS n FROM m WHERE {name} IS NOT NULL GROUP BY {name}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE f AS {grouped}")
        return _binned(con, "n", _times, source="f")
    if not measured:
        return _per_value(con, name, "n DESC, v", str)
    if _is_time(kind):
        value, label = f"epoch({name})", _moment
    else:
        value, label = f"CAST({name} AS DOUBLE)", (_moment if is_time else _number)
    return _per_value(con, value, "v", label) if distinct <= BINS else _binned(con, value, label)


def _file_bars(
    source: TableSource, table: dict[str, Any], ids: set[str], times: set[str], memory_bytes: int
) -> dict[str, list[Bar]]:
    with tempfile.TemporaryDirectory(prefix="histograms-") as spill, connect(memory_bytes, Path(spill)) as con:
        con.execute("SET enable_progress_bar = false")  # it would draw on the server's terminal
        read_source(con, source, "t")
        columns = [c for c in table.get("columns", []) if not c.get("derived")]
        shown = ", ".join(quote(c["name"]) for c in columns)
        con.execute(f"CREATE TABLE m AS SELECT {shown} FROM t")  # one read of the file for every column
        return {c["name"]: _column_bars(con, c, c["name"] in ids, c["name"] in times) for c in columns}


def histograms(dataset: Dataset) -> dict[str, dict[str, list[Bar]]]:
    """role → column → bars, for every file of the dataset; a file that cannot be read gets no bars."""
    key = f"pages:histograms:{dataset.pk}:{dataset.updated_at.timestamp()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    out: dict[str, dict[str, list[Bar]]] = {}
    for role in ROLES:
        field, table = getattr(dataset, f"{role}_file"), dataset.profile.get(role)
        if not field or not table:
            continue
        ids = {dataset.buyer_id_column, dataset.product_id_column} if role == "transactions" else set()
        ids.add({"buyers": dataset.buyers_key, "products": dataset.products_key}.get(role, ""))
        source = TableSource(
            **{**dataset.table_source(role), "path": str(storage.local_path(field.name))}
        )  # with its reading options
        try:
            times = {dataset.timestamp_column} if role == "transactions" else set()
            memory = budgets.limit(dataset.organisation, "profile_memory_bytes")
            out[role] = _file_bars(source, table, ids, times, memory)
        except (duckdb.Error, DataError, OSError, ValueError):
            out[role] = {}
    cache.set(key, out, timeout=3600)
    return out
