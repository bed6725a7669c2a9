"""What the Try-it form knows besides the model server's answer: the values a served bundle learnt for the buyer's
categorical columns (offered as suggestions), and the attributes of the products in an answer (title, department…),
read from the experiment's dataset so that a person sees products, not only their ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from tandem.bundle_format import FILES, MANIFEST
from tandem.data.sources import quote, read_source
from tandem.errors import DataError
from tandem.spec import TableSource
from tandem.web import storage
from tandem.web.experiments.models import Experiment

SUGGESTED = 200  # the most frequent values offered per column (a vocabulary may hold millions)
ATTRIBUTES = 4  # product attributes shown beside an id
VOCABULARY = "vocabulary"  # the fitted transform of id and categorical features


def known_values(bundle: str | Path, columns: list[str]) -> dict[str, list[str]]:
    """column → the values the bundle's buyer pipeline learnt for it (most frequent first), for the columns fed
    through a vocabulary; other columns (numbers, text, times) have none. A baseline model's bundle has no
    pipeline: its buyer ids are the ones it knows."""
    folder = Path(bundle)
    if not (folder / FILES["features"]).is_file():
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        ids = pq.read_table(folder / FILES["buyers"], columns=["buyer_id"]).column(0).slice(0, SUGGESTED)
        return {manifest["spec"]["data"]["buyer_id"]: [str(v) for v in ids.to_pylist()]}
    state = json.loads((folder / FILES["features"]).read_text(encoding="utf-8"))["buyer"]
    column_of = state["columns"]
    out: dict[str, list[str]] = {}
    for transform in state["transforms"]:
        column = column_of.get(transform["name"])
        if transform["kind"] == VOCABULARY and column in columns and column not in out:
            out[column] = [str(v) for v in transform["state"]["vocabulary_"][:SUGGESTED]]
    return out


def _product_source(experiment: Experiment) -> tuple[TableSource, str, list[str]] | None:
    """The table that holds one row of attributes per product, its key, and the attribute columns to show: the
    products file when the dataset has one, else the product features' columns of the transactions."""
    dataset = experiment.dataset
    role, key = ("products", dataset.products_key) if dataset.products_file else ("transactions", None)
    field = getattr(dataset, f"{role}_file")
    source = TableSource(**{**dataset.table_source(role), "path": str(storage.local_path(field.name))})
    product_id = dataset.product_id_column
    if key is None:
        features = (experiment.spec or {}).get("features", {}).get("product", [])
        columns = [f["column"] for f in features if f.get("column") not in (product_id, None)]
        columns = [c for c in dict.fromkeys(columns) if c in dataset.columns_of("transactions")]
        return (source, product_id, columns[:ATTRIBUTES]) if columns else None
    columns = [c for c in dataset.columns_of("products") if c != key]
    return source, key, columns[:ATTRIBUTES]


def product_attributes(experiment: Experiment, product_ids: list[str]) -> tuple[list[str], dict[str, list[Any]]]:
    """The attribute columns shown, and id → their values, for the products of an answer ([] and {} when the
    dataset has no attributes or its file cannot be read). Ids are matched as text, as the server returns them."""
    found = _product_source(experiment)
    if found is None or not product_ids:
        return [], {}
    source, key, columns = found
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        read_source(con, source, "t")
        picked = ", ".join(f"any_value({quote(c)})" for c in columns)
        rows = con.execute(
            f"SELECT CAST({quote(key)} AS VARCHAR) AS id, {picked} FROM t "
            f"WHERE CAST({quote(key)} AS VARCHAR) IN (SELECT unnest(?)) GROUP BY id",
            [[str(p) for p in product_ids]],
        ).fetchall()
    except (duckdb.Error, DataError, OSError):
        return [], {}
    finally:
        con.close()
    return columns, {row[0]: list(row[1:]) for row in rows}
