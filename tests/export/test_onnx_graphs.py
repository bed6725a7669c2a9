"""The ONNX graphs compute what the torch modules compute, for every kind of tower input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from tandem.evaluation.evaluate import embed
from tandem.export.onnx_graphs import _MeanBag, export_query_tower, export_rating_head
from tandem.features.pipeline import InputSpec
from tandem.models.towers import Tower
from tests.export.cases import Case


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_mean_bag_equals_embedding_bag_with_padding() -> None:
    """The exportable bag is the mean over non-padding tokens, zeros for a row of padding only."""
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(20, 6, mode="mean", padding_idx=0)
    tokens = torch.tensor([[3, 0, 5, 5], [0, 0, 0, 0], [1, 2, 3, 4], [7, 0, 0, 0]])
    expected = bag(tokens)
    assert torch.allclose(_MeanBag(bag.weight)(tokens), expected, atol=1e-7)
    assert torch.equal(expected[1], torch.zeros(6))


def test_query_tower_graph_matches_the_tower_on_every_input_kind(tmp_path: Path) -> None:
    """An index, a token bag (with a different length than at export) and a dense input, normalised output."""
    torch.manual_seed(1)
    inputs = [InputSpec("id", "index", 50, 8), InputSpec("words", "bag", 30, 4), InputSpec("age", "dense", 2, 0)]
    tower = Tower(inputs, [16, 8], activation="gelu", normalize=True).eval()
    described = export_query_tower(tower, tmp_path / "tower.onnx")
    assert [d["name"] for d in described] == ["id", "words", "age"]
    assert [d["dtype"] for d in described] == ["int64", "int64", "float32"]
    feeds = {
        "id": np.array([0, 3, 49, 7, 7]),
        "words": np.array([[1, 2, 0, 0, 0], [0, 0, 0, 0, 0], [5, 5, 5, 6, 29], [1, 0, 0, 0, 0], [2, 3, 4, 5, 6]]),
        "age": np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32),
    }
    got = _session(tmp_path / "tower.onnx").run(None, feeds)[0]
    expected = tower({k: torch.from_numpy(v) for k, v in feeds.items()}).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("head_input, loss", [("concat", "mse"), ("concat_product", "bce")])
def test_rating_head_graph_matches_predict_rating(
    cases: Callable[[str], Case], tmp_path: Path, head_input: str, loss: str
) -> None:
    """The head graph includes the head's input layout and its output transform (sigmoid for 'bce')."""
    from tandem.models.two_tower import TwoTowerModel

    case = cases("multitask")
    spec = case.spec.model.model_copy(update={"rating_head_input": head_input, "ranking_loss": loss})
    features = case.result.trained
    torch.manual_seed(2)
    model = TwoTowerModel(spec, features.buyer_features.inputs(), features.product_features.inputs()).eval()
    export_rating_head(model, tmp_path / "head.onnx")
    q, c = torch.randn(7, 8), torch.randn(7, 8)
    got = _session(tmp_path / "head.onnx").run(None, {"query_embedding": q.numpy(), "candidate_embedding": c.numpy()})
    np.testing.assert_allclose(got[0], model.predict_rating(q, c).detach().numpy(), atol=1e-6)


def test_exporting_a_retrieval_model_head_is_refused(cases: Callable[[str], Case], tmp_path: Path) -> None:
    """A retrieval model has no rating head, and the error says so."""
    with pytest.raises(ValueError, match="retrieval model has no rating head"):
        export_rating_head(cases("retrieval").result.trained.model, tmp_path / "head.onnx")


def test_trained_query_tower_graph_matches_engine_embeddings(cases: Callable[[str], Case]) -> None:
    """The bundle's tower graph on the engine's encoded query table gives the engine's query embeddings."""
    case = cases("multitask")
    data, model = case.result.data, case.result.trained.model
    expected = embed(model.eval().query_tower, data.query_table).numpy()
    feeds = {k: v.numpy() for k, v in data.query_table.items()}
    got = _session(case.bundle / "query_tower.onnx").run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
