"""Reading a serving bundle once, at start-up: the graphs, the catalog, the fitted buyer pipeline, the index
and the second stage.

The format is :mod:`tandem.bundle_format`; this reader needs only ONNX Runtime, numpy, scipy, pandas/pyarrow,
`tandem.features` and the second stage's scoring code (no torch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from pydantic import ValidationError

from tandem.bundle_format import FORMAT, MANIFEST, RANKING, RETRIEVAL, SUPPORTED_VERSIONS, Manifest
from tandem.errors import TandemError
from tandem.evaluation.baseline_model import BaselineModel
from tandem.features.pipeline import TowerFeatures
from tandem.features.transforms import Vocabulary
from tandem.recommend.two_stage import TwoStage
from tandem.serving.index import CandidateIndex, load_index


class BundleError(TandemError):
    """A bundle folder is missing, unfinished, or of a format this server does not read."""


def _session(path: Path) -> ort.InferenceSession:
    # One thread per graph: the graphs are tiny, and a request's latency is lost to thread hand-offs otherwise.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class IdLookup:
    """Product id → catalog row (or buyer id → buyer code), matching ids the way training matched them (42, 42.0
    and "42" are one id)."""

    def __init__(self, ids: np.ndarray) -> None:
        # Ids of the table's own type are found by a hash lookup. Any other spelling goes through a vocabulary
        # over the table's ids, which gives each id a code in 1..N (0 = unknown) with the canonical id matching
        # of the training transforms; `_row_of_code` maps codes back to rows.
        self._exact = pd.Index(ids)
        self._vocabulary = Vocabulary("id", oov_buckets=1).fit(ids)
        codes = self._vocabulary.transform(ids)
        self._row_of_code = np.full(len(ids) + 1, -1, dtype=np.int64)
        self._row_of_code[codes] = np.arange(len(ids))

    def rows(self, ids: list[Any] | np.ndarray) -> np.ndarray:
        """Row of each id, -1 for an id not in the table. ids: [n] → int64 [n]."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        values = np.asarray(ids)  # int64 for integer ids: pandas looks those up ten times faster than objects
        rows = self._exact.get_indexer(values.astype(object) if values.dtype.kind == "U" else values)
        missed = rows < 0
        if missed.any():
            rows[missed] = self._row_of_code[self._vocabulary.transform(np.asarray(ids, dtype=object)[missed])]
        return rows.astype(np.int64, copy=False)


def _manifest(folder: Path) -> Manifest:
    """The folder's manifest; BundleError when it is missing, unfinished or of an unknown format."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        what = f"has no {MANIFEST} (an unfinished export?)" if folder.is_dir() else "does not exist"
        raise BundleError(f"{folder}: {what}; export one with `tandem train SPEC --out DIR` (DIR/bundle)")
    raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    if raw.get("format") != FORMAT or raw.get("format_version") not in SUPPORTED_VERSIONS:
        raise BundleError(
            f"{folder}: format {raw.get('format')!r} version {raw.get('format_version')!r} is not "
            f"readable here (expected {FORMAT!r} version {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        raise BundleError(f"{folder}: {MANIFEST} is not a valid manifest: {e.errors()[0]['msg']}") from None


@dataclass
class Bundle:
    """A loaded bundle. `candidates` [Nc, d] and `product_ids` [Nc] share the catalog's row order. A baseline
    model's bundle has no towers (no buyer pipeline, graphs or embeddings), only its lists."""

    folder: Path
    manifest: Manifest
    buyer_features: TowerFeatures | None
    query_graph: ort.InferenceSession | None
    rating_graph: ort.InferenceSession | None
    candidates: np.ndarray | None
    product_ids: np.ndarray
    train_counts: np.ndarray
    average_query: np.ndarray | None
    index: CandidateIndex | None
    products: IdLookup
    popular_rows: np.ndarray  # catalog rows by training popularity, most popular first
    lists: TwoStage | BaselineModel | None = None  # the second stage or the baseline: lists by buyer code
    buyers: IdLookup | None = None  # buyer id → the code `lists` knows it by

    @classmethod
    def load(cls, folder: str | Path) -> Bundle:
        """Read a bundle folder; raises BundleError when it is missing, unfinished or of an unknown format."""
        folder = Path(folder)
        manifest = _manifest(folder)
        files = manifest.files
        products = pd.read_parquet(folder / files["products"])
        product_ids = products["product_id"].to_numpy()
        train_counts = products["train_count"].to_numpy(np.int64)
        lists: TwoStage | BaselineModel | None = None
        if manifest.second_stage is not None:
            lists = TwoStage.load(folder / manifest.second_stage.folder)
        if manifest.baseline is not None:
            lists = BaselineModel.load(manifest.model_type, folder / manifest.baseline.folder)
        common = {
            "folder": folder,
            "manifest": manifest,
            "product_ids": product_ids,
            "train_counts": train_counts,
            "products": IdLookup(product_ids),
            "popular_rows": np.argsort(-train_counts, kind="stable"),
            "lists": lists,
            "buyers": IdLookup(pd.read_parquet(folder / files["buyers"])["buyer_id"].to_numpy()) if lists else None,
        }
        if manifest.baseline is not None:
            return cls(
                buyer_features=None,
                query_graph=None,
                rating_graph=None,
                candidates=None,
                average_query=None,
                index=None,
                **common,
            )
        features = json.loads((folder / files["features"]).read_text(encoding="utf-8"))
        candidates = np.ascontiguousarray(np.load(folder / files["candidates"]), dtype=np.float32)
        return cls(
            buyer_features=TowerFeatures.from_state(features["buyer"]),
            query_graph=_session(folder / files["query_tower"]),
            rating_graph=_session(folder / files["rating_head"]) if "rating_head" in files else None,
            candidates=candidates,
            average_query=np.load(folder / files["average_query"]).astype(np.float32),
            index=load_index(manifest.index, candidates, folder) if manifest.index else None,
            **common,
        )

    @property
    def has_towers(self) -> bool:
        """Whether the bundle has a model's towers (a baseline model's has none)."""
        return self.query_graph is not None

    @property
    def has_retrieval(self) -> bool:
        return RETRIEVAL in self.manifest.signatures

    @property
    def has_ranking(self) -> bool:
        return RANKING in self.manifest.signatures

    @property
    def buyer_columns(self) -> list[str]:
        """The request's buyer keys: the source columns of the buyer features."""
        return self.manifest.buyer_columns

    def embed_queries(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        """Run the query tower on encoded buyer features (as `TowerFeatures.transform` returns them): [n, d]."""
        feeds = {
            spec["name"]: encoded[spec["name"]].astype(spec["dtype"], copy=False) for spec in self.manifest.query_inputs
        }
        return self.query_graph.run(None, feeds)[0]

    def rate(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Rating-head predictions for aligned pairs: [n, d], [n, d] → [n] float32."""
        if self.rating_graph is None:
            raise BundleError(f"{self.folder}: this {self.manifest.model_type} bundle has no rating head")
        # Input names as `tandem.export.onnx_graphs.RATING_INPUTS` writes them.
        feeds = {"query_embedding": queries.astype(np.float32, copy=False), "candidate_embedding": candidates}
        return self.rating_graph.run(None, feeds)[0].reshape(-1)
