"""Datasets: upload, DuckDB profiles checked against pandas, refusals that leave nothing behind."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tandem.web.datasets.models import Dataset
from tests.web.conftest import Tenant, profiled, upload_dataset

pytestmark = pytest.mark.django_db


def _media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "datasets"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _upload(tenant: Tenant, files: dict[str, tuple[str, bytes]], **fields: str):
    data = {"name": "d", "buyer_id_column": "buyer", "product_id_column": "product", **fields}
    uploads = {role: SimpleUploadedFile(name, content) for role, (name, content) in files.items()}
    return tenant.client.post("/api/datasets", {**data, **uploads})


def test_an_upload_is_profiled_like_pandas_sees_it(acme: Tenant, synthetic_files: dict[str, Path]) -> None:
    """Row count, nulls, distinct counts, min/max/mean and top values agree with an independent pandas count."""
    body = upload_dataset(acme, synthetic_files)
    frame = pd.read_csv(synthetic_files["transactions"])
    table = body["profile"]["transactions"]
    assert table["rows"] == len(frame) == body["row_count"]
    columns = {c["name"]: c for c in table["columns"]}
    assert list(columns) == list(frame.columns)
    rating = columns["rating"]
    assert rating["type"] == "DOUBLE" and rating["nulls"] == 0
    assert rating["distinct"] == frame["rating"].nunique()
    assert (rating["min"], rating["max"]) == (frame["rating"].min(), frame["rating"].max())
    assert rating["mean"] == pytest.approx(frame["rating"].mean())
    counts = frame["rating"].value_counts()
    assert rating["top"][0] == {"value": counts.index[0], "count": int(counts.iloc[0])}
    assert columns["buyer"]["distinct"] == frame["buyer"].nunique() and columns["buyer"]["mean"] is None
    assert body["profile"]["products"]["rows"] == 120 and body["files"] == {
        "transactions": "transactions.csv",
        "products": "products.parquet",
    }
    stored = Dataset.objects.get(pk=body["id"])
    assert Path(stored.transactions_file.path).read_bytes() == synthetic_files["transactions"].read_bytes()


def test_nulls_are_counted(acme: Tenant) -> None:
    csv = b"buyer,product,qty\nb1,p1,1\nb2,,\nb3,p2,3\n"
    body = profiled(acme, _upload(acme, {"transactions": ("t.csv", csv)}))
    columns = {c["name"]: c for c in body["profile"]["transactions"]["columns"]}
    assert columns["product"]["nulls"] == 1 and columns["qty"]["nulls"] == 1 and columns["qty"]["mean"] == 2.0


def test_a_gzipped_csv_is_read(acme: Tenant) -> None:
    response = _upload(acme, {"transactions": ("t.csv.gz", gzip.compress(b"buyer,product\nb1,p1\nb2,p2\n"))})
    assert profiled(acme, response)["row_count"] == 2


@pytest.mark.parametrize(
    ("name", "content", "fragment", "at_upload"),
    [
        ("t.csv", b"", "empty", True),
        ("t.csv", b"buyer,product\n", "no data rows", False),
        ("t.csv", b"buyer,product\n1,2\n3,4,5\n6\n", "number of fields", True),
        ("t.parquet", b"PAR1 this is not parquet", "cannot be read as parquet", True),
        ("t.parquet", b"buyer,product\n1,2\n", "cannot be read as parquet", True),
        ("t.xlsx", b"buyer,product\n1,2\n", "neither CSV", True),
        ("t.csv", bytes(range(256)) * 40, "cannot be read as csv", True),
        ("t.csv", b"buyer,product\nb1,p\xff\xfe\n", "is not UTF-8 text (byte 0xff at offset 18)", True),
    ],
)
def test_a_malformed_or_empty_file_is_refused_and_leaves_nothing(
    acme: Tenant, name: str, content: bytes, fragment: str, at_upload: bool
) -> None:
    """What a sample of the file shows is refused at upload (422, no record); what only the whole file shows
    (no data rows) fails the dataset in the background with the reason, and its files are removed."""
    response = _upload(acme, {"transactions": (name, content)})
    if at_upload:
        assert response.status_code == 422, response.content
        assert fragment in " ".join(response.json()["errors"]["transactions"])
        assert Dataset.objects.count() == 0
    else:
        body = profiled(acme, response)
        assert body["status"] == "failed" and fragment in body["error"] and name in body["error"], body
    assert _media_files() == []


def test_a_latin1_file_is_named_as_such_and_reads_with_its_encoding(acme: Tenant) -> None:
    """Without an encoding DuckDB said "CSV Error on Line: 2"; the answer names the encoding to choose."""
    content = "buyer,product,city\nb1,p1,Zürich\nb2,p2,Köln\n".encode("latin-1")
    refused = _upload(acme, {"transactions": ("t.csv", content)})
    assert refused.status_code == 422
    assert (
        "t.csv: is not UTF-8 text (byte 0xfc at offset 26); it reads as latin-1: set the encoding to latin-1"
        in (refused.json()["errors"]["transactions"][0])
    )
    body = profiled(acme, _upload(acme, {"transactions": ("t.csv", content)}, encoding="latin-1"))
    city = {c["name"]: c for c in body["profile"]["transactions"]["columns"]}["city"]
    assert sorted(v["value"] for v in city["top"]) == ["Köln", "Zürich"]


def test_a_missing_column_choice_is_refused_after_reading_and_the_files_are_removed(
    acme: Tenant, synthetic_files: dict[str, Path]
) -> None:
    """The columns are checked against the files' schema; the already-saved files are deleted on refusal."""
    tx, pr = synthetic_files["transactions"].read_bytes(), synthetic_files["products"].read_bytes()
    response = _upload(
        acme,
        {"transactions": ("t.csv", tx), "products": ("p.parquet", pr)},
        buyer_id_column="customer",
        timestamp_column="when",
        products_key="sku",
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"buyer_id_column", "timestamp_column", "products_key"}
    assert (
        "No column “customer” in the transactions file (it has: buyer, product, rating, ts)"
        in errors["buyer_id_column"][0]
    )
    assert Dataset.objects.count() == 0 and _media_files() == []


def test_an_attribute_file_needs_its_key(acme: Tenant, synthetic_files: dict[str, Path]) -> None:
    tx, pr = synthetic_files["transactions"].read_bytes(), synthetic_files["products"].read_bytes()
    response = _upload(acme, {"transactions": ("t.csv", tx), "products": ("p.parquet", pr)})
    assert response.status_code == 422 and "products_key" in response.json()["errors"]
    assert _media_files() == []


def test_filters_and_aggregation_are_checked_by_the_engine_and_against_the_columns(
    acme: Tenant, synthetic_files: dict[str, Path]
) -> None:
    tx = synthetic_files["transactions"].read_bytes()
    response = _upload(
        acme,
        {"transactions": ("t.csv", tx)},
        filters='[{"column": "rating", "op": "between", "value": 1}]',
        aggregate='[{"name": "total", "fn": "sum", "column": "price"}]',
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert "filters" in errors
    ok = _upload(
        acme,
        {"transactions": ("t.csv", tx)},
        aggregate='[{"name": "total", "fn": "sum", "column": "price"}]',
    )
    assert "no column “price”" in ok.json()["errors"]["aggregate"][0]
    assert _media_files() == []


def test_a_dataset_with_aggregation_offers_the_aggregates_as_columns(acme: Tenant, synthetic_files) -> None:
    body = upload_dataset(acme, synthetic_files, aggregate='[{"name": "total", "fn": "sum", "column": "rating"}]')
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.available_columns()["total"] == "DOUBLE" and dataset.is_numeric_column("total")
    assert dataset.data_section()["aggregate"] == [{"name": "total", "fn": "sum", "column": "rating"}]


def test_list_detail_update_and_delete(acme: Tenant, synthetic_files: dict[str, Path]) -> None:
    body = upload_dataset(acme, synthetic_files)
    listed = acme.client.get("/api/datasets").json()
    assert listed["count"] == 1 and "profile" not in listed["items"][0]
    patched = acme.patch(f"/api/datasets/{body['id']}", {"name": "renamed", "timestamp_column": ""})
    assert patched.status_code == 200 and patched.json()["timestamp_column"] == ""
    bad = acme.patch(f"/api/datasets/{body['id']}", {"product_id_column": "nope"})
    assert bad.status_code == 422 and "product_id_column" in bad.json()["errors"]
    assert _media_files()
    assert acme.client.delete(f"/api/datasets/{body['id']}").status_code == 204
    assert Dataset.objects.count() == 0 and _media_files() == []


def test_a_dataset_in_use_cannot_change_columns_or_be_deleted(acme: Tenant, setup_experiment) -> None:
    experiment = setup_experiment(acme)
    dataset = experiment["dataset_id"]
    assert acme.patch(f"/api/datasets/{dataset}", {"buyer_id_column": "product"}).status_code == 409
    assert acme.patch(f"/api/datasets/{dataset}", {"description": "fine"}).status_code == 200
    response = acme.client.delete(f"/api/datasets/{dataset}")
    assert response.status_code == 409 and response.json()["code"] == "in_use"
    assert _media_files()


# A Ta-Feng-like file: a byte-order mark, quoted fields, M/D/YYYY dates whose first lines also fit D/M/YYYY,
# ids with leading zeros, and 'Unknown' standing for a missing area.
WAREHOUSE = (
    '\ufeff"DAY","CUSTOMER","AREA","PRODUCT","QTY","PRICE"\n'
    + "".join(f'"11/{d}/2000","0{d:04d}","115","P{d % 3}","2","{d * 10}"\n' for d in range(1, 13))
    + '"11/13/2000","00013","Unknown","P1","1","7"\n'
).encode()


def test_reading_options_and_derived_columns_shape_the_profile(acme: Tenant) -> None:
    """Declared types, missing-value markers and derived columns are applied when profiling and kept for experiments."""
    response = _upload(
        acme,
        {"transactions": ("t.csv", WAREHOUSE)},
        buyer_id_column="CUSTOMER",
        product_id_column="PRODUCT",
        timestamp_column="DAY",
        column_types='{"CUSTOMER": "VARCHAR", "PRICE": "DOUBLE"}',
        null_values='["Unknown"]',
        timestamp_format="%m/%d/%Y",
        derived='[{"name": "unit_price", "expr": "PRICE / QTY"}]',
    )
    body = profiled(acme, response)
    columns = {c["name"]: c for c in body["profile"]["transactions"]["columns"]}
    assert columns["DAY"]["type"] == "DATE" and columns["DAY"]["max"] == "2000-11-13"
    assert columns["CUSTOMER"]["type"] == "VARCHAR" and columns["CUSTOMER"]["min"] is None
    assert columns["CUSTOMER"]["distinct"] == 13 and columns["CUSTOMER"]["top"][0]["value"] == "00001"
    assert columns["AREA"]["nulls"] == 1
    unit = columns["unit_price"]
    prices = [d * 10 / 2 for d in range(1, 13)] + [7.0]
    assert unit["derived"] and not columns["PRICE"]["derived"]
    assert unit["mean"] == pytest.approx(sum(prices) / len(prices)) and unit["max"] == 60.0
    assert body["read_options"] == {
        "timestamp_format": "%m/%d/%Y",
        "types": {"CUSTOMER": "VARCHAR", "PRICE": "DOUBLE"},
        "null_values": ["Unknown"],
    }
    data = Dataset.objects.get(pk=body["id"]).data_section()
    assert data["transactions"]["types"] == {"CUSTOMER": "VARCHAR", "PRICE": "DOUBLE"}
    assert data["derived"] == [{"name": "unit_price", "expr": "PRICE / QTY"}]


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"derived": '[{"name": "x", "expr": "QTY); DROP TABLE t; --"}]'}, "derived", "not a formula"),
        ({"derived": '[{"name": "x", "expr": "read_csv(\'/etc/passwd\')"}]'}, "derived", "unknown function"),
        ({"derived": '[{"name": "x", "expr": "QTY * COST"}]'}, "derived", "unknown column 'COST'"),
        ({"column_types": '{"CUSTOMER": "VARCHAR); DROP TABLE t"}'}, "column_types", "CUSTOMER"),
        ({"column_types": '{"NOPE": "VARCHAR"}'}, "column_types", "no file has the column NOPE"),
        ({"timestamp_format": "MM/DD/YYYY"}, "timestamp_format", "no date or time directive"),
        ({"encoding": "ebcdic"}, "encoding", "ebcdic"),
        ({"null_values": '"Unknown"'}, "null_values", "list"),
    ],
)
def test_bad_reading_options_and_derived_columns_are_refused_by_field(
    acme: Tenant, fields: dict[str, str], field: str, fragment: str
) -> None:
    """Hostile formulas, unknown types or columns and malformed options are 422s on their field; nothing is kept."""
    response = _upload(
        acme,
        {"transactions": ("t.csv", WAREHOUSE)},
        buyer_id_column="CUSTOMER",
        product_id_column="PRODUCT",
        **fields,
    )
    assert response.status_code == 422, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert fragment in " ".join(errors[field])
    assert Dataset.objects.count() == 0 and _media_files() == []
