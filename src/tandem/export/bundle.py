"""Writing the serving bundle: everything `tandem serve` and `tandem recommend` need, and nothing of the training
stack. The format (layout, signatures, manifest) is :mod:`tandem.bundle_format`.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tandem.bundle_format import (
    FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    RANKING,
    RETRIEVAL,
    BaselineEntry,
    Manifest,
    RankingInfo,
    SecondStage,
    signatures,
)
from tandem.evaluation.baseline_model import BaselineModel
from tandem.evaluation.evaluate import embed
from tandem.export.artifacts import TrainedModel
from tandem.export.onnx_graphs import OPSET, export_query_tower, export_rating_head
from tandem.recommend.two_stage import FEATURES, TwoStage
from tandem.serving.index import build_index, save_index
from tandem.spec import ExperimentSpec
from tandem.training.dataset import EncodedData


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None  # e.g. tandem itself, when a standalone trainer module writes the bundle


def _versions(uses_faiss: bool) -> dict[str, Any]:
    versions = {
        "tandem": _package_version("tandem"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "onnx_opset": OPSET,
    }
    if uses_faiss:
        versions["faiss"] = _package_version("faiss-cpu")
    return versions


def _average_query(queries: torch.Tensor, data: EncodedData) -> np.ndarray:
    """Mean query embedding weighted by training rows (the average buyer as training saw them)."""
    weights = np.bincount(data.train.query.numpy(), minlength=len(queries)).astype(np.float64)
    mean = weights @ queries.double().numpy() / max(weights.sum(), 1.0)
    return mean.astype(np.float32)


def _write_tables(data: EncodedData, folder: Path) -> None:
    """products.parquet (the catalog's ids and training counts) and buyers.parquet (the buyer id of each code)."""
    pd.DataFrame({"product_id": data.product_ids, "train_count": data.train_counts.astype(np.int64)}).to_parquet(
        folder / FILES["products"], index=False
    )
    pd.DataFrame({"buyer_id": data.buyer_ids}).to_parquet(folder / FILES["buyers"], index=False)


def _write_manifest(manifest: Manifest, folder: Path) -> None:
    # The manifest goes last: a folder without one is an unfinished export, and the reader says so.
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _export_two_stage(two_stage: TwoStage, folder: Path) -> SecondStage:
    """The second stage; returns its manifest entry (its size counts the buyer table it reads)."""
    two_stage.save(folder / FILES["two_stage"])
    written = [folder / FILES["buyers"], *(folder / FILES["two_stage"]).iterdir()]
    return SecondStage(
        folder=FILES["two_stage"],
        buyers=two_stage.log.n_buyers,
        products=two_stage.log.n_products,
        orders=len(two_stage.log.buyer),
        neighbours=int(two_stage.neighbours.weights.nnz),
        features=list(FEATURES),
        bytes=sum(f.stat().st_size for f in written),
    )


def export_bundle(
    trained: TrainedModel, data: EncodedData, folder: str | Path, two_stage: TwoStage | None = None
) -> Path:
    """Write the serving bundle of a trained model; `data` is the encoded data it was trained on.

    `data` gives the catalog (its encoded rows, product ids and training counts) and the training query rows;
    `two_stage`, the fitted second stage, when the spec has one. The trained model is not changed (the export
    works on a CPU copy in eval mode). Returns the folder.
    """
    spec = trained.spec
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(trained.model).cpu().eval()
    cpu = {k: v.cpu() for k, v in data.catalog.items()}
    candidates = embed(model.candidate_tower, cpu).numpy().astype(np.float32)
    queries = embed(model.query_tower, {k: v.cpu() for k, v in data.query_table.items()})

    inputs = export_query_tower(model.query_tower, folder / FILES["query_tower"])
    sigs = signatures(spec.model, two_stage is not None)
    files = {k: FILES[k] for k in ("query_tower", "candidates", "products", "features", "average_query")}
    if RANKING in sigs:
        export_rating_head(model, folder / FILES["rating_head"])
        files["rating_head"] = FILES["rating_head"]
    np.save(folder / FILES["candidates"], candidates)
    np.save(folder / FILES["average_query"], _average_query(queries, data))
    _write_tables(data, folder)
    features = {"buyer": trained.buyer_features.get_state(), "product": trained.product_features.get_state()}
    (folder / FILES["features"]).write_text(json.dumps(features), encoding="utf-8")

    index_entry = None
    if RETRIEVAL in sigs:
        index = build_index(candidates, spec.model.retrieval_algorithm, spec.model.index.model_dump())
        index_entry = save_index(index, folder)
    second_stage = _export_two_stage(two_stage, folder) if two_stage is not None else None
    buyer_columns = set(trained.buyer_features.columns.values())
    if second_stage is not None:
        buyer_columns.add(spec.data.buyer_id)  # the second stage finds its buyers by id
        files["buyers"] = FILES["buyers"]
    manifest = Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        name=spec.name,
        model_type=spec.model.type,
        signatures=sigs,
        buyer_columns=sorted(buyer_columns),
        id_features=[f.feature_name for f in spec.features.buyer if f.transform == "id"],
        query_inputs=inputs,
        embedding_dim=int(candidates.shape[1]),
        num_products=len(candidates),
        candidate_pool=spec.model.index.candidate_pool,
        ranking=(
            RankingInfo(
                target=spec.features.target,
                target_transform=spec.features.target_transform,
                loss=spec.model.ranking_loss,
            )
            if RANKING in sigs
            else None
        ),
        index=index_entry,
        second_stage=second_stage,
        files=files,
        spec=spec.to_dict(),
        versions=_versions(index_entry is not None and index_entry["algorithm"] != "brute_force"),
        created=_now(),
    )
    _write_manifest(manifest, folder)
    return folder


def export_baseline_bundle(spec: ExperimentSpec, data: EncodedData, model: BaselineModel, folder: str | Path) -> Path:
    """Write the bundle of a baseline model (`model.type: buy_again | ease`): its arrays, the catalog and buyer
    tables, no towers. Returns the folder."""
    folder = Path(folder)
    (folder / FILES["baseline"]).mkdir(parents=True, exist_ok=True)
    _write_tables(data, folder)
    written = [model.save(folder / FILES["baseline"]), folder / FILES["buyers"]]
    ease = model.ease
    entry = BaselineEntry(
        folder=FILES["baseline"],
        buyers=model.history.n_buyers,
        pairs=len(model.history.product),
        ease_products=len(ease.products) if ease is not None else 0,
        ease_weights=int(np.count_nonzero(ease.weights)) if ease is not None else 0,
        bytes=sum(f.stat().st_size for f in written),
    )
    manifest = Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        name=spec.name,
        model_type=spec.model.type,
        signatures=signatures(spec.model),
        buyer_columns=[spec.data.buyer_id],
        id_features=[],
        query_inputs=[],
        embedding_dim=0,
        num_products=len(data.product_ids),
        candidate_pool=spec.model.index.candidate_pool,
        ranking=None,
        index=None,
        baseline=entry,
        files={k: FILES[k] for k in ("products", "buyers", "baseline")},
        spec=spec.to_dict(),
        versions=_versions(False),
        created=_now(),
    )
    _write_manifest(manifest, folder)
    return folder
