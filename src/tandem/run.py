"""The engine's one entry for a run: an experiment spec in, a result out (metrics, history, artifacts)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tandem.data.prepare import Interactions
from tandem.evaluation.baseline_model import BaselineModel, prune
from tandem.evaluation.baselines import Baselines
from tandem.evaluation.ease_fit import fit_ease
from tandem.evaluation.evaluate import SplitPairs, baseline_metrics, evaluate_split, list_metrics
from tandem.evaluation.metrics import BASELINES
from tandem.export.artifacts import TrainedModel
from tandem.export.bundle import export_baseline_bundle, export_bundle
from tandem.features.pipeline import TowerFeatures
from tandem.models.two_tower import TwoTowerModel
from tandem.recommend.build import fit_two_stage
from tandem.recommend.two_stage import TwoStage
from tandem.spec import EvaluationSpec, ExperimentSpec
from tandem.training.dataset import EncodedData, encode
from tandem.training.distributed import world
from tandem.training.loop import Callback, train
from tandem.validation import check_data


@dataclass
class RunResult:
    """What a run produced: flat metrics, per-epoch history and weight statistics, and the trained model."""

    spec: ExperimentSpec
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    weight_stats: list[dict[str, Any]]
    data_report: dict[str, Any]
    trained: TrainedModel | None  # None for a baseline model, which has no towers
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: EncodedData | None = field(default=None, repr=False)  # what the model was trained on, for the bundle
    two_stage: TwoStage | None = field(default=None, repr=False)  # the second stage, when the spec asks for one
    baseline: BaselineModel | None = field(default=None, repr=False)  # a baseline model's lists

    def save(self, out: str | Path, *, models: bool = True) -> Path:
        """Write metrics.json, history.json, weight_stats.json, data_report.json, spec.yaml and, unless `models`
        is False (a study's trials), model/ (not for a baseline model) and bundle/."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.yaml").write_text(self.spec.to_yaml(), encoding="utf-8")
        for name, payload in (
            ("metrics", self.metrics),
            ("history", self.history),
            ("weight_stats", self.weight_stats),
            ("data_report", {**self.data_report, "notes": self.notes}),
        ):
            (out / f"{name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
        if not models:
            return out
        if self.baseline is not None and self.data is not None:
            export_baseline_bundle(self.spec, self.data, self.baseline, out / "bundle")
        elif self.trained is not None:
            self.trained.save(out / "model")
            if self.data is not None:
                export_bundle(self.trained, self.data, out / "bundle", self.two_stage)
        return out


def prepare(
    spec: ExperimentSpec, interactions: Interactions | None = None
) -> tuple[Interactions, TrainedModel, EncodedData]:
    """Check the spec and its data, fit features on the training split, encode, and build an untrained model."""
    interactions, buyer, product = check_data(spec, interactions)
    data = encode(interactions, buyer, product)
    return interactions, build_model(spec, buyer, product, data), data


def build_model(spec: ExperimentSpec, buyer: TowerFeatures, product: TowerFeatures, data: EncodedData) -> TrainedModel:
    """The untrained model of a spec on its fitted pipelines, seeded by `training.seed`, on the spec's device."""
    torch.manual_seed(spec.training.seed)
    model = TwoTowerModel(spec.model, buyer.inputs(), product.inputs(), sparse=spec.training.sparse_embeddings)
    model.to(spec.training.device)
    return TrainedModel(spec, model, buyer, product, data.catalog_frame)


def run(
    spec: ExperimentSpec,
    *,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    progress: bool = False,
) -> RunResult:
    """Train and evaluate one experiment.

    Raises SpecError (every problem with the spec or its data), DataError (an unreadable file). On the other
    ranks of a data-parallel run (`tandem.training.distributed`) the result holds the training only.
    """
    if spec.model.is_baseline:
        return run_baseline(spec)
    started = time.perf_counter()
    interactions, trained, data = prepare(spec)
    data = data.to(spec.training.device)
    history, weights = train(trained.model, data, spec, callbacks=callbacks, progress=progress)
    if world()[0]:  # another rank of a data-parallel run: rank 0 evaluates and writes
        return RunResult(
            spec, {}, history, weights, interactions.report, trained, seconds=time.perf_counter() - started
        )
    metrics, notes = final_metrics(trained.model, data, spec)
    two_stage = None
    if spec.recommend is not None:
        two_stage = fit_two_stage(spec, interactions, data)
        metrics = {**{f"retrieval_{k}" if _is_model_key(k) else k: v for k, v in metrics.items()}}
        metrics.update(two_stage_metrics(two_stage, data, spec.evaluation))
    return RunResult(
        spec=spec,
        metrics=metrics,
        history=history,
        weight_stats=weights,
        data_report=interactions.report,
        trained=trained,
        notes=notes,
        seconds=time.perf_counter() - started,
        data=data,
        two_stage=two_stage,
    )


def run_baseline(spec: ExperimentSpec) -> RunResult:
    """Fit and evaluate a baseline model (`model.type: buy_again | ease`): the engine's baseline lists on the
    training split, no torch training. Its own metrics are those of the lists it serves (for ease, with the kept
    table); the four baselines are reported beside it as for every model."""
    started = time.perf_counter()
    interactions, buyer, product = check_data(spec)
    data = encode(interactions, buyer, product)
    ev = spec.evaluation
    ease = None
    if spec.model.type == "ease" or ev.baseline:
        ease = fit_ease(data.history, data.train_counts, ev.ease_lambda, ev.ease_products)
    kept = prune(ease, spec.model.ease_neighbours) if spec.model.type == "ease" and ease is not None else None
    model = BaselineModel(spec.model.type, data.history, data.train_counts, kept)
    pairs = SplitPairs.of(data, data.test)
    buyers, list_of = np.unique(pairs.buyer, return_inverse=True)
    k = max(ev.ks)
    metrics = list_metrics(model.lists(buyers, k), model.lists(buyers, k, explore=True), list_of, pairs, ev, "")
    if ev.baseline:
        metrics.update(baseline_metrics(data, pairs, ev, baselines=Baselines(data.history, data.train_counts, ease)))
    return RunResult(
        spec=spec,
        metrics=metrics,
        history=[],
        weight_stats=[],
        data_report=interactions.report,
        trained=None,
        seconds=time.perf_counter() - started,
        data=data,
        baseline=model,
    )


def _is_model_key(key: str) -> bool:
    """Whether a metric is the first-stage model's own retrieval metric (not a baseline's, not a rating error)."""
    plain = key.split("_at_")[0]
    return not key.startswith(tuple(f"{b}_" for b in BASELINES)) and plain.endswith(
        ("recall", "ndcg", "coverage", "mrr")
    )


def two_stage_metrics(two_stage: TwoStage, data: EncodedData, evaluation: EvaluationSpec) -> dict[str, float]:
    """The final lists' recall and NDCG on the test split: all, repeat and explore."""
    pairs = SplitPairs.of(data, data.test)
    buyers, list_of = np.unique(pairs.buyer, return_inverse=True)
    k = max(evaluation.ks)
    full, explore = two_stage.lists(buyers, k), two_stage.lists(buyers, k, explore=True)
    return list_metrics(full, explore, list_of, pairs, evaluation, "")


def final_metrics(model: TwoTowerModel, data: EncodedData, spec: ExperimentSpec) -> tuple[dict[str, float], list[str]]:
    """Test-split retrieval metrics (all, repeat, explore, cold/warm; with the baselines), validation and test
    rating errors."""
    device = spec.training.device
    ev = spec.evaluation
    metrics = evaluate_split(
        model, data, data.test, ev, rating_prefix="test_", baseline=ev.baseline, breakdown=True, device=device
    )
    notes = []
    if model.spec.measures_ranking:
        if len(data.validation):
            val = evaluate_split(
                model, data, data.validation, ev, retrieval_prefix="val_", baseline=False, device=device
            )
            metrics.update({k: v for k, v in val.items() if k in ("rmse", "mae")})
        else:
            metrics["rmse"], metrics["mae"] = metrics["test_rmse"], metrics["test_mae"]
            notes.append("no validation split: rmse and mae are measured on the test split")
    return metrics, notes
