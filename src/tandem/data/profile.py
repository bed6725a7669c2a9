"""What a recommender needs to know about a dataset before its first spec: sizes, time span, repeat buying,
and for every other column its type, cardinality and whether it describes the buyer or the product.

Everything is computed by DuckDB over the whole files (streamed, grouped by id, never loaded into Python),
so profiling a file of a few million lines takes seconds and bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from tandem.data.sources import AmbiguousDatesError, is_numeric, read_source
from tandem.data.timestamps import guess_format, is_temporal, timestamp_sql
from tandem.errors import DataError, Problem, SpecError
from tandem.spec import TableSource
from tandem.sql import literal, quote

# Spellings of "no value" that files use instead of an empty field; compared lower-cased and trimmed.
NULL_MARKERS = ("unknown", "n/a", "na", "null", "none", "nan", "missing", "-", "?")
# A column describes the buyer (or the product) when at most this share of buyers has more than one value
# (Ta-Feng: 1.1% of products appear under two subclasses).
FUNCTIONAL_TOLERANCE = 0.02


@dataclass
class ColumnProfile:
    """One column other than the ids and the timestamp.

    `side` is "buyer" or "product" when the column has one value per buyer or per product (an attribute),
    else None (it varies per line, like a quantity). `words` is the mean number of words of a text value.
    """

    name: str
    table: str
    type: str
    distinct: int
    nulls: int
    rows: int
    side: str | None
    words: float = 0.0
    min: float | None = None
    max: float | None = None
    median: float | None = None

    @property
    def numeric(self) -> bool:
        return is_numeric(self.type) and self.type.upper() != "BOOLEAN"

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


@dataclass
class DataProfile:
    """The facts `tandem init` bases its choices on; times are Unix seconds."""

    transactions: str
    buyer_id: str
    product_id: str
    timestamp: str
    target: str | None
    order_id: str | None
    rows: int
    buyers: int
    products: int
    orders: int
    pairs: int
    repeat_pairs: int  # pairs bought in at least two orders
    products_repeated: int  # products bought in at least two orders
    buyers_repeated: int  # buyers with at least two orders
    first_time: int
    last_time: int
    days: int  # distinct calendar days with purchases
    day_only: bool  # every timestamp is a midnight: lines of one buyer on one day are one order
    timestamp_format: str | None
    lines_per_day: dict[int, int] = field(default_factory=dict)  # day number (Unix seconds // 86400) → lines
    target_max: float | None = None
    target_median: float | None = None
    text_ids: list[str] = field(default_factory=list)  # id columns of digits kept as text (leading zeros)
    null_values: dict[str, list[str]] = field(default_factory=dict)  # table → markers found
    null_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (column, marker) → lines
    columns: list[ColumnProfile] = field(default_factory=list)
    attribute_tables: dict[str, tuple[str, str]] = field(default_factory=dict)  # role → (path, key)

    @property
    def repeat_share(self) -> float:
        return self.repeat_pairs / self.pairs if self.pairs else 0.0


class _Profiler:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def one(self, sql: str) -> tuple:
        return self.con.execute(sql).fetchone()

    def null_markers(self, view: str, columns: dict[str, str]) -> dict[str, tuple[str, int]]:
        """Text columns whose values include a spelling of "no value": column → (spelling, lines)."""
        text = [c for c, t in columns.items() if t.upper() == "VARCHAR"]
        if not text:
            return {}
        markers = ", ".join(literal(m) for m in NULL_MARKERS)
        parts = []
        for c in text:
            hit = f"lower(trim({quote(c)})) IN ({markers})"
            parts += [f"count(*) FILTER (WHERE {hit})", f"mode({quote(c)}) FILTER (WHERE {hit})"]
        row = self.one(f"SELECT {', '.join(parts)} FROM {quote(view)}")
        return {c: (row[2 * i + 1], int(row[2 * i])) for i, c in enumerate(text) if row[2 * i]}

    def columns(self, view: str, table: str, types: dict[str, str], by: dict[str, str]) -> list[ColumnProfile]:
        """Statistics of `types`' columns in `view`; `by` maps a side to the id column that decides it."""
        if not types:
            return []
        rows = self.one(f"SELECT count(*) FROM {quote(view)}")[0]
        parts = []
        for c, t in types.items():
            q = quote(c)
            parts += [f"approx_count_distinct({q})", f"count({q})"]
            numeric = is_numeric(t) and t.upper() != "BOOLEAN"
            parts += [f"min({q})::DOUBLE", f"max({q})::DOUBLE", f"median({q})::DOUBLE"] if numeric else ["NULL"] * 3
            words = f"avg(length(string_split(trim({q}), ' ')))" if t.upper() == "VARCHAR" else "0"
            parts.append(words)
        stats = self.one(f"SELECT {', '.join(parts)} FROM {quote(view)}")
        sides = {c: None for c in types}
        for side, key in by.items():
            varying = [f"count(DISTINCT {quote(c)}) > 1 AS v{i}" for i, c in enumerate(types)]
            flagged = [f"count(*) FILTER (WHERE v{i})" for i in range(len(types))]
            counts = self.one(
                f"SELECT count(*), {', '.join(flagged)} FROM (SELECT {', '.join(varying)} "
                f"FROM {quote(view)} GROUP BY {quote(key)})"
            )
            for i, c in enumerate(types):
                if sides[c] is None and counts[1 + i] <= FUNCTIONAL_TOLERANCE * counts[0]:
                    sides[c] = side
        out = []
        for i, (c, t) in enumerate(types.items()):
            distinct, non_null, lo, hi, median, words = stats[6 * i : 6 * i + 6]
            out.append(
                ColumnProfile(
                    name=c,
                    table=table,
                    type=t,
                    distinct=int(distinct),
                    nulls=rows - int(non_null),
                    rows=rows,
                    side=sides[c],
                    words=float(words or 0),
                    min=lo,
                    max=hi,
                    median=median,
                )
            )
        return out


def _read(con: duckdb.DuckDBPyConnection, source: TableSource, view: str, role: str) -> dict[str, str]:
    try:
        return dict(read_source(con, source, view))
    except AmbiguousDatesError as e:
        message = f"every date in {', '.join(e.columns)} fits both {' and '.join(e.formats)}; give the one meant"
        raise SpecError([Problem("--timestamp-format", message)]) from None
    except DataError as e:
        raise SpecError([Problem(role, str(e))]) from None


def profile_data(
    transactions: str,
    *,
    buyer_id: str,
    product_id: str,
    timestamp: str,
    target: str | None = None,
    order_id: str | None = None,
    buyers: tuple[str, str] | None = None,
    products: tuple[str, str] | None = None,
    timestamp_format: str | None = None,
) -> DataProfile:
    """Profile a transactions file (and optional buyer and product attribute files, given as (path, key)).

    Raises SpecError naming the option at fault: an unknown column (`--buyer-id`, …), a non-numeric target,
    a timestamp no layout reads, or a file that cannot be read.
    """
    con = duckdb.connect()
    try:
        return _profile(
            con, transactions, buyer_id, product_id, timestamp, target, order_id, buyers, products, timestamp_format
        )
    except duckdb.Error as e:
        raise DataError(f"{transactions}: cannot be profiled: {str(e).splitlines()[0]}") from None
    finally:
        con.close()


def _profile(
    con: duckdb.DuckDBPyConnection,
    path: str,
    buyer_id: str,
    product_id: str,
    timestamp: str,
    target: str | None,
    order_id: str | None,
    buyers: tuple[str, str] | None,
    products: tuple[str, str] | None,
    timestamp_format: str | None,
) -> DataProfile:
    p = _Profiler(con)
    tx = _read(con, TableSource(path=path, timestamp_format=timestamp_format), "tx_file", "transactions")
    con.execute("CREATE TEMP TABLE tx AS SELECT * FROM tx_file")  # read and parsed once, not once per question
    problems = []
    for option, column in (
        ("--buyer-id", buyer_id),
        ("--product-id", product_id),
        ("--timestamp", timestamp),
        ("--target", target),
        ("--order-id", order_id),
    ):
        if column is not None and column not in tx:
            problems.append(Problem(option, f"no column '{column}' in {path} (it has: {', '.join(list(tx)[:30])})"))
    if target is not None and target in tx and not is_numeric(tx[target]):
        problems.append(Problem("--target", f"'{target}' is not numeric ({tx[target]}); the target must be a number"))
    if problems:
        raise SpecError(problems)
    fmt = timestamp_format
    if fmt is None and not (is_numeric(tx[timestamp]) or is_temporal(tx[timestamp])):
        guess = guess_format(con, "tx", timestamp)
        if guess.ties:
            raise SpecError(
                [
                    Problem(
                        "--timestamp-format",
                        f"every date in {timestamp} fits both {' and '.join(guess.ties)}; give the one meant",
                    )
                ]
            )
        fmt = guess.format
    b, pr = quote(buyer_id), quote(product_id)
    ts = timestamp_sql(timestamp, tx[timestamp], fmt)
    order = f", CAST({quote(order_id)} AS VARCHAR) AS o" if order_id is not None else ""
    con.execute(
        f"CREATE TEMP TABLE lines AS SELECT {b} AS b, {pr} AS p, {ts} AS ts{order} FROM tx "
        f"WHERE {b} IS NOT NULL AND {pr} IS NOT NULL"
    )
    rows, first, last, midnights = p.one(
        "SELECT count(*), min(ts), max(ts), count(*) FILTER (WHERE ts % 86400 = 0) FROM lines WHERE ts IS NOT NULL"
    )
    if not rows:
        raise SpecError([Problem("--timestamp", f"no value of '{timestamp}' reads as a date or time")])
    day_only = midnights == rows
    # Without an order column, one buyer's lines at one time (on one day, for dates) are one order.
    order_key = "o" if order_id is not None else "ts // 86400" if day_only else "ts"
    con.execute(
        f"CREATE TEMP TABLE pairs AS SELECT b, p, count(DISTINCT {order_key}) AS n FROM lines "
        f"WHERE ts IS NOT NULL GROUP BY b, p"
    )
    n_buyers, n_products, n_orders, days = p.one(
        f"SELECT count(DISTINCT b), count(DISTINCT p), count(DISTINCT (b, {order_key})), count(DISTINCT ts // 86400) "
        "FROM lines WHERE ts IS NOT NULL"
    )
    pairs, repeat_pairs = p.one("SELECT count(*), count(*) FILTER (WHERE n >= 2) FROM pairs")
    products_repeated = p.one(
        f"SELECT count(*) FROM (SELECT p FROM lines WHERE ts IS NOT NULL GROUP BY p "
        f"HAVING count(DISTINCT (b, {order_key})) >= 2)"
    )[0]
    buyers_repeated = p.one(
        f"SELECT count(*) FROM (SELECT b FROM lines WHERE ts IS NOT NULL GROUP BY b "
        f"HAVING count(DISTINCT {order_key}) >= 2)"
    )[0]
    profile = DataProfile(
        transactions=path,
        buyer_id=buyer_id,
        product_id=product_id,
        timestamp=timestamp,
        target=target,
        order_id=order_id,
        rows=int(rows),
        buyers=int(n_buyers),
        products=int(n_products),
        orders=int(n_orders),
        pairs=int(pairs),
        repeat_pairs=int(repeat_pairs),
        products_repeated=int(products_repeated),
        buyers_repeated=int(buyers_repeated),
        first_time=int(first),
        last_time=int(last),
        days=int(days),
        day_only=day_only,
        timestamp_format=fmt,
    )
    profile.lines_per_day = dict(
        con.execute("SELECT ts // 86400, count(*) FROM lines WHERE ts IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
    )
    if target is not None:
        profile.target_max, profile.target_median = p.one(
            f"SELECT max({quote(target)})::DOUBLE, median({quote(target)})::DOUBLE FROM tx"
        )
    for column in (buyer_id, product_id):
        if tx[column].upper() == "VARCHAR":
            zeros = p.one(
                f"SELECT bool_and(regexp_full_match({quote(column)}, '[0-9]+')) AND "
                f"bool_or(starts_with({quote(column)}, '0')) FROM tx"
            )[0]
            if zeros:
                profile.text_ids.append(column)
    _markers(p, profile, "transactions", "tx", tx)
    skip = {buyer_id, product_id, timestamp, order_id}
    others = {c: t for c, t in tx.items() if c not in skip}
    profile.columns = p.columns("tx", "transactions", others, {"buyer": buyer_id, "product": product_id})
    for role, table, side in (("buyers", buyers, "buyer"), ("products", products, "product")):
        if table is None:
            continue
        table_path, key = table
        cols = _read(con, TableSource(path=table_path), role, f"--{role}")
        if key not in cols:
            raise SpecError(
                [Problem(f"--{role}", f"no key column '{key}' in {table_path} (it has: {', '.join(list(cols)[:30])})")]
            )
        profile.attribute_tables[role] = (table_path, key)
        _markers(p, profile, role, role, cols)
        extra = {c: t for c, t in cols.items() if c != key and c not in tx}
        found = p.columns(role, role, extra, {})
        for column in found:
            column.side = side
        profile.columns += found
    return profile


def _markers(p: _Profiler, profile: DataProfile, table: str, view: str, columns: dict[str, str]) -> None:
    found = p.null_markers(view, columns)
    if found:
        profile.null_values[table] = sorted({spelling for spelling, _ in found.values()})
        profile.null_counts.update({(c, spelling): n for c, (spelling, n) in found.items()})
