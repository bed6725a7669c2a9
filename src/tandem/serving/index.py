"""Candidate indexes over the catalog's embeddings: exact top-K by matrix product, or a FAISS HNSW or IVF index.

Every index scores by inner product (the model's retrieval score) and answers `search(queries, k, exclude)` with,
per query, (scores, rows) best first, where rows index the catalog (the rows of `candidates.npy`). Excluded rows
never appear; a query gets fewer than k results only when the catalog minus its exclusions is smaller than k (or,
for IVF, when the probed lists hold fewer).

FAISS is imported only where an ANN index is built or loaded, so exact serving and training need no FAISS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Scores held at once by the exact index, in elements (64 MiB of float32), whatever the catalog size.
EXACT_BLOCK_ELEMENTS = 1 << 24
INDEX_FILE = "index.faiss"
ALGORITHMS = ("brute_force", "hnsw", "ivf")

Hits = list[tuple[np.ndarray, np.ndarray]]  # per query: (scores float32 [m], rows int64 [m]), m ≤ k


class CandidateIndex(Protocol):
    """What the server asks of an index."""

    algorithm: str

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> Hits: ...


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores of each row, best first. scores: [n, N] → [n, min(k, N)]."""
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # the k largest, unordered (no negated copy)
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class ExactIndex:
    """Brute force: every candidate is scored, so results equal the engine's full-catalog top-K."""

    algorithm = "brute_force"

    def __init__(self, candidates: np.ndarray) -> None:
        self.candidates = np.ascontiguousarray(candidates, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> Hits:
        """Top-k candidates of each query. queries: [n, d]; exclude: per query, catalog rows to leave out."""
        n_candidates = len(self.candidates)
        rows_per_block = max(1, EXACT_BLOCK_ELEMENTS // max(1, n_candidates))
        hits: Hits = []
        for start in range(0, len(queries), rows_per_block):
            block = np.asarray(queries[start : start + rows_per_block], dtype=np.float32)
            scores = block @ self.candidates.T  # [b, N]
            if exclude is not None:
                for i, rows in enumerate(exclude[start : start + len(block)]):
                    scores[i, rows] = -np.inf
            best = top_rows(scores, k)
            for i in range(len(block)):
                s = scores[i, best[i]]
                keep = s > -np.inf  # an excluded row only reaches the top k when too few others are left
                hits.append((s[keep], best[i][keep].astype(np.int64)))
        return hits


class FaissIndex:
    """A FAISS HNSW or IVF index with its search parameters; approximate, so recall against exact is measured.

    FAISS only picks the rows: their scores are recomputed from the candidate embeddings, so that a product's score
    is the same (the model's inner product) whichever index found it.
    """

    def __init__(self, index: Any, algorithm: str, params: dict[str, int], candidates: np.ndarray) -> None:
        self.index = index
        self.algorithm = algorithm
        self.params = params
        self.candidates = candidates
        if algorithm == "hnsw":
            index.hnsw.efSearch = params["hnsw_ef_search"]
        else:
            index.nprobe = params["ivf_nprobe"]

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> Hits:
        """Top-k of each query; asks FAISS for k plus the query's exclusions, then drops the excluded rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        fetch = min(self.index.ntotal, k + extra)
        _, found = self.index.search(queries, fetch)
        hits: Hits = []
        for i, rows in enumerate(found):
            rows = rows[rows >= 0]  # FAISS pads with -1 when it finds fewer than asked
            if exclude is not None and len(exclude[i]):
                rows = rows[~np.isin(rows, exclude[i])]
            scores = self.candidates[rows] @ queries[i]
            best = np.argsort(-scores, kind="stable")[:k]
            hits.append((scores[best], rows[best].astype(np.int64)))
        return hits


def build_index(candidates: np.ndarray, algorithm: str, params: dict[str, int]) -> CandidateIndex:
    """Build the index `algorithm` names over candidates [N, d] with IndexSpec-shaped `params`.

    IVF's `ivf_nlist` is lowered to the catalog size when the catalog is smaller (FAISS needs a point per list);
    the parameters actually used are in the returned index's `params`. Raises ValueError for an unknown algorithm.
    """
    candidates = np.ascontiguousarray(candidates, dtype=np.float32)
    if algorithm == "brute_force":
        return ExactIndex(candidates)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown retrieval_algorithm '{algorithm}'; expected one of {', '.join(ALGORITHMS)}")
    import faiss

    n, dim = candidates.shape
    if algorithm == "hnsw":
        used = {"hnsw_m": params["hnsw_m"], "hnsw_ef_search": params["hnsw_ef_search"]}
        # Inner product directly. The MIPS→L2 reduction (an extra coordinate sqrt(R² − ‖x‖²)) was measured too:
        # better at M=16, worse at the default M=32 (recall@100 0.96 vs 0.99 on clustered embeddings).
        index = faiss.IndexHNSWFlat(dim, used["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.add(candidates)
    else:
        used = {"ivf_nlist": max(1, min(params["ivf_nlist"], n)), "ivf_nprobe": params["ivf_nprobe"]}
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, used["ivf_nlist"], faiss.METRIC_INNER_PRODUCT)
        index.train(candidates)
        index.add(candidates)
    return FaissIndex(index, algorithm, used, candidates)


def save_index(index: CandidateIndex, folder: str | Path) -> dict[str, Any]:
    """Write an ANN index to `folder/index.faiss` (the exact index needs no file); returns its manifest entry."""
    entry: dict[str, Any] = {"algorithm": index.algorithm}
    if isinstance(index, FaissIndex):
        import faiss

        faiss.write_index(index.index, str(Path(folder) / INDEX_FILE))
        entry.update(index.params, file=INDEX_FILE)
    return entry


def load_index(entry: dict[str, Any], candidates: np.ndarray, folder: str | Path) -> CandidateIndex:
    """The index a manifest entry describes: exact over `candidates`, or the FAISS file beside it."""
    if entry["algorithm"] == "brute_force":
        return ExactIndex(candidates)
    import faiss

    index = faiss.read_index(str(Path(folder) / entry["file"]))
    params = {k: v for k, v in entry.items() if k not in ("algorithm", "file")}
    return FaissIndex(index, entry["algorithm"], params, candidates)


def recall_against_exact(approximate: Hits, exact: Hits) -> float:
    """Share of the exact top-k rows that the approximate search also returned, over all queries."""
    found = sum(len(np.intersect1d(a[1], e[1])) for a, e in zip(approximate, exact, strict=True))
    total = sum(len(e[1]) for e in exact)
    return found / total if total else 1.0
