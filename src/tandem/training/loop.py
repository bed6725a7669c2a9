"""The training loop: batches in distinct-row form, the optimiser step, per-epoch history, weight
statistics, validation metrics, early stopping and progress callbacks."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from tandem.evaluation.evaluate import evaluate_split
from tandem.models.tasks import catalog_candidates
from tandem.models.two_tower import Batch, TwoTowerModel
from tandem.spec import ExperimentSpec
from tandem.training.dataset import EncodedData, SplitRows
from tandem.training.distributed import from_rank_zero, global_candidates, shard, sum_gradients, sum_values, world
from tandem.training.optim import CosineSchedule, make_optimizers
from tandem.training.stats import weight_statistics


class Callback(Protocol):
    """Hooks a caller (the CLI, the platform's worker) uses to watch a run; raising from one stops it."""

    def on_step(self, epoch: int, step: int, steps: int) -> None: ...

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None: ...


def make_batch(
    data: EncodedData,
    rows: SplitRows,
    idx: torch.Tensor,
    log_q: torch.Tensor | None,
    catalog: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Batch:
    """Gather a batch's rows and fold them into distinct queries and products.

    With history bags that leave targets out, the batch also carries each row's own product in those bags.
    `catalog` maps the batch's products to a catalog-wide candidate set (see `catalog_candidates`).
    """
    device = next(iter(data.catalog.values())).device
    unique_q, q_index = torch.unique(rows.query[idx], return_inverse=True)
    unique_q = unique_q.to(device)
    if catalog is not None:
        unique_c, c_index = catalog(rows.product[idx])
        c_counts = torch.ones(len(unique_c), dtype=torch.int64)
    else:
        unique_c, c_index, c_counts = torch.unique(rows.product[idx], return_inverse=True, return_counts=True)
    unique_c = unique_c.to(device)
    return Batch(
        candidate_rows=unique_c,
        query_inputs={k: v[unique_q] for k, v in data.query_table.items()},
        query_index=q_index.to(device),
        candidate_inputs={k: v[unique_c] for k, v in data.catalog.items()},
        candidate_index=c_index.to(device),
        candidate_counts=c_counts.to(device),
        candidate_log_q=log_q[unique_c] if log_q is not None else None,
        labels=rows.labels[idx].to(device) if rows.labels is not None else None,
        leave_out={name: (r[idx].to(device), w[idx].to(device)) for name, (r, w) in rows.own.items()} or None,
    )


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _deterministic_kernels(on: bool) -> None:
    """`torch.use_deterministic_algorithms` without the import of torch._inductor it makes (which loads
    torch._dynamo: about 1 s of a small run's start-up). The inductor flag it also sets is for compiled graphs, and
    training runs eagerly."""
    torch._C._set_deterministic_algorithms(on)


def train(
    model: TwoTowerModel,
    data: EncodedData,
    spec: ExperimentSpec,
    *,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    progress: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train `model` in place; returns (history, weight statistics), one entry per epoch."""
    t = spec.training
    device = torch.device(t.device)
    # With more than one thread, CPU backward passes of indexing ops (index_put with accumulate: gathered
    # embeddings, scores of repeated candidates) add in an order that varies between runs, and a spec and seed
    # gave other losses (1e-9 at epoch 1) and other metrics. Deterministic kernels make CPU runs identical.
    _deterministic_kernels(device.type == "cpu")
    rank, ranks = world()
    if rank:
        progress, callbacks = False, ()  # rank 0 reports for all
    generator = torch.Generator().manual_seed(t.seed)
    optimizers = make_optimizers(model, t)
    rows = data.train
    n, bs = len(rows), t.batch_size
    steps = math.ceil(n / bs)
    total_steps = steps * t.epochs
    schedulers = [CosineSchedule(o, total_steps) for o in optimizers] if t.lr_schedule == "cosine" else []
    log_q = data.log_q.to(device) if spec.model.logq_correction else None
    m = spec.model
    catalog = (
        partial(
            catalog_candidates,
            n_catalog=len(data.product_ids),
            max_products=m.catalog_softmax_max_products,
            sampled=m.sampled_negatives,
            generator=torch.Generator().manual_seed(t.seed + 1),  # apart from the shuffle's, which stays as it was
        )
        if m.retrieval_negatives == "catalog"
        else None
    )
    gather = partial(global_candidates, add_counts=catalog is None) if ranks > 1 else None
    history: list[dict[str, Any]] = []
    weights: list[dict[str, Any]] = []
    stop = spec.training.early_stopping
    best_value, best_state, bad_epochs = None, None, 0
    bar = tqdm(total=total_steps, desc="training", unit="step", disable=not progress, leave=False)
    model.train()
    for epoch in range(1, t.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        sums: dict[str, float] = {}
        for step in range(steps):
            idx = order[step * bs : (step + 1) * bs]
            own = shard(idx) if ranks > 1 else idx
            batch = make_batch(data, rows, own, log_q, catalog)
            batch.share, batch.gather_candidates = len(own) / len(idx), gather
            loss, parts = model.compute_loss(batch)
            for o in optimizers:
                o.zero_grad()
            loss.backward()
            if ranks > 1:
                sum_gradients(model)
                parts = sum_values(parts)
            for o in optimizers:
                o.step()
            for s in schedulers:
                s.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{float(parts['loss']):.4g}")
            for cb in callbacks:
                cb.on_step(epoch, step + 1, steps)
        record: dict[str, Any] = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}}
        if len(data.validation) and rank == 0:
            record.update(
                evaluate_split(
                    model,
                    data,
                    data.validation,
                    spec.evaluation,
                    retrieval_prefix="val_",
                    rating_prefix="val_",
                    baseline=False,
                    device=t.device,
                )
            )
        record["seconds"] = time.perf_counter() - started
        if ranks > 1:  # rank 0's validation metrics decide early stopping everywhere
            record = from_rank_zero(record)
        history.append(record)
        stats = {"epoch": epoch, **{name: weight_statistics(part) for name, part in model.tower_groups().items()}}
        weights.append(stats)
        for cb in callbacks:
            cb.on_epoch_end(epoch, record, stats)
        if stop is not None:
            value = record[stop.metric]  # the spec's rules guarantee the metric is measured
            if _improved(value, best_value, stop.mode):
                best_value, best_state, bad_epochs = value, copy.deepcopy(model.state_dict()), 0
            else:
                bad_epochs += 1
                if bad_epochs >= stop.patience:
                    record["early_stopped"] = True
                    break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history, weights
