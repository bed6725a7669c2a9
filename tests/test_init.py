"""`tandem init`: the recommended spec follows from the data's profile, explains itself, and runs as written."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml

from tandem.cli import main
from tandem.data.prepare import load_interactions
from tandem.init import category_embedding_dim, id_embedding_dim, init_spec, list_category
from tandem.recommend import recommended_settings
from tandem.spec import RecommendSpec, load_spec
from tests.data.test_profile import warehouse_lines


@pytest.fixture
def written(tmp_path):
    """A products file beside warehouse lines, and the spec `init_spec` writes for them (spec, text, lines)."""
    frame = warehouse_lines()
    frame.to_csv(tmp_path / "lines.csv", index=False)
    products = pd.DataFrame({"item": [f"P{p}" for p in range(40)], "size": [f"{p % 3} kg" for p in range(40)]})
    products.to_csv(tmp_path / "products.csv", index=False)
    spec, text = init_spec(
        tmp_path / "specs" / "spec.yaml",
        str(tmp_path / "lines.csv"),
        buyer_id="customer",
        product_id="item",
        timestamp="day",
        target="price",
        products=(str(tmp_path / "products.csv"), "item"),
    )
    return spec, text, frame


def test_the_written_spec_loads_validates_and_reads_its_data(written, tmp_path):
    """The file on disk is a valid spec whose data loads: its relative paths point at the files."""
    spec, _, frame = written
    loaded = load_spec(tmp_path / "specs" / "spec.yaml")
    assert loaded == spec
    assert (
        yaml.safe_load((tmp_path / "specs" / "spec.yaml").read_text())["data"]["transactions"]["path"] == "../lines.csv"
    )
    data = load_interactions(loaded)
    assert data.report["rows_read"] == len(frame) and data.report["test_rows"] > 0


def test_the_time_split_leaves_about_the_last_fifth_of_time_for_test(written):
    """50 days → the cutoff is 11 days before the end (22%), on a day boundary."""
    spec, _, frame = written
    days = pd.to_datetime(frame["day"], format="%m/%d/%Y")
    span = (days.max() - days.min()).days + 1
    cutoff = dt.datetime.fromisoformat(spec.data.split.cutoff)
    test_days = (days.max() - pd.Timestamp(cutoff)).days + 1
    assert spec.data.split.kind == "time" and cutoff.time() == dt.time(0)
    assert 0.20 <= test_days / span <= 0.25


def test_features_follow_the_columns(written):
    """Ids get embeddings sized by how many are seen twice; attributes go to the side they describe; amounts nowhere."""
    spec = written[0]
    buyer = {f.column: f for f in spec.features.buyer}
    product = {f.column: f for f in spec.features.product}
    assert set(buyer) == {"customer", "region"} and set(product) == {"item", "category", "size"}
    assert buyer["customer"].transform == "id" and buyer["customer"].embedding_dim == id_embedding_dim(60)
    assert product["category"].transform == "categorical"
    assert product["category"].embedding_dim == category_embedding_dim(5)
    assert spec.features.target == "total_price" and spec.features.target_transform == "log1p"
    assert [a.model_dump(exclude_none=True) for a in spec.data.aggregate] == [
        {"name": "total_price", "fn": "sum", "column": "price"},
        {"name": "n_orders", "fn": "count_distinct", "column": "day"},
    ]
    assert spec.data.transactions.types == {"customer": "VARCHAR"}
    assert spec.data.transactions.null_values == ["Unknown"]


def test_the_lists_come_from_the_recommended_two_stage_with_the_category_nearest_root_of_the_catalog(written):
    """The recommend section is the recommended settings, with the product category of 5 values (nearer √40 than
    the 3 sizes) as its category; each of its settings is written under a comment."""
    spec, text, _ = written
    assert spec.recommend == recommended_settings("category")
    section = text[text.index("\nrecommend:") + 1 :].splitlines()[1:]
    settings = [line for line in section if not line.lstrip().startswith("#")]
    assert [line.split(":")[0].strip() for line in settings] == list(RecommendSpec.model_fields)
    for line in settings:
        above = section[section.index(line) - 1]
        assert above.lstrip().startswith("# "), line
    assert "# category (5 values) groups 40 products nearest √40 ≈ 6 values" in text


def test_the_list_category_is_the_one_nearest_root_of_the_catalog_on_a_log_scale():
    """√90,000 = 300: 200 values (×1.5 off) beat 500 (×1.67 off); columns that do not group products are out."""
    assert list_category({"a": 30, "b": 200, "c": 500}, 90_000)[0] == "b"
    assert list_category({"a": 30, "c": 500}, 90_000)[0] == "c"
    assert list_category({"one": 1, "half": 50_000}, 90_000) == (
        None,
        "no product column groups products into categories",
    )


def test_every_choice_is_explained(written):
    """The counts behind the choices appear in the comments, each above its setting."""
    _, text, frame = written
    lines = text.splitlines()
    assert lines[0].startswith(f"# Written by `tandem init` from lines.csv: {len(frame):,} lines")
    at = next(i for i, line in enumerate(lines) if "{column: customer, transform: id" in line)
    assert lines[at - 1].strip().startswith("# 60 buyers,")
    assert any("qty, price vary from line to line" in line for line in lines)
    unknown = int((frame["region"] == "Unknown").sum())
    assert f"# read as missing values: 'Unknown' in region on {unknown:,} lines" in text
    assert "    cutoff: " in text and "the last 11 days (22% of the time" in text


def test_init_refuses_unknown_columns_and_writes_nothing(tmp_path, capsys):
    """An unknown column is reported against its option, exit 1, and no file is left behind."""
    warehouse_lines().to_csv(tmp_path / "lines.csv", index=False)
    out = tmp_path / "spec.yaml"
    code = main(
        [
            "init",
            str(tmp_path / "lines.csv"),
            "--buyer-id",
            "buyer",
            "--product-id",
            "item",
            "--timestamp",
            "day",
            "-o",
            str(out),
        ]
    )
    assert code == 1 and not out.exists()
    assert "--buyer-id: no column 'buyer'" in capsys.readouterr().err


def test_init_does_not_replace_a_spec_without_force(tmp_path, capsys):
    """An existing output file is kept unless --force is given."""
    warehouse_lines().to_csv(tmp_path / "lines.csv", index=False)
    out = tmp_path / "spec.yaml"
    out.write_text("mine")
    args = [
        "init",
        str(tmp_path / "lines.csv"),
        "--buyer-id",
        "customer",
        "--product-id",
        "item",
        "--timestamp",
        "day",
        "-o",
        str(out),
    ]
    assert main(args) == 1 and out.read_text() == "mine"
    assert main([*args, "--force"]) == 0 and "cutoff:" in out.read_text()
    assert "next: tandem validate" in capsys.readouterr().out
    spec = load_spec(out)  # without --target the ranking task predicts order counts
    assert (spec.features.target, spec.features.target_transform) == ("n_orders", "log1p")
    assert main(["validate", str(out)]) == 0


@pytest.mark.slow
def test_ta_feng_raw_file_gives_a_spec_that_validates(shared_data_dir, tmp_path):
    """On the raw Ta-Feng file: M/D/YYYY found, ids kept as text, 'Unknown' missing; the spec's data loads."""
    path = shared_data_dir / "ta-feng" / "ta_feng.csv.gz"
    spec, text = init_spec(
        tmp_path / "spec.yaml",
        str(path),
        buyer_id="CUSTOMER_ID",
        product_id="PRODUCT_ID",
        timestamp="TRANSACTION_DT",
        target="SALES_PRICE",
    )
    source = spec.data.transactions
    assert source.timestamp_format == "%m/%d/%Y" and source.types["CUSTOMER_ID"] == "VARCHAR"
    assert source.null_values == ["Unknown"]
    assert spec.data.split.cutoff == "2001-02-02"
    assert {f.column for f in spec.features.buyer} == {"CUSTOMER_ID", "AGE_GROUP", "PIN_CODE"}
    assert {f.column for f in spec.features.product} == {"PRODUCT_ID", "PRODUCT_SUBCLASS"}
    assert "# 23,812 products, 21,060 in two orders or more → id embedding 32" in text
    data = load_interactions(load_spec(tmp_path / "spec.yaml"))
    assert data.report["rows_read"] == 817_741 and data.report["dropped_bad_timestamp"] == 0
    assert data.frame["__buyer"].str.len().eq(8).all()  # leading zeros kept
