"""From files to clean, sampled, split interactions: joins, filters, aggregation, cleaning and splits in DuckDB.

Rows that cannot be used (a missing id, an unreadable timestamp, a missing, non-numeric or non-finite target)
are dropped and counted in the report, never silently kept. Problems a user can fix (unknown or non-numeric columns, an empty
sample, a split without test rows) are collected and raised together as one :class:`SpecError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from tandem.data.derived import add_derived
from tandem.data.sources import is_numeric, literal, mostly_numbers, quote, read_source, resolve_path, table_format
from tandem.data.splits import cutoff_seconds, split_rows
from tandem.data.timestamps import guess_format, is_temporal, timestamp_sql
from tandem.errors import DataError, Problem, SpecError
from tandem.experiment_rules import DataFacts, check_experiment, feature_columns, reads_buyer_id
from tandem.spec import ExperimentSpec

BUYER, PRODUCT, TS, TARGET, PERIOD = "__buyer", "__product", "__ts", "__target", "__test_period"
# Aggregated rows carry how many distinct orders (timestamps; lines without one) each pair's lines came from.
ORDERS = "__orders"


@dataclass
class Interactions:
    """Clean interactions with their split. Arrays are aligned by row."""

    frame: pd.DataFrame  # feature columns by name, plus __buyer, __product, and __ts / __target when present
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)
    # Aggregated data with a two-stage recommend: the distinct (__buyer, __product, __ts) orders before the cutoff.
    orders: pd.DataFrame | None = None

    @property
    def buyers(self) -> np.ndarray:
        return self.frame[BUYER].to_numpy()

    @property
    def products(self) -> np.ndarray:
        return self.frame[PRODUCT].to_numpy()

    @property
    def target(self) -> np.ndarray | None:
        return self.frame[TARGET].to_numpy(dtype=np.float64) if TARGET in self.frame else None


def _filter_sql(op: str, column: str, value: Any) -> str:
    col, text = quote(column), f"CAST({quote(column)} AS VARCHAR)"
    if op in ("in", "not_in"):
        items = ", ".join(_value_sql(v) for v in value) or "NULL"
        return f"{col} {'NOT ' if op == 'not_in' else ''}IN ({items})"
    if op in ("is_null", "not_null"):
        return f"{col} IS {'NOT ' if op == 'not_null' else ''}NULL"
    if op == "starts_with":
        return f"starts_with({text}, {literal(value)})"
    if op == "not_starts_with":  # a missing value starts with nothing, so it is kept
        return f"NOT coalesce(starts_with({text}, {literal(value)}), FALSE)"
    if op == "matches":
        return f"regexp_matches({text}, {literal(value)})"
    return f"{col} {'=' if op == '==' else op} {_value_sql(value)}"


def _value_sql(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return literal(str(value))


def _join_attributes(sql: str, joins: list[tuple[str, str, list[str], bool]], columns: set[str]) -> str:
    """Left-join the attribute tables' `columns` onto the rows of `sql` by buyer or product id."""
    for role, key, extra, numeric in joins:
        wanted = [c for c in extra if c in columns]
        if wanted:
            cols = ", ".join(f"{role}.{quote(c)}" for c in wanted)
            left, right = f"base.{BUYER if role == 'buyers' else PRODUCT}", f"{role}.{quote(key)}"
            # Numeric ids compare as numbers (1 = 1.0); anything else compares as text.
            on = f"{left} = {right}" if numeric else f"CAST({left} AS VARCHAR) = CAST({right} AS VARCHAR)"
            sql = f"SELECT base.*, {cols} FROM ({sql}) base LEFT JOIN {role} ON {on}"
    return sql


class _Loader:
    """Builds the SQL for one spec, checking every column reference on the way."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.spec = spec
        self.con = duckdb.connect()
        self.problems: list[Problem] = []

    def load(self) -> Interactions:
        d = self.spec.data
        tx = dict(read_source(self.con, d.transactions, "tx_file"))
        tx, problems = add_derived(self.con, tx, d.derived, "tx_file", "tx_read")
        self.problems += problems
        tx = self._target_as_number(tx)
        joined = dict(tx)
        joins = []
        for role, table, id_col in (("buyers", d.buyers, d.buyer_id), ("products", d.products, d.product_id)):
            if table is None:
                continue
            cols = dict(read_source(self.con, table, role))
            if table.key not in cols:
                self.problems.append(Problem(f"data.{role}.key", self._unknown(table.key, role, cols)))
                continue
            # A key listed twice would join each transaction to both rows and silently duplicate it.
            key = quote(table.key)
            repeats = self.con.execute(f"SELECT count({key}) - count(DISTINCT {key}) FROM {quote(role)}").fetchone()[0]
            if repeats:
                message = f"'{table.key}' must identify one row of the {role} table, but {repeats} rows repeat a key"
                self.problems.append(Problem(f"data.{role}.key", message))
            extra = [c for c in cols if c != table.key and c not in joined]
            joined.update({c: cols[c] for c in extra})
            numeric = is_numeric(cols[table.key]) and is_numeric(tx.get(id_col, "VARCHAR"))
            joins.append((role, table.key, extra, numeric))
        for path, col in (
            ("data.buyer_id", d.buyer_id),
            ("data.product_id", d.product_id),
            ("data.timestamp", d.timestamp),
        ):
            if col is not None and col not in tx:
                self.problems.append(Problem(path, self._unknown(col, "transactions", tx)))
        for i, f in enumerate(d.filters):
            if f.column not in joined:
                self.problems.append(Problem(f"data.filters.{i}.column", self._unknown(f.column, "the data", joined)))
            elif f.op == "matches":
                self._check_pattern(f"data.filters.{i}.value", f.value)
        available = dict(joined)
        if d.aggregate is not None:
            for i, a in enumerate(d.aggregate):
                if a.column is not None and a.column not in joined:
                    self.problems.append(
                        Problem(f"data.aggregate.{i}.column", self._unknown(a.column, "the data", joined))
                    )
                elif a.fn in ("sum", "mean") and a.column is not None and not is_numeric(joined[a.column]):
                    self.problems.append(
                        Problem(
                            f"data.aggregate.{i}.column",
                            f"'{a.column}' is not numeric ({joined[a.column]}), so it cannot be a {a.fn}",
                        )
                    )
                available[a.name] = (
                    "DOUBLE"
                    if a.fn in ("sum", "mean")
                    else "BIGINT"
                    if a.fn.startswith("count")
                    else joined.get(a.column or "", "DOUBLE")
                )
        self.problems += check_experiment(self.spec, DataFacts(columns=available))
        if self.problems:
            raise SpecError(self.problems)
        return self._query(tx, joined, joins)

    def _target_as_number(self, tx: dict[str, str]) -> dict[str, str]:
        """Create view `tx`; a ranking target read as text because a few of its values are not numbers is
        cast, so that those rows are dropped and counted (dropped_bad_target) instead of refusing the run."""
        target, view = self.spec.features.target, "SELECT * FROM tx_read"
        if target in tx and not is_numeric(tx[target]) and self.spec.model.type != "retrieval":
            q = quote(target)
            values, numbers = self.con.execute(
                f"SELECT count({q}), count(TRY_CAST({q} AS DOUBLE)) FROM tx_read"
            ).fetchone()
            if mostly_numbers(values, numbers):
                view = f"SELECT * REPLACE (TRY_CAST({q} AS DOUBLE) AS {q}) FROM tx_read"
                tx = {**tx, target: "DOUBLE"}
        self.con.execute(f"CREATE TEMP VIEW tx AS {view}")
        return tx

    def _check_pattern(self, path: str, pattern: str) -> None:
        try:
            self.con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchone()
        except duckdb.Error as e:
            reason = str(e).strip().splitlines()[0]
            self.problems.append(Problem(path, f"'{pattern}' is not a regular expression DuckDB (RE2) reads: {reason}"))

    def _timestamp_format(self, column: str, duckdb_type: str) -> str | None:
        """The declared format, or for a text column the layout that reads its values (None: ISO 8601)."""
        declared = self.spec.data.transactions.timestamp_format
        if declared or is_numeric(duckdb_type) or is_temporal(duckdb_type):
            return declared
        guess = guess_format(self.con, "tx", column)
        if guess.ties:
            message = f"every value of '{column}' fits {' and '.join(guess.ties)}; declare which one is meant"
            self.problems.append(Problem("data.transactions.timestamp_format", message))
        return guess.format

    @staticmethod
    def _unknown(col: str, where: str, columns: dict[str, str]) -> str:
        names = ", ".join(list(columns)[:30])
        return f"unknown column '{col}' ({where} has: {names})"

    def _query(self, tx: dict[str, str], joined: dict[str, str], joins: list) -> Interactions:
        d, report = self.spec.data, {}
        features = self.spec.features
        read = {c for _, c in feature_columns(features)} | ({d.buyer_id} if reads_buyer_id(features) else set())
        feature_cols = sorted(read)
        target = self.spec.features.target
        has_target = target is not None and self.spec.model.type != "retrieval"
        wanted = feature_cols + [f.column for f in d.filters] + [a.column for a in d.aggregate or [] if a.column]
        if has_target:
            wanted.append(target)
        source_cols = sorted(set(wanted) & set(joined))
        attribute_cols = {c for _, _, extra, _ in joins for c in extra}
        # With aggregation, attribute columns that only feed features are joined after it: one lookup per pair
        # instead of one per transaction line, and no per-pair aggregate of values that never vary.
        late_cols = set()
        if d.aggregate is not None:
            early = {f.column for f in d.filters} | {a.column for a in d.aggregate if a.column}
            late_cols = (attribute_cols & set(source_cols)) - early
        select = [f"{quote(d.buyer_id)} AS {BUYER}", f"{quote(d.product_id)} AS {PRODUCT}"]
        if d.timestamp:
            fmt = self._timestamp_format(d.timestamp, tx[d.timestamp])
            if self.problems:
                raise SpecError(self.problems)
            select.append(f"{timestamp_sql(d.timestamp, tx[d.timestamp], fmt)} AS {TS}")
        tx_only = [c for c in source_cols if c in tx]
        select += [f"t.{quote(c)}" for c in tx_only]
        # Rows keep the file's order when they are not aggregated: DuckDB keeps it through filters and
        # projections, not through a join, so joined rows carry their place in the file to be ordered by.
        # Aggregated rows are ordered by their keys.
        joined_cols = set(source_cols) - late_cols
        numbered = d.aggregate is None and bool(joined_cols & attribute_cols)
        row_number = ", row_number() OVER () AS __row" if numbered else ""
        sql = f"SELECT {', '.join(select)}{row_number} FROM tx t"
        sql = _join_attributes(sql, joins, joined_cols)
        con = self.con
        # Over Parquet a view: each query reads the columns it needs again instead of a copy of all the rows
        # being held. A CSV file would be parsed whole by every query, so its rows are stored once.
        source = d.transactions
        kind = "VIEW" if table_format(source, resolve_path(source.path)) == "parquet" else "TABLE"
        con.execute(f"CREATE TEMP {kind} joined AS {sql}")
        where = [f"{BUYER} IS NOT NULL", f"{PRODUCT} IS NOT NULL"]
        have_ids = " AND ".join(where)
        counts = ["count(*)", f"count(*) FILTER (NOT ({have_ids}))"]
        counts += [f"count(*) FILTER ({have_ids} AND {TS} IS NULL)"] if d.timestamp else []
        report["rows_read"], missing_ids, *bad_timestamp = con.execute(
            f"SELECT {', '.join(counts)} FROM joined"
        ).fetchone()
        if report["rows_read"] == 0:
            raise SpecError([Problem("data.transactions.path", "the transactions file has no rows")])
        report["dropped_missing_ids"] = missing_ids
        if d.timestamp:
            report["dropped_bad_timestamp"] = bad_timestamp[0]
            if report["dropped_bad_timestamp"] and report["dropped_bad_timestamp"] == report["rows_read"]:
                path = "data.transactions.timestamp_format" if fmt else "data.timestamp"
                how = f"with the format '{fmt}'" if fmt else "as a date or time"
                raise SpecError([Problem(path, f"no value of '{d.timestamp}' can be read {how}")])
            where.append(f"{TS} IS NOT NULL")
        clean = " AND ".join(where)
        if d.filters:
            kept = " AND ".join(f"({_filter_sql(f.op, f.column, f.value)})" for f in d.filters)
            kept = f"coalesce({kept}, FALSE)"  # a comparison with a missing value keeps nothing, and says so
            report["dropped_by_filters"] = con.execute(
                f"SELECT count(*) FROM joined WHERE {clean} AND NOT {kept}"
            ).fetchone()[0]
            clean = f"{clean} AND {kept}"
        rows = f"SELECT * FROM joined WHERE {clean}"
        lines, period = rows, None
        if d.aggregate is not None:
            if d.split.kind == "time":
                # Split transactions in time first, then aggregate each side: a pair bought before and after
                # the cutoff gives one training row and one test row, and no later line leaks into training.
                cutoff = (
                    cutoff_seconds(d.split.cutoff)
                    if d.split.cutoff
                    else con.execute(
                        f"SELECT quantile_disc({TS}, {1.0 - d.split.test_fraction}) FROM joined WHERE {clean}"
                    ).fetchone()[0]
                )
                period = f"({TS} >= {int(cutoff)})" if cutoff is not None else None
                report["cutoff"] = int(cutoff) if cutoff is not None else None
            carried = [c for c in feature_cols + ([target] if has_target else []) if c not in late_cols]
            rows = _join_attributes(
                self._aggregate_sql(rows, carried, d.timestamp is not None, period), joins, late_cols
            )
            order = f"{BUYER}, {PRODUCT}" + (f", {PERIOD}" if period else "")
        else:
            order = "__row" if numbered else None
        if has_target:
            # Queried, not stored: a table of the rows would be one more copy of them while they are fetched.
            bad = f"{quote(target)} IS NULL OR NOT isfinite(CAST({quote(target)} AS DOUBLE))"
            report["dropped_bad_target"] = con.execute(f"SELECT count(*) FROM ({rows}) WHERE {bad}").fetchone()[0]
            value = f"CAST({quote(target)} AS DOUBLE)"
            if self.spec.features.target_transform == "log1p":
                value = f"ln(1 + greatest({value}, 0))"
            rows = f"SELECT *, {value} AS {TARGET} FROM ({rows}) WHERE NOT ({bad})"
        cols = [BUYER, PRODUCT] + ([TS] if d.timestamp else []) + ([PERIOD] if period else [])
        cols += [ORDERS] if d.aggregate is not None else []
        cols += ([TARGET] if has_target else []) + [c for c in feature_cols if c not in (BUYER, PRODUCT)]
        # Feature columns that are the ids themselves are fetched once and share the id columns' memory.
        id_of = {d.buyer_id: BUYER, d.product_id: PRODUCT}
        fetched = [quote(c) for c in cols if c not in id_of]
        by = f" ORDER BY {order}" if order else ""
        if d.aggregate is None:
            # A query per column: DuckDB holds one column's result at a time beside the frame, not all of them.
            # Each returns the same rows in the same order (no aggregate chooses among ties).
            frame = pd.concat([con.execute(f"SELECT {c} FROM ({rows}){by}").df() for c in fetched], axis=1)
        else:
            frame = con.execute(f"SELECT {', '.join(fetched)} FROM ({rows}){by}").df()
        frame = frame.assign(**{c: frame[id_of[c]] for c in cols if c in id_of})[cols]
        report["rows_clean"] = len(frame)
        orders = None
        if self.spec.recommend is not None and period is not None:
            orders = con.execute(f"SELECT DISTINCT {BUYER}, {PRODUCT}, {TS} FROM ({lines}) WHERE NOT {period}").df()
        frame = self._sample(frame, report)
        train, validation, test = split_rows(frame, d.split, report)
        con.close()
        return Interactions(frame=frame, train=train, validation=validation, test=test, report=report, orders=orders)

    def _aggregate_sql(self, rows: str, feature_cols: list[str], has_ts: bool, period: str | None = None) -> str:
        """One row per buyer–product pair (and per side of the time cutoff when `period` is given)."""
        d = self.spec.data
        keys = [BUYER, PRODUCT] + ([f"{period} AS {PERIOD}"] if period else [])
        parts = keys + (
            [f"max({TS}) AS {TS}", f"count(DISTINCT {TS}) AS {ORDERS}"] if has_ts else [f"count(*) AS {ORDERS}"]
        )
        names = set()
        for a in d.aggregate or []:
            names.add(a.name)
            col = quote(a.column) if a.column else "*"
            fn = {"count": "count(*)", "count_distinct": f"count(DISTINCT {col})"}.get(a.fn, f"{a.fn}({col})")
            parts.append(f"{fn} AS {quote(a.name)}")
        for c in feature_cols:
            if c in names:
                continue
            if c in (d.buyer_id, d.product_id) or not has_ts:  # the grouped ids themselves never vary
                parts.append(f"any_value({quote(c)}) AS {quote(c)}")
            else:
                parts.append(f"arg_max({quote(c)}, {TS}) AS {quote(c)}")  # the latest value
        return f"SELECT {', '.join(parts)} FROM ({rows}) GROUP BY ALL"

    def _sample(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        d = self.spec.data
        if frame.empty:
            raise SpecError(
                [
                    Problem(
                        "data",
                        "no rows are left after dropping rows with missing ids, timestamps or targets and applying the filters",
                    )
                ]
            )
        if d.sample_fraction < 1.0:
            k = round(len(frame) * d.sample_fraction)
            if k == 0:
                raise SpecError(
                    [
                        Problem(
                            "data.sample_fraction",
                            f"sampling {d.sample_fraction} of {len(frame)} rows leaves no rows; raise the fraction",
                        )
                    ]
                )
            keep = np.sort(np.random.default_rng(d.sample_seed).choice(len(frame), size=k, replace=False))
            frame = frame.iloc[keep].reset_index(drop=True)
        report["rows_sampled"] = len(frame)
        return frame


def load_interactions(spec: ExperimentSpec) -> Interactions:
    """Read, join, clean, aggregate, sample and split the spec's data.

    Raises SpecError listing every problem a user can fix, or DataError when a file cannot be read.
    """
    loader = _Loader(spec)
    try:
        return loader.load()
    except duckdb.Error as e:
        raise DataError(f"the data could not be prepared: {str(e).splitlines()[0]}") from None
    finally:
        loader.con.close()
