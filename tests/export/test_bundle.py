"""The bundle writer: the signatures each model type gets, the files, the manifest, and the ANN index entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tandem.evaluation.evaluate import embed
from tandem.features.pipeline import TowerFeatures
from tests.export.cases import MODEL_TYPES, Case


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "model_type, expected",
    [
        ("retrieval", ["serving_default"]),
        ("ranking", ["serve_ranking"]),
        ("multitask", ["serving_default", "serve_ranking"]),
    ],
)
def test_signatures_follow_the_model_type(cases: Callable[[str], Case], model_type: str, expected: list[str]) -> None:
    """Retrieval-only has only `serving_default`, ranking-only only `serve_ranking`, multitask both."""
    manifest = _manifest(cases(model_type).bundle)
    assert list(manifest["signatures"]) == expected
    assert manifest["model_type"] == model_type
    assert ("rating_head" in manifest["files"]) == ("serve_ranking" in expected)
    assert (manifest["index"] is not None) == ("serving_default" in expected)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_candidates_are_the_engine_catalog_embeddings(cases: Callable[[str], Case], model_type: str) -> None:
    """Every bundle, ranking-only included, holds the whole catalog's embeddings in the catalog's row order."""
    case = cases(model_type)
    data, model = case.result.data, case.result.trained.model
    candidates = np.load(case.bundle / "candidates.npy")
    np.testing.assert_allclose(candidates, embed(model.candidate_tower, data.catalog).numpy(), atol=1e-6)
    products = pd.read_parquet(case.bundle / "products.parquet")
    assert products["product_id"].tolist() == data.product_ids.tolist()
    assert products["train_count"].tolist() == data.train_counts.tolist()


def test_manifest_describes_requests_and_versions(cases: Callable[[str], Case]) -> None:
    """Request keys are the buyer features' source columns; the spec and versions are recorded."""
    case = cases("multitask")
    manifest = _manifest(case.bundle)
    assert manifest["buyer_columns"] == ["buyer", "ts"]
    assert manifest["id_features"] == ["buyer"]
    assert [i["name"] for i in manifest["query_inputs"]] == [
        "buyer",
        "ts",
        "history_product",
        "history_product_weights",
    ]
    assert manifest["num_products"] == len(case.result.data.product_ids)
    assert manifest["spec"] == case.spec.to_dict()
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["ranking"] == {"target": "rating", "target_transform": "none", "loss": "mse"}
    assert manifest["index"] == {"algorithm": "brute_force"}


def test_fitted_transforms_round_trip_through_the_bundle(cases: Callable[[str], Case]) -> None:
    """features.json rebuilds pipelines that encode raw rows exactly as the trained ones do."""
    case = cases("multitask")
    state = json.loads((case.bundle / "features.json").read_text(encoding="utf-8"))
    frame = case.interactions.frame.head(50)
    for side, fitted in (
        ("buyer", case.result.trained.buyer_features),
        ("product", case.result.trained.product_features),
    ):
        restored = TowerFeatures.from_state(state[side]).transform(frame)
        for name, values in fitted.transform(frame).items():
            np.testing.assert_array_equal(restored[name], values)


def test_average_query_is_the_training_rows_mean(cases: Callable[[str], Case]) -> None:
    """The cold-buyer ranking fallback is the mean query embedding over the training interactions."""
    case = cases("multitask")
    queries = embed(case.result.trained.model.query_tower, case.result.data.query_table).numpy()
    expected = queries[case.result.data.train.query.numpy()].mean(axis=0)
    np.testing.assert_allclose(np.load(case.bundle / "average_query.npy"), expected, atol=1e-6)


@pytest.mark.parametrize(
    "algorithm, params, expected",
    [
        ("hnsw", {"hnsw_m": 8, "hnsw_ef_search": 20}, {"hnsw_m": 8, "hnsw_ef_search": 20}),
        ("ivf", {"ivf_nlist": 1000, "ivf_nprobe": 3}, {"ivf_nlist": None, "ivf_nprobe": 3}),
    ],
)
def test_ann_bundles_carry_their_index_and_parameters(
    cases: Callable[[str], Case], tmp_path: Path, algorithm: str, params: dict, expected: dict
) -> None:
    """The FAISS index file is written with the spec's parameters (IVF lists capped at the catalog size)."""
    case = cases("multitask")
    index = case.spec.model.index.model_copy(update=params)
    folder = case.export_with(tmp_path / algorithm, retrieval_algorithm=algorithm, index=index)
    entry = _manifest(folder)["index"]
    assert entry["algorithm"] == algorithm and (folder / entry["file"]).is_file()
    expected = {k: (len(case.result.data.product_ids) if v is None else v) for k, v in expected.items()}
    assert {k: entry[k] for k in expected} == expected
    assert "faiss" in _manifest(folder)["versions"]


def test_export_leaves_the_trained_model_as_it_was(cases: Callable[[str], Case], tmp_path: Path) -> None:
    """Exporting works on a copy: the model's mode, device and weights are unchanged."""
    case = cases("multitask")
    model = case.result.trained.model
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    case.export_with(tmp_path / "again")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
