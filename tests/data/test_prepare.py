"""Reading, joining, filtering, aggregating, cleaning and sampling interactions, checked against plain Python."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from tandem.data.prepare import BUYER, PRODUCT, TARGET, TS, load_interactions
from tandem.errors import DataError, SpecError
from tandem.spec import parse_spec

TRANSACTIONS = pd.DataFrame(
    {
        "buyer": ["u1", "u1", "u2", "u2", "u2", "u3", "u3", "u1", "u4", "u4"],
        "product": ["p1", "p2", "p1", "p1", "p3", "p2", "p3", "p1", "p2", "p2"],
        "qty": [1, 2, 3, 1, 5, 2, 1, 4, 7, 1],
        "price": [1.5, 2.0, 1.5, 1.5, 9.0, 2.0, 9.0, 1.5, 2.0, 2.0],
        "basket": [10, 10, 11, 12, 12, 13, 13, 14, 15, 16],
        "ts": [100, 200, 150, 160, 170, 300, 310, 400, 500, 510],
    }
)
PRODUCTS = pd.DataFrame({"product": ["p1", "p2", "p3"], "category": ["fruit", "dairy", "fruit"], "size": [1, 2, 3]})
BUYERS = pd.DataFrame({"buyer": ["u1", "u2", "u3", "u4"], "region": ["north", "south", "north", "east"]})


def _spec(tx_path, *, products=None, buyers=None, model_type="retrieval", target=None, split=None, **data):
    raw = {
        "data": {
            "transactions": {"path": str(tx_path)},
            "buyer_id": "buyer",
            "product_id": "product",
            "split": split or {"kind": "random", "test_fraction": 0.3, "seed": 1},
            **data,
        },
        "features": {
            "buyer": [{"column": "buyer", "transform": "id"}],
            "product": [{"column": "product", "transform": "id"}],
            "target": target,
        },
        # Tower layers keep the two towers' outputs equal whatever features a test adds.
        "model": {"type": model_type, "buyer_tower_layers": [8], "product_tower_layers": [8]},
    }
    if products is not None:
        raw["data"]["products"] = {"path": str(products), "key": "product"}
    if buyers is not None:
        raw["data"]["buyers"] = {"path": str(buyers), "key": "buyer"}
    return raw


def _load(raw):
    return load_interactions(parse_spec(raw))


def _problems(raw) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        _load(raw)
    return {p.path: p.message for p in info.value.problems}


# ---------------------------------------------------------------------------------------------- reading


def test_csv_and_parquet_files_give_the_same_interactions(write_table):
    """The same table read from CSV and from Parquet gives identical interactions."""
    csv = write_table(TRANSACTIONS, "tx.csv")
    parquet = write_table(TRANSACTIONS, "tx.parquet", fmt="parquet")
    from_csv = _load(_spec(csv, model_type="ranking", target="qty", timestamp="ts"))
    from_parquet = _load(_spec(parquet, model_type="ranking", target="qty", timestamp="ts"))
    pd.testing.assert_frame_equal(from_csv.frame, from_parquet.frame)
    assert from_csv.buyers.tolist() == TRANSACTIONS["buyer"].tolist()
    assert from_csv.products.tolist() == TRANSACTIONS["product"].tolist()
    assert from_csv.target.tolist() == TRANSACTIONS["qty"].astype(float).tolist()
    assert from_csv.frame[TS].tolist() == TRANSACTIONS["ts"].tolist()


def test_headerless_delimited_file_is_read_with_the_given_column_names(tmp_path):
    """A tab-separated file without a header (like MovieLens u.data) is read with the spec's column names."""
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t881250949\n2\t10\t3\t891717742\n1\t20\t4\t878887116\n", encoding="utf-8")
    raw = _spec(path, model_type="ranking", target="rating", timestamp="ts")
    raw["data"]["transactions"].update(header=False, delimiter="\t", columns=["buyer", "product", "rating", "ts"])
    frame = _load(raw).frame
    assert frame[BUYER].tolist() == [1, 2, 1]
    assert frame[PRODUCT].tolist() == [10, 10, 20]
    assert frame[TARGET].tolist() == [5.0, 3.0, 4.0]
    assert frame[TS].tolist() == [881250949, 891717742, 878887116]


def test_date_time_strings_become_epoch_seconds(write_table):
    """A timestamp column of date-time strings becomes UTC epoch seconds."""
    tx = TRANSACTIONS.assign(when=["2024-01-01 06:00:00"] * 5 + ["1970-01-02 00:00:00"] * 5)
    frame = _load(_spec(write_table(tx, "tx.csv"), timestamp="when")).frame
    assert frame[TS].tolist() == [1_704_088_800] * 5 + [86_400] * 5


def test_missing_data_file_raises_a_data_error_naming_it(tmp_path):
    """A transactions path that does not exist raises DataError with the path."""
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        _load(_spec(tmp_path / "missing.csv"))


def test_unreadable_parquet_file_raises_a_data_error(tmp_path):
    """A .parquet file that is not Parquet raises DataError rather than a DuckDB exception."""
    path = tmp_path / "tx.parquet"
    path.write_text("buyer,product\nu1,p1\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot be read as parquet"):
        _load(_spec(path))


def test_empty_transactions_file_is_reported(write_table):
    """A transactions file with a header and no rows is a problem on its path."""
    path = write_table(TRANSACTIONS.iloc[:0], "tx.csv")
    problems = _problems(_spec(path))
    assert set(problems) == {"data.transactions.path"}


# ------------------------------------------------------------------------------------------------ joins


def test_buyer_and_product_attributes_are_joined_by_key(write_table):
    """Attribute columns used as features are looked up by each row's buyer and product id."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), products=write_table(PRODUCTS, "products.csv"),
                buyers=write_table(BUYERS, "buyers.parquet", fmt="parquet"))  # fmt: skip
    raw["features"]["buyer"].append({"column": "region", "transform": "categorical"})
    raw["features"]["product"] += [
        {"column": "category", "transform": "categorical"},
        {"column": "size", "transform": "numeric"},
    ]
    frame = _load(raw).frame
    region = dict(zip(BUYERS["buyer"], BUYERS["region"], strict=True))
    category = dict(zip(PRODUCTS["product"], PRODUCTS["category"], strict=True))
    size = dict(zip(PRODUCTS["product"], PRODUCTS["size"], strict=True))
    assert len(frame) == len(TRANSACTIONS)
    for row in frame.to_dict("records"):
        assert row["region"] == region[row[BUYER]]
        assert row["category"] == category[row[PRODUCT]]
        assert row["size"] == size[row[PRODUCT]]


def test_rows_without_attributes_keep_missing_values(write_table):
    """A product absent from the attribute table keeps its rows, with a missing attribute."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), products=write_table(PRODUCTS.iloc[:2], "products.csv"))
    raw["features"]["product"].append({"column": "category", "transform": "categorical"})
    frame = _load(raw).frame
    assert len(frame) == len(TRANSACTIONS)
    assert frame.loc[frame[PRODUCT] == "p3", "category"].isna().all()
    assert frame.loc[frame[PRODUCT] != "p3", "category"].notna().all()


def test_attribute_table_key_must_exist(write_table):
    """An attribute table whose key is not one of its columns is reported at data.<role>.key."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), products=write_table(PRODUCTS, "products.csv"))
    raw["data"]["products"]["key"] = "sku"
    problems = _problems(raw)
    assert set(problems) == {"data.products.key"}
    assert "unknown column 'sku'" in problems["data.products.key"]


def test_attribute_table_with_repeated_keys_is_reported(write_table):
    """An attribute table that lists a key twice is reported, rather than silently duplicating transactions."""
    products = pd.concat([PRODUCTS, PRODUCTS.iloc[[0]].assign(category="frozen")], ignore_index=True)
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), products=write_table(products, "products.csv"))
    raw["features"]["product"].append({"column": "category", "transform": "categorical"})
    problems = _problems(raw)
    assert set(problems) == {"data.products.key"}
    assert "repeat" in problems["data.products.key"]


# ---------------------------------------------------------------------------------------------- filters


def test_filters_keep_matching_rows_and_count_the_others(write_table):
    """All filters must hold for a row to stay; the rows they drop are counted in the report."""
    raw = _spec(
        write_table(TRANSACTIONS, "tx.csv"),
        products=write_table(PRODUCTS, "products.csv"),
        filters=[
            {"column": "qty", "op": ">=", "value": 2},
            {"column": "category", "op": "in", "value": ["fruit"]},
            {"column": "buyer", "op": "!=", "value": "u3"},
        ],
    )
    data = _load(raw)
    category = dict(zip(PRODUCTS["product"], PRODUCTS["category"], strict=True))
    kept = [
        (b, p)
        for b, p, q in zip(TRANSACTIONS["buyer"], TRANSACTIONS["product"], TRANSACTIONS["qty"], strict=True)
        if q >= 2 and category[p] == "fruit" and b != "u3"
    ]
    assert list(zip(data.buyers, data.products, strict=True)) == kept
    assert data.report["dropped_by_filters"] == len(TRANSACTIONS) - len(kept)


@pytest.mark.parametrize(
    ("op", "value", "keep"),
    [
        ("==", 2, lambda q: q == 2),
        ("<", 2, lambda q: q < 2),
        ("<=", 2, lambda q: q <= 2),
        (">", 2, lambda q: q > 2),
        ("not_in", [1, 7], lambda q: q not in (1, 7)),
    ],
)
def test_each_filter_operator_keeps_the_rows_it_names(write_table, op, value, keep):
    """Every comparison operator keeps exactly the rows for which it holds."""
    data = _load(_spec(write_table(TRANSACTIONS, "tx.csv"), filters=[{"column": "qty", "op": op, "value": value}]))
    expected = [q for q in TRANSACTIONS["qty"] if keep(q)]
    kept_rows = [i for i, q in enumerate(TRANSACTIONS["qty"]) if keep(q)]
    assert len(data.frame) == len(expected)
    assert data.products.tolist() == TRANSACTIONS["product"].iloc[kept_rows].tolist()


INVOICES = pd.DataFrame(
    {
        "buyer": ["u1", "u1", "u2", "u2", "u3", "u3", "u4", "u4", "u5"],
        "product": ["A1", "POST", "C-9", "A2", "M7", "A1", "A2", "B-1", "X5"],
        "invoice": ["C100", "101", "C102", None, "104", "105", "C106", "C107", "108"],
        "qty": [1, 2, None, 4, 5, 6, 7, None, 50],
    }
)


@pytest.mark.parametrize(
    ("column", "op", "value", "keep"),
    [
        ("invoice", "starts_with", "C", lambda v: isinstance(v, str) and v.startswith("C")),
        ("invoice", "not_starts_with", "C", lambda v: not (isinstance(v, str) and v.startswith("C"))),
        ("product", "matches", "^[A-Z][0-9]$", lambda v: re.fullmatch(r"[A-Z][0-9]", v) is not None),
        ("product", "matches", "-", lambda v: "-" in v),
        ("qty", "is_null", None, lambda v: v is None or (isinstance(v, float) and math.isnan(v))),
        ("qty", "not_null", None, lambda v: not (v is None or (isinstance(v, float) and math.isnan(v)))),
        ("qty", "starts_with", "5", lambda v: v is not None and not math.isnan(v) and str(v).startswith("5")),
    ],
)
def test_text_and_null_filters_keep_the_rows_they_name(write_table, column, op, value, keep):
    """Prefix, pattern and null filters keep exactly the rows Python's str and re methods keep, and count the rest.

    A missing invoice starts with nothing, so `not_starts_with` keeps it; a number is compared as its text.
    """
    raw = _spec(write_table(INVOICES, "tx.csv"), filters=[{"column": column, "op": op, "value": value}])
    data = _load(raw)
    kept = [i for i, v in enumerate(INVOICES[column].astype(object).where(INVOICES[column].notna(), None)) if keep(v)]
    assert data.products.tolist() == INVOICES["product"].iloc[kept].tolist()
    assert data.report.get("dropped_by_filters", 0) == len(INVOICES) - len(kept)


def test_an_invalid_regular_expression_names_the_filter_value(write_table):
    """A pattern RE2 cannot read (a look-behind) is a problem on that filter's value, not a DuckDB traceback."""
    raw = _spec(write_table(INVOICES, "tx.csv"), filters=[{"column": "product", "op": "matches", "value": "(?<=A)1"}])
    problems = _problems(raw)
    assert set(problems) == {"data.filters.0.value"}
    assert "(?<=A)1" in problems["data.filters.0.value"]


# -------------------------------------------------------------------------------------- derived columns


def test_derived_columns_are_computed_per_line_before_aggregation(write_table):
    """`sales = qty * price` summed per pair equals pandas' per-line product summed per pair; later columns use earlier ones."""
    raw = _spec(
        write_table(TRANSACTIONS, "tx.csv"),
        model_type="ranking",
        target="total_sales",
        derived=[{"name": "sales", "expr": "qty * price"}, {"name": "big", "expr": "sales * 10 - 1"}],
        filters=[{"column": "sales", "op": ">", "value": 2.5}],
        aggregate=[
            {"name": "total_sales", "fn": "sum", "column": "sales"},
            {"name": "top", "fn": "max", "column": "big"},
        ],
    )
    data = _load(raw)
    lines = TRANSACTIONS.assign(sales=TRANSACTIONS["qty"] * TRANSACTIONS["price"])
    lines = lines[lines["sales"] > 2.5]
    expected = lines.groupby(["buyer", "product"])["sales"].sum().sort_index()
    got = pd.Series(data.target, index=pd.MultiIndex.from_arrays([data.buyers, data.products])).sort_index()
    assert got.to_dict() == pytest.approx(expected.to_dict())
    assert data.report["dropped_by_filters"] == int((TRANSACTIONS["qty"] * TRANSACTIONS["price"] <= 2.5).sum())


@pytest.mark.parametrize(
    ("derived", "path", "says"),
    [
        ([{"name": "x", "expr": "qty * cost"}], "data.derived.0.expr", "unknown column 'cost'"),
        ([{"name": "x", "expr": "qty * buyer"}], "data.derived.0.expr", "cannot be computed from the data"),
        ([{"name": "qty", "expr": "qty * 2"}], "data.derived.0.name", "already a column"),
        ([{"name": "x", "expr": "price"}, {"name": "y", "expr": "z + 1"}], "data.derived.1.expr", "unknown column 'z'"),
    ],
)
def test_derived_columns_that_do_not_fit_the_data_name_their_field(write_table, derived, path, says):
    """Unknown columns, impossible arithmetic (a number times text) and name clashes are problems on that entry."""
    problems = _problems(_spec(write_table(TRANSACTIONS, "tx.csv"), derived=derived))
    assert set(problems) == {path}
    assert says in problems[path]


def test_hostile_derived_expressions_are_refused_by_the_spec():
    """SQL text and unknown functions in a derived column are spec problems naming the field; nothing is read."""
    raw = _spec(
        "unused.csv",
        derived=[
            {"name": "a", "expr": "qty); DROP TABLE tx; --"},
            {"name": "b", "expr": "read_csv('/etc/passwd')"},
            {"name": "c", "expr": "qty * price"},
        ],
    )
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    problems = {p.path: p.message for p in info.value.problems}
    assert set(problems) == {"data.derived.0.expr", "data.derived.1.expr"}
    assert "unknown function 'read_csv'" in problems["data.derived.1.expr"]


# ------------------------------------------------------------------------------------------ timestamps


def _dated(tmp_path, days):
    path = tmp_path / "tx.csv"
    rows = [f"u{i % 3},p{i % 4},{d}" for i, d in enumerate(days)]
    path.write_text("buyer,product,day\n" + "\n".join(rows) + "\n")
    return path


def test_a_text_timestamp_format_is_found_from_every_value(tmp_path):
    """Month/day dates whose first lines also fit day/month (as Ta-Feng's do) are read month first, from the later values."""
    days = [f"11/{d}/2000" for d in range(1, 13)] * 3 + ["11/13/2000", "12/25/2000"]
    data = _load(_spec(_dated(tmp_path, days), timestamp="day"))
    expected = [int(pd.Timestamp(f"{d[-4:]}-{d.split('/')[0]}-{d.split('/')[1]}", tz="UTC").timestamp()) for d in days]
    assert data.frame[TS].tolist() == expected


def test_a_declared_timestamp_format_is_used(tmp_path):
    """timestamp_format reads day/month dates that would otherwise fit both layouts."""
    days = ["01/02/2000", "03/04/2000", "05/06/2000"]
    raw = _spec(_dated(tmp_path, days), timestamp="day")
    raw["data"]["transactions"]["timestamp_format"] = "%d/%m/%Y"
    data = _load(raw)
    assert data.frame[TS].tolist() == [int(pd.Timestamp(f"2000-{d[3:5]}-{d[:2]}", tz="UTC").timestamp()) for d in days]


def test_dates_that_fit_two_layouts_ask_for_a_declared_format(tmp_path):
    """When every day is ≤ 12, month/day and day/month both read every value: the user is asked to choose."""
    raw = _spec(_dated(tmp_path, ["01/02/2000", "03/04/2000"]), timestamp="day")
    raw["data"]["transactions"]["types"] = {"day": "VARCHAR"}
    problems = _problems(raw)
    assert set(problems) == {"data.transactions.timestamp_format"}
    assert "%m/%d/%Y and %d/%m/%Y" in problems["data.transactions.timestamp_format"]
    raw["data"]["transactions"]["types"] = {}  # typed by the reader, the doubt is found there
    with pytest.raises(DataError, match="fits both %d/%m/%Y and %m/%d/%Y; declare the file's timestamp_format"):
        _load(raw)


def test_a_declared_format_that_reads_no_value_is_named(tmp_path):
    """A format that fits none of the values is reported on timestamp_format, not as an empty dataset."""
    raw = _spec(_dated(tmp_path, ["2000-01-02", "2000-01-03"]), timestamp="day")
    raw["data"]["transactions"]["types"] = {"day": "VARCHAR"}
    raw["data"]["transactions"]["timestamp_format"] = "%d/%m/%Y"
    problems = _problems(raw)
    assert set(problems) == {"data.transactions.timestamp_format"}


# ------------------------------------------------------------------------------------------ aggregation


def test_aggregation_turns_lines_into_one_row_per_buyer_product_pair(write_table):
    """sum, count, count_distinct, mean, min and max per pair equal a Python group-by, with the latest timestamp."""
    raw = _spec(
        write_table(TRANSACTIONS, "tx.csv"),
        model_type="ranking",
        target="total_qty",
        timestamp="ts",
        aggregate=[
            {"name": "total_qty", "fn": "sum", "column": "qty"},
            {"name": "lines", "fn": "count"},
            {"name": "baskets", "fn": "count_distinct", "column": "basket"},
            {"name": "mean_price", "fn": "mean", "column": "price"},
            {"name": "min_qty", "fn": "min", "column": "qty"},
            {"name": "max_qty", "fn": "max", "column": "qty"},
        ],
    )
    raw["features"]["product"] += [
        {"column": name, "transform": "numeric"} for name in ("lines", "baskets", "mean_price", "min_qty", "max_qty")
    ]
    frame = _load(raw).frame

    groups: dict[tuple[str, str], list[dict]] = {}
    for row in TRANSACTIONS.to_dict("records"):
        groups.setdefault((row["buyer"], row["product"]), []).append(row)
    assert list(zip(frame[BUYER], frame[PRODUCT], strict=True)) == sorted(groups)
    for row in frame.to_dict("records"):
        lines = groups[(row[BUYER], row[PRODUCT])]
        assert row[TARGET] == sum(r["qty"] for r in lines)
        assert row["lines"] == len(lines)
        assert row["baskets"] == len({r["basket"] for r in lines})
        assert row["mean_price"] == pytest.approx(sum(r["price"] for r in lines) / len(lines))
        assert row["min_qty"] == min(r["qty"] for r in lines)
        assert row["max_qty"] == max(r["qty"] for r in lines)
        assert row[TS] == max(r["ts"] for r in lines)


def test_aggregation_carries_each_pairs_latest_attribute_value(write_table):
    """A transaction column used as a feature takes its value from the pair's latest line."""
    tx = TRANSACTIONS.assign(channel=["web", "shop", "web", "shop", "web", "web", "shop", "shop", "web", "shop"])
    raw = _spec(write_table(tx, "tx.csv"), timestamp="ts", aggregate=[{"name": "n", "fn": "count"}])
    raw["features"]["buyer"].append({"column": "channel", "transform": "categorical"})
    frame = _load(raw).frame
    latest = {}
    for row in tx.sort_values("ts").to_dict("records"):
        latest[(row["buyer"], row["product"])] = row["channel"]
    for row in frame.to_dict("records"):
        assert row["channel"] == latest[(row[BUYER], row[PRODUCT])]


def test_summing_a_text_column_is_reported(write_table):
    """sum or mean over a non-numeric column is reported at that aggregate's column."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), aggregate=[{"name": "x", "fn": "sum", "column": "buyer"}])
    problems = _problems(raw)
    assert set(problems) == {"data.aggregate.0.column"}
    assert "not numeric" in problems["data.aggregate.0.column"]


# ------------------------------------------------------------------------------------- cleaning, report


def test_rows_with_missing_ids_are_dropped_and_counted(write_table):
    """Rows without a buyer or product id are dropped, and their number is in the report."""
    tx = TRANSACTIONS.copy()
    tx.loc[[1, 4], "buyer"] = None
    tx.loc[[6], "product"] = None
    data = _load(_spec(write_table(tx, "tx.csv")))
    assert data.report["rows_read"] == 10
    assert data.report["dropped_missing_ids"] == 3
    assert data.report["rows_clean"] == 7
    assert len(data.frame) == 7
    assert data.frame[BUYER].notna().all()
    assert data.frame[PRODUCT].notna().all()


def test_rows_with_missing_or_nan_targets_are_dropped_and_counted(write_table):
    """Rows whose target is empty or NaN are dropped from ranking data, and counted."""
    tx = TRANSACTIONS.astype({"price": object})
    tx.loc[2, "price"] = ""
    tx.loc[5, "price"] = "nan"
    tx.loc[8, "price"] = None
    data = _load(_spec(write_table(tx, "tx.csv"), model_type="ranking", target="price"))
    assert data.report["dropped_bad_target"] == 3
    assert len(data.frame) == 7
    assert not any(math.isnan(t) for t in data.target)
    expected = [float(p) for i, p in enumerate(TRANSACTIONS["price"]) if i not in (2, 5, 8)]
    assert data.target.tolist() == expected


def test_retrieval_data_keeps_rows_whatever_their_target(write_table):
    """A retrieval model does not read the target, so rows with a missing target stay."""
    tx = TRANSACTIONS.astype({"price": object})
    tx.loc[2, "price"] = None
    data = _load(_spec(write_table(tx, "tx.csv"), model_type="retrieval", target="price"))
    assert len(data.frame) == 10
    assert data.target is None
    assert "dropped_bad_target" not in data.report


def test_unreadable_timestamps_are_dropped_and_counted(write_table):
    """Rows whose timestamp string cannot be read as a time are dropped and counted."""
    tx = TRANSACTIONS.assign(when=["2024-01-01"] * 8 + ["soon", "never"])
    data = _load(_spec(write_table(tx, "tx.csv"), timestamp="when"))
    assert data.report["dropped_bad_timestamp"] == 2
    assert len(data.frame) == 8


def test_unknown_columns_are_all_reported_with_their_paths(write_table):
    """Every column reference that the files lack is reported together, each at its field path."""
    raw = _spec(
        write_table(TRANSACTIONS, "tx.csv"),
        model_type="ranking",
        target="revenue",
        timestamp="time",
        filters=[{"column": "store", "op": "==", "value": 1}],
        aggregate=[{"name": "total", "fn": "sum", "column": "amount"}],
    )
    raw["data"]["buyer_id"] = "customer"
    raw["features"]["product"].append({"column": "colour", "transform": "categorical"})
    problems = _problems(raw)
    assert set(problems) == {
        "data.buyer_id",
        "data.timestamp",
        "data.filters.0.column",
        "data.aggregate.0.column",
        "features.product.1.column",
        "features.target",
    }
    assert "unknown column 'colour'" in problems["features.product.1.column"]
    assert "qty" in problems["features.product.1.column"]  # the message lists the columns that exist


def test_non_numeric_target_is_reported(write_table):
    """A ranking target that is text is reported at features.target."""
    problems = _problems(_spec(write_table(TRANSACTIONS, "tx.csv"), model_type="ranking", target="product"))
    assert set(problems) == {"features.target"}
    assert "not numeric" in problems["features.target"]


def test_filters_that_leave_nothing_are_reported(write_table):
    """When cleaning and filters leave no rows, the problem says so instead of failing later."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), filters=[{"column": "qty", "op": ">", "value": 100}])
    assert set(_problems(raw)) == {"data"}


# --------------------------------------------------------------------------------------------- sampling


def test_sample_fraction_that_leaves_no_rows_is_an_error(write_table):
    """A sample fraction that rounds to zero rows is reported at data.sample_fraction."""
    problems = _problems(_spec(write_table(TRANSACTIONS, "tx.csv"), sample_fraction=0.01))
    assert set(problems) == {"data.sample_fraction"}


def test_sampling_keeps_the_rounded_share_reproducibly(write_table):
    """A sample keeps round(n × fraction) distinct rows in file order, the same rows for the same seed."""
    path = write_table(TRANSACTIONS, "tx.csv")
    first = _load(_spec(path, sample_fraction=0.6, sample_seed=3, timestamp="ts"))
    again = _load(_spec(path, sample_fraction=0.6, sample_seed=3, timestamp="ts"))
    assert first.report["rows_sampled"] == 6
    pd.testing.assert_frame_equal(first.frame, again.frame)
    file_order = TRANSACTIONS["ts"].tolist()  # distinct values, so they identify rows
    positions = [file_order.index(t) for t in first.frame[TS]]
    assert positions == sorted(set(positions))
    seeds = {tuple(_load(_spec(path, sample_fraction=0.6, sample_seed=s, timestamp="ts")).frame[TS]) for s in range(5)}
    assert len(seeds) > 1


def test_split_without_test_rows_is_an_error(write_table):
    """A split that leaves no test rows is reported at data.split."""
    raw = _spec(write_table(TRANSACTIONS, "tx.csv"), timestamp="ts", split={"kind": "time", "cutoff": "100000"})
    problems = _problems(raw)
    assert set(problems) == {"data.split"}
    assert "no test rows" in problems["data.split"]


def test_report_counts_rows_at_every_stage(write_table):
    """The report gives rows read, clean, sampled and per split, consistent with each other."""
    data = _load(_spec(write_table(TRANSACTIONS, "tx.csv"), timestamp="ts"))
    r = data.report
    assert (r["rows_read"], r["rows_clean"], r["rows_sampled"]) == (10, 10, 10)
    assert r["train_rows"] + r["validation_rows"] + r["test_rows"] == 10
    assert (r["train_rows"], r["test_rows"]) == (len(data.train), len(data.test))
