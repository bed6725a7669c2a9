"""The query tower and the rating head as ONNX graphs, so that the server runs them with ONNX Runtime, without torch.

The graphs are traced from the training modules themselves (`Tower.forward`, `TwoTowerModel.predict_rating`), so
serving computes what training computed. Two choices need saying:

- The TorchScript exporter (`dynamo=False`): on these 2-core machines it writes a tower in about 0.1 s, where the
  `torch.export` path takes 3–8 s per graph, and every `tandem train` writes two graphs. torch is pinned (2.13), which
  still ships it; the bundle parity tests catch any drift when the pin moves.
- `nn.EmbeddingBag` is swapped for `_MeanBag` in a copy of the tower, because that exporter refuses `padding_idx`.
  `_MeanBag` computes the same mean over non-padding tokens (zeros for an all-padding row) from the same weights.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tandem.features.pipeline import InputSpec
from tandem.models.towers import Tower
from tandem.models.two_tower import TwoTowerModel

OPSET = 17
QUERY_OUTPUT = "query_embedding"
RATING_INPUTS = ("query_embedding", "candidate_embedding")
RATING_OUTPUT = "prediction"
INPUT_DTYPES = {"index": "int64", "bag": "int64", "weighted_bag": "int64", "dense": "float32"}


class _MeanBag(nn.Module):
    """`EmbeddingBag(mode="mean", padding_idx=0)` as gather, mask and sum: tokens [n, L] → [n, dim]."""

    def __init__(self, weight: nn.Parameter) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).unsqueeze(-1).to(self.weight.dtype)
        summed = (nn.functional.embedding(tokens, self.weight) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0)


class _PositionalTower(nn.Module):
    """A tower called with positional tensors in `tower.inputs` order (an ONNX graph takes a list, not a dict)."""

    def __init__(self, tower: Tower) -> None:
        super().__init__()
        self.tower = tower
        self.names = tower.tensor_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.tower(dict(zip(self.names, tensors, strict=True)))


class _RatingHead(nn.Module):
    """The model's rating head with its output transform (sigmoid for 'bce'): [n, d], [n, d] → [n]."""

    def __init__(self, model: TwoTowerModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.model.predict_rating(query, candidate)


def _exportable(tower: Tower) -> Tower:
    """A CPU copy of `tower` in eval mode with every EmbeddingBag replaced by an equivalent `_MeanBag`."""
    clone = copy.deepcopy(tower).cpu().eval()
    for name, module in list(clone.embeddings.items()):
        if isinstance(module, nn.EmbeddingBag):
            clone.embeddings[name] = _MeanBag(module.weight)
    return clone


def _examples(spec: InputSpec) -> list[torch.Tensor]:
    if spec.output == "index":
        return [torch.zeros(2, dtype=torch.int64)]
    if spec.output == "bag":
        return [torch.ones(2, 3, dtype=torch.int64)]
    if spec.output == "weighted_bag":
        return [torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.float32)]
    return [torch.zeros(2, spec.size, dtype=torch.float32)]


def _descriptions(spec: InputSpec) -> list[dict[str, Any]]:
    """The graph inputs of one tower input, for the manifest: a weighted bag has its rows and their weights."""
    first = {"name": spec.name, "kind": spec.output, "dtype": INPUT_DTYPES[spec.output], "size": spec.size}
    if spec.output != "weighted_bag":
        return [first]
    return [first, {"name": spec.tensors[1], "kind": "bag_weights", "dtype": "float32", "size": spec.size}]


def export_graph(module: nn.Module, args: tuple[torch.Tensor, ...], target: Path | io.BytesIO, **kwargs: Any) -> None:
    """Write `module` traced on `args` as an ONNX graph to a file or a buffer."""
    # The exporter warns that it is the legacy path (see the module docstring); tests turn warnings into errors.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        where = target if isinstance(target, io.BytesIO) else str(target)
        torch.onnx.export(module, args, where, dynamo=False, opset_version=OPSET, **kwargs)


def export_query_tower(tower: Tower, path: str | Path) -> list[dict[str, Any]]:
    """Write `tower` as an ONNX graph whose inputs are the encoded buyer features, named by feature.

    Inputs: "index" int64 [n], "bag" int64 [n, L], "dense" float32 [n, width], and for a "weighted_bag" its rows
    int64 [n, L] and their weights float32 [n, L] (name + "_weights"); output `query_embedding` [n, d].
    Returns one description per graph input (name, kind, dtype, size) for the bundle manifest.
    """
    specs = list(tower.inputs)
    names = tower.tensor_names
    axes: dict[str, dict[int, str]] = {}
    for s in specs:
        for name in s.tensors:
            axes[name] = {0: "n", 1: f"{s.name}_length"} if s.output in ("bag", "weighted_bag") else {0: "n"}
    axes[QUERY_OUTPUT] = {0: "n"}
    export_graph(
        _PositionalTower(_exportable(tower)),
        tuple(t for s in specs for t in _examples(s)),
        Path(path),
        input_names=names,
        output_names=[QUERY_OUTPUT],
        dynamic_axes=axes,
    )
    return [d for s in specs for d in _descriptions(s)]


def export_rating_head(model: TwoTowerModel, path: str | Path) -> None:
    """Write the rating head as an ONNX graph: `query_embedding`, `candidate_embedding` [n, d] → `prediction` [n].

    Raises ValueError when the model has no rating head (a retrieval model).
    """
    if model.rating_head is None:
        raise ValueError(f"a {model.spec.type} model has no rating head to export")
    clone = copy.deepcopy(model).cpu().eval()
    dim = clone.query_tower.output_dim
    example = (torch.zeros(2, dim), torch.zeros(2, dim))
    export_graph(
        _RatingHead(clone),
        example,
        Path(path),
        input_names=list(RATING_INPUTS),
        output_names=[RATING_OUTPUT],
        dynamic_axes={RATING_INPUTS[0]: {0: "n"}, RATING_INPUTS[1]: {0: "n"}, RATING_OUTPUT: {0: "n"}},
    )
