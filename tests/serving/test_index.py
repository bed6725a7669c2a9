"""Candidate indexes: exact top-K against a naive argsort, exclusions, and FAISS recall against exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tandem.serving.index import (
    ExactIndex,
    FaissIndex,
    build_index,
    load_index,
    recall_against_exact,
    save_index,
    top_rows,
)


def _clustered(n: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Embeddings around shared Gaussian cluster centres, like the buyers and products of a trained model (every
    call draws from the same centres; uniform noise would be an unrealistic worst case for ANN)."""
    centres = np.random.default_rng(1234).normal(size=(clusters, dim))
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


def test_top_rows_equals_a_full_argsort() -> None:
    """The k best columns per row, best first, for k below and at the width."""
    scores = np.random.default_rng(1).normal(size=(5, 40)).astype(np.float32)
    for k in (1, 7, 40, 100):
        np.testing.assert_array_equal(top_rows(scores, k), np.argsort(-scores, axis=1)[:, : min(k, 40)])


def test_exact_index_matches_naive_scores_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked scoring (a block of two queries here) gives the naive top-k and its scores."""
    monkeypatch.setattr("tandem.serving.index.EXACT_BLOCK_ELEMENTS", 2 * 300)
    candidates, queries = _clustered(300, 8), _clustered(7, 8, seed=1)
    hits = ExactIndex(candidates).search(queries, 12)
    scores = queries @ candidates.T
    for i, (s, rows) in enumerate(hits):
        np.testing.assert_array_equal(rows, np.argsort(-scores[i])[:12])
        np.testing.assert_allclose(s, scores[i, rows], rtol=1e-6)


@pytest.mark.parametrize("algorithm", ["brute_force", "hnsw", "ivf"])
def test_excluded_rows_never_come_back(algorithm: str) -> None:
    """Each query's exclusions leave its results, which stay k long while the catalog allows."""
    candidates = _clustered(500, 16)
    index = build_index(candidates, algorithm, {"hnsw_m": 16, "hnsw_ef_search": 64, "ivf_nlist": 8, "ivf_nprobe": 8})
    queries = _clustered(4, 16, seed=2)
    plain = index.search(queries, 10)
    exclude = [rows[:5] for _, rows in plain]
    for (_, rows), ex in zip(index.search(queries, 10, exclude), exclude, strict=True):
        assert len(rows) == 10 and not set(rows) & set(ex)


def test_exact_index_returns_fewer_when_exclusions_leave_fewer() -> None:
    """k above what is left: every remaining candidate, and no excluded one."""
    hits = ExactIndex(_clustered(6, 4)).search(_clustered(1, 4, seed=3), 10, [np.array([0, 5])])
    assert sorted(hits[0][1].tolist()) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "algorithm, params, floor",
    [
        ("hnsw", {"hnsw_m": 32, "hnsw_ef_search": 128}, 0.95),
        ("ivf", {"ivf_nlist": 64, "ivf_nprobe": 8}, 0.9),
    ],
)
def test_faiss_recall_against_exact_is_measured(algorithm: str, params: dict, floor: float) -> None:
    """Recall@100 of the ANN index against exact top-100 on 20,000 clustered candidates (printed with -s)."""
    candidates, queries = _clustered(20_000), _clustered(200, seed=5)
    exact = ExactIndex(candidates).search(queries, 100)
    index = build_index(candidates, algorithm, params)
    recall = recall_against_exact(index.search(queries, 100), exact)
    print(f"{algorithm} {params}: recall@100 vs exact = {recall:.4f}")
    assert recall >= floor
    assert all(np.all(np.diff(s) <= 1e-6) for s, _ in index.search(queries, 100))  # best first


def test_ann_index_round_trips_through_its_file(tmp_path: Path) -> None:
    """save_index writes the FAISS file and the parameters; load_index answers the same searches."""
    candidates = _clustered(400, 8)
    index = build_index(candidates, "hnsw", {"hnsw_m": 8, "hnsw_ef_search": 32})
    entry = save_index(index, tmp_path)
    assert entry == {"algorithm": "hnsw", "hnsw_m": 8, "hnsw_ef_search": 32, "file": "index.faiss"}
    loaded = load_index(entry, candidates, tmp_path)
    assert isinstance(loaded, FaissIndex) and loaded.index.hnsw.efSearch == 32
    queries = _clustered(5, 8, seed=4)
    for a, b in zip(index.search(queries, 5), loaded.search(queries, 5), strict=True):
        np.testing.assert_array_equal(a[1], b[1])


def test_unknown_algorithm_is_refused() -> None:
    """The message lists the algorithms there are."""
    with pytest.raises(ValueError, match="expected one of brute_force, hnsw, ivf"):
        build_index(_clustered(10, 4), "scann", {})
