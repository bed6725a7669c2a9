"""Batch recommendations for a file of buyers, streamed in chunks so that memory does not grow with the buyers.

DuckDB reads the buyers file (CSV or Parquet) and hands it over in record batches; each batch is encoded with the
training pipeline, searched through the bundle's index (the same code as `POST /v1/retrieve`), and appended to the
output Parquet file as its own row group. A bundle with a second stage gives the buyers it knows its lists instead
(the same code as `POST /v1/recommend`; `score` is the ranker's, null for a baseline's lists and the popular fill). With purchases to exclude, DuckDB joins each buyer's distinct past
products onto the buyers (it spills to disk rather than holding large tables in memory).

Output: one row per (buyer, recommended product): the buyer's id column (or `row`, the buyer's 0-based position
in the file, when the file has no id column), `rank` (1 = best), `product_id`, `score` and `fallback`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from tandem.bundle_format import RETRIEVAL, TWO_STAGE
from tandem.data.sources import quote, read_source
from tandem.errors import TandemError
from tandem.serving.bundle import Bundle
from tandem.serving.recommender import encode_columns, exclusion_rows, listed_rows, popular, search
from tandem.spec import TableSource

CHUNK_ROWS = 1024
SPEC_TRANSACTIONS = "spec"  # `purchases` value meaning: the transactions file the bundle's spec names


def _purchases_source(bundle: Bundle, purchases: str | Path) -> TableSource:
    if str(purchases) == SPEC_TRANSACTIONS:
        return TableSource(**bundle.manifest.spec["data"]["transactions"])
    return TableSource(path=str(purchases))


def shard_rows(total: int, shard: tuple[int, int]) -> tuple[int, int]:
    """The buyers' rows [start, stop) of shard i of n: consecutive runs of the file, as even as can be."""
    i, n = shard
    return total * i // n, total * (i + 1) // n


def _query(
    con: duckdb.DuckDBPyConnection,
    bundle: Bundle,
    columns: list[str],
    key: str | None,
    purchases: str | Path | None,
    rows: tuple[int, int],
) -> str:
    """SQL over view `buyers` (and `purchases`): the request columns, `__row`, and `__bought` product id lists, for
    the buyers' rows [start, stop)."""
    data = bundle.manifest.spec["data"]
    selected = ", ".join(quote(c) for c in columns)
    numbered = f"SELECT {selected}, row_number() OVER () - 1 AS __row FROM buyers"
    base = f"SELECT * FROM ({numbered}) WHERE __row >= {rows[0]} AND __row < {rows[1]}"
    if purchases is None:
        return f"SELECT *, NULL AS __bought FROM ({base}) ORDER BY __row"
    source = _purchases_source(bundle, purchases)
    found = dict(read_source(con, source, "purchases"))
    missing = [c for c in (data["buyer_id"], data["product_id"]) if c not in found]
    if missing:
        raise TandemError(
            f"{source.path}: the purchases need columns {', '.join(missing)} (it has: {', '.join(found)})"
        )
    if key is None:
        raise TandemError(f"to exclude purchases, the buyers file needs the buyer id column '{data['buyer_id']}'")
    bought = (
        f"SELECT CAST({quote(data['buyer_id'])} AS VARCHAR) AS __key, "
        f"list(DISTINCT CAST({quote(data['product_id'])} AS VARCHAR)) AS __bought FROM purchases GROUP BY 1"
    )
    return (
        f"SELECT b.*, p.__bought FROM ({base}) b LEFT JOIN ({bought}) p "
        f"ON CAST(b.{quote(key)} AS VARCHAR) = p.__key ORDER BY b.__row"
    )


def _schema(bundle: Bundle, reader: pa.RecordBatchReader, key: str | None) -> pa.Schema:
    id_field = reader.schema.field(key) if key is not None else pa.field("row", pa.int64())
    return pa.schema(
        [
            id_field,
            pa.field("rank", pa.int32()),
            pa.field("product_id", pa.array(bundle.product_ids[:1]).type),  # [:1]: an empty object array has no type
            pa.field("score", pa.float32()),
            pa.field("fallback", pa.string()),
        ]
    )


def _chunk_table(
    schema: pa.Schema, bundle: Bundle, batch: pa.RecordBatch, key: str | None, hits: list, fallbacks: list[str | None]
) -> pa.Table:
    """Long-format rows of one chunk: its buyers' results one after another, best first."""
    counts = [len(rows) for _, rows in hits]
    owner = np.repeat(np.arange(batch.num_rows), counts)
    ids = batch.column(key if key is not None else "__row")
    rows = np.concatenate([r for _, r in hits])
    columns = [
        ids.take(pa.array(owner)),
        pa.array(np.concatenate([np.arange(1, c + 1) for c in counts]), pa.int32()),
        pa.array(bundle.product_ids[rows]),
        pa.array(np.concatenate([s for s, _ in hits]), pa.float32(), from_pandas=True),  # NaN: no score
        pa.array([fallbacks[i] for i in owner], pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _chunk_hits(
    bundle: Bundle,
    raw: dict[str, np.ndarray],
    batch: pa.RecordBatch,
    key: str | None,
    k: int,
    exclude: list,
    new_only: bool,
) -> tuple[list, list[str | None], int]:
    """(scores, catalog rows) and the fallback of each buyer of a chunk, and how many got the bundle's lists
    (second stage or baseline: the buyers they know); the others get the first stage's retrieval or
    popularity."""
    n = batch.num_rows
    ids = batch.column(key).to_numpy(zero_copy_only=False) if key is not None else [None] * n
    second = listed_rows(bundle, ids, k, exclude, new_only)
    hits: list = [hit for hit in second if hit is not None]
    rest = np.array([i for i, hit in enumerate(second) if hit is None], dtype=np.int64)
    fallbacks: list[str | None] = [None] * n
    if len(rest) and bundle.has_retrieval and bundle.has_towers:
        encoded = encode_columns(bundle, {c: v[rest] for c, v in raw.items()}, len(rest))
        found = iter(search(bundle, encoded, k, [exclude[i] for i in rest]))
        for j, i in enumerate(rest):
            fallbacks[i] = encoded.fallback(j, "popularity")
    else:
        found = iter(popular(bundle, k, exclude[i]) for i in rest)
        for i in rest:
            fallbacks[i] = "popularity"
    first = iter(hits)
    return [next(first) if hit is not None else next(found) for hit in second], fallbacks, len(hits)


def recommend_file(
    bundle: Bundle,
    buyers: str | Path,
    out: str | Path,
    *,
    k: int = 100,
    purchases: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    shard: tuple[int, int] = (0, 1),
    new_only: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the top-k products of every buyer in `buyers` (CSV or Parquet) to the Parquet file `out`.

    purchases: a file of past (buyer, product) rows to exclude, with the spec's buyer_id and product_id columns,
    or "spec" for the transactions file the bundle's spec names. new_only: the known buyers get the lists of
    products they never bought (see `listed_rows`). shard (i, n): only the i-th of n consecutive parts
    of the buyers file (0-based), so that n processes share the work; the `row` column stays the file's row.
    Returns counts (buyers, rows, fallbacks, listed: buyers given the second stage's or baseline's lists).
    Raises TandemError when the files do not hold what is needed, and DataError when one cannot be read.
    """
    if RETRIEVAL not in bundle.manifest.signatures and TWO_STAGE not in bundle.manifest.signatures:
        raise TandemError(f"{bundle.folder}: a {bundle.manifest.model_type} bundle has no retrieval signature")
    if k < 1:
        raise TandemError(f"--k must be at least 1, got {k}")
    if not 0 <= shard[0] < shard[1]:
        raise TandemError(f"--shard {shard[0]}/{shard[1]}: want i/n with 0 <= i < n (e.g. 0/4 … 3/4)")
    con = duckdb.connect()
    try:
        found = dict(read_source(con, TableSource(path=str(buyers)), "buyers"))
        columns = [c for c in bundle.buyer_columns if c in found]
        if not columns:
            raise TandemError(
                f"{buyers}: none of the buyer feature columns ({', '.join(bundle.buyer_columns)}) is in the file "
                f"(it has: {', '.join(found)})"
            )
        buyer_id = bundle.manifest.spec["data"]["buyer_id"]
        key = buyer_id if buyer_id in found else None
        if key is not None and key not in columns:
            columns.append(key)
        rows = shard_rows(con.sql("SELECT count(*) FROM buyers").fetchall()[0][0], shard)
        total = rows[1] - rows[0]
        reader = con.sql(_query(con, bundle, columns, key, purchases, rows)).to_arrow_reader(chunk_rows)
        counts = {"buyers": 0, "rows": 0, "fallbacks": 0, "listed": 0}
        schema = _schema(bundle, reader, key)
        writer = pq.ParquetWriter(str(out), schema)
        try:
            with tqdm(total=total, unit="buyer", desc="recommending", disable=not progress) as bar:
                for batch in reader:
                    n = batch.num_rows
                    if n == 0:
                        continue
                    raw = {
                        c: batch.column(c).to_numpy(zero_copy_only=False) for c in bundle.buyer_columns if c in columns
                    }
                    bought = [ids or [] for ids in batch.column("__bought").to_pylist()]
                    excluded = exclusion_rows(bundle, bought)
                    hits, fallbacks, listed = _chunk_hits(bundle, raw, batch, key, k, excluded, new_only)
                    table = _chunk_table(schema, bundle, batch, key, hits, fallbacks)
                    writer.write_table(table)
                    counts["buyers"] += n
                    counts["rows"] += table.num_rows
                    counts["fallbacks"] += sum(f is not None for f in fallbacks)
                    counts["listed"] += listed
                    bar.update(n)
        finally:
            writer.close()
        return counts
    except duckdb.Error as e:
        raise TandemError(f"the buyers could not be read: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
