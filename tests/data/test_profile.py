"""Profiling a transactions file for `tandem init`: every count checked against pandas on the same lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tandem.data.profile import profile_data
from tandem.errors import SpecError


def warehouse_lines(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """Purchase lines like a warehouse club's: 60 buyers (ids with leading zeros) over 50 days, 40 products in
    5 categories, a region per buyer ('Unknown' for some), M/D/YYYY dates, quantity and price per line."""
    rng = np.random.default_rng(seed)
    buyers = rng.integers(0, 60, n)
    products = (buyers + rng.geometric(0.3, n)) % 40  # each buyer keeps to a few products: repeats
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 50, n), unit="D")
    regions = np.array(["north", "south", "east", "Unknown"])
    frame = pd.DataFrame(
        {
            "day": [f"{d.month}/{d.day}/{d.year}" for d in days],
            "customer": [f"{b:05d}" for b in buyers],
            "region": regions[buyers % 4],
            "item": [f"P{p}" for p in products],
            "category": [f"c{p % 5}" for p in products],
            "qty": rng.integers(1, 5, n),
            "price": np.round(rng.lognormal(3, 1.5, n), 2),
        }
    )
    # In time order, as exports are: the first lines (1–12 January) also fit day first, as Ta-Feng's do.
    return frame.iloc[np.argsort(days.to_numpy(), kind="stable")].reset_index(drop=True)


@pytest.fixture
def lines_file(tmp_path):
    frame = warehouse_lines()
    path = tmp_path / "lines.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_counts_agree_with_pandas(lines_file):
    """Buyers, products, orders (a buyer's lines on one day), pairs and repeat buying equal pandas' counts."""
    frame, path = lines_file
    profile = profile_data(str(path), buyer_id="customer", product_id="item", timestamp="day", target="price")
    orders = frame.groupby(["customer", "day"]).ngroups
    per_pair = frame.groupby(["customer", "item"])["day"].nunique()
    per_product = frame.drop_duplicates(["customer", "day", "item"]).groupby("item").size()
    per_buyer = frame.groupby("customer")["day"].nunique()
    assert (profile.rows, profile.buyers, profile.products) == (len(frame), 60, frame["item"].nunique())
    assert profile.orders == orders
    assert (profile.pairs, profile.repeat_pairs) == (len(per_pair), int((per_pair >= 2).sum()))
    assert profile.products_repeated == int((per_product >= 2).sum())
    assert profile.buyers_repeated == int((per_buyer >= 2).sum())
    days = pd.to_datetime(frame["day"], format="%m/%d/%Y")
    assert profile.first_time == int(days.min().tz_localize("UTC").timestamp())
    assert profile.last_time == int(days.max().tz_localize("UTC").timestamp())
    assert profile.days == days.nunique() and profile.day_only
    assert sum(profile.lines_per_day.values()) == len(frame)
    assert profile.target_max == frame["price"].max()
    assert profile.target_median == pytest.approx(frame["price"].median())


def test_reading_traps_are_found(lines_file):
    """Digit ids keep their zeros and 'Unknown' is a missing value (M/D/YYYY dates: see test_counts_agree_with_pandas)."""
    frame, path = lines_file
    profile = profile_data(str(path), buyer_id="customer", product_id="item", timestamp="day")
    assert profile.text_ids == ["customer"]
    assert profile.null_values == {"transactions": ["Unknown"]}
    assert profile.null_counts == {("region", "Unknown"): int((frame["region"] == "Unknown").sum())}


def test_columns_are_assigned_to_the_side_they_describe(lines_file):
    """A value per buyer goes to the buyer, a value per product to the product, per-line amounts to neither."""
    frame, path = lines_file
    profile = profile_data(str(path), buyer_id="customer", product_id="item", timestamp="day")
    columns = {c.name: c for c in profile.columns}
    assert {name: c.side for name, c in columns.items()} == {
        "region": "buyer",
        "category": "product",
        "qty": None,
        "price": None,
    }
    assert columns["category"].distinct == 5 and columns["qty"].numeric
    assert (columns["qty"].min, columns["qty"].max) == (frame["qty"].min(), frame["qty"].max())


def test_attribute_files_describe_their_side(lines_file, tmp_path):
    """Columns of a products file are product attributes, counted over that file."""
    _, path = lines_file
    products = pd.DataFrame({"item": [f"P{p}" for p in range(40)], "brand": [f"b{p % 7}" for p in range(40)]})
    products.to_csv(tmp_path / "products.csv", index=False)
    profile = profile_data(
        str(path),
        buyer_id="customer",
        product_id="item",
        timestamp="day",
        products=(str(tmp_path / "products.csv"), "item"),
    )
    brand = next(c for c in profile.columns if c.name == "brand")
    assert (brand.side, brand.table, brand.distinct, brand.rows) == ("product", "products", 7, 40)


def test_an_order_column_counts_orders(lines_file, tmp_path):
    """With --order-id, orders are that column's distinct values per buyer."""
    frame, _ = lines_file
    frame = frame.assign(basket=np.arange(len(frame)) // 3)
    path = tmp_path / "with_orders.csv"
    frame.to_csv(path, index=False)
    profile = profile_data(str(path), buyer_id="customer", product_id="item", timestamp="day", order_id="basket")
    assert profile.orders == frame.groupby(["customer", "basket"]).ngroups


def test_unknown_columns_name_the_option(lines_file):
    """A column the file lacks is a problem on the command-line option that named it; a text target too."""
    _, path = lines_file
    with pytest.raises(SpecError) as info:
        profile_data(str(path), buyer_id="buyer", product_id="item", timestamp="when", target="region")
    problems = {p.path: p.message for p in info.value.problems}
    assert set(problems) == {"--buyer-id", "--timestamp", "--target"}
    assert "no column 'buyer'" in problems["--buyer-id"] and "not numeric" in problems["--target"]


def test_ambiguous_dates_ask_for_a_format(tmp_path):
    """Dates whose days are all ≤ 12 fit month first and day first: the user is asked for --timestamp-format."""
    path = tmp_path / "tx.csv"
    path.write_text("b,p,d\n1,2,01/02/2020\n1,3,03/04/2020\n")
    with pytest.raises(SpecError) as info:
        profile_data(str(path), buyer_id="b", product_id="p", timestamp="d")
    assert [p.path for p in info.value.problems] == ["--timestamp-format"]
    ok = profile_data(str(path), buyer_id="b", product_id="p", timestamp="d", timestamp_format="%d/%m/%Y")
    assert ok.first_time == int(pd.Timestamp("2020-02-01", tz="UTC").timestamp())
