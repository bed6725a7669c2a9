"""The training loop on small synthetic data: reproducibility, history, early stopping, weight statistics."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch

from tandem.models.tasks import catalog_candidates
from tandem.run import prepare, run
from tandem.spec import load_spec
from tandem.training.loop import make_batch, train


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


class Recorder:
    """A callback that keeps every step call and a copy of the weights after each epoch."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.steps: list[tuple[int, int, int]] = []
        self.epochs: list[int] = []
        self.states: list[dict[str, torch.Tensor]] = []

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        self.steps.append((epoch, step, steps))

    def on_epoch_end(self, epoch: int, record: dict, weights: dict) -> None:
        self.epochs.append(epoch)
        self.states.append(copy.deepcopy(self.model.state_dict()))


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_metrics_and_history(synthetic_spec_path):
    """Two runs of one spec give exactly the same metrics, history and weight statistics."""
    spec = load_spec(synthetic_spec_path)
    first, second = run(spec), run(spec)
    assert first.metrics == second.metrics
    assert _without_seconds(first.history) == _without_seconds(second.history)
    assert first.weight_stats == second.weight_stats


def test_another_seed_gives_another_model(synthetic_spec_path):
    """Changing training.seed changes the trained model's metrics."""
    first = run(load_spec(synthetic_spec_path))
    second = run(load_spec(synthetic_spec_path, ["training.seed=4"]))
    assert first.metrics != second.metrics


def test_history_has_one_record_per_epoch_with_losses_and_validation_metrics(synthetic_spec_path):
    """Each epoch records its mean task losses and the validation metrics."""
    result = run(load_spec(synthetic_spec_path))
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for record in result.history:
        assert {"loss", "retrieval_loss", "ranking_loss", "val_recall_at_10", "val_rmse", "seconds"} <= set(record)
        assert record["loss"] == pytest.approx(record["retrieval_loss"] + record["ranking_loss"], rel=1e-5)


def test_training_lowers_the_training_loss(synthetic_spec_path):
    """On learnable data the mean training loss of the last epoch is below that of the first."""
    history = run(load_spec(synthetic_spec_path, ["training.epochs=4"])).history
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["ranking_loss"] < history[0]["ranking_loss"]


def test_callbacks_see_every_step_and_every_epoch(synthetic_spec_path):
    """Callbacks get on_step once per batch with the step count, and on_epoch_end once per epoch."""
    spec = load_spec(synthetic_spec_path, ["training.epochs=2", "training.batch_size=100"])
    _, trained, data = prepare(spec)
    recorder = Recorder(trained.model)
    train(trained.model, data, spec, callbacks=[recorder])
    steps = -(-len(data.train) // 100)
    assert recorder.steps == [(e, s, steps) for e in (1, 2) for s in range(1, steps + 1)]
    assert recorder.epochs == [1, 2]


def _naive_stop(values: list[float], patience: int, mode: str) -> tuple[int, int]:
    """(epochs run, best epoch) under 'stop after `patience` epochs without a strict improvement'."""
    best_epoch, best, bad = 0, None, 0
    for epoch, value in enumerate(values, start=1):
        if best is None or (value > best if mode == "max" else value < best):
            best_epoch, best, bad = epoch, value, 0
        else:
            bad += 1
            if bad >= patience:
                return epoch, best_epoch
    return len(values), best_epoch


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(synthetic_spec_path):
    """Training stops once the metric has not improved for `patience` epochs, and keeps the best epoch's weights."""
    spec = load_spec(
        synthetic_spec_path,
        ["training.epochs=8", "training.early_stopping={metric: val_recall_at_10, mode: max, patience: 1}"],
    )
    _, trained, data = prepare(spec)
    recorder = Recorder(trained.model)

    history, _ = train(trained.model, data, spec, callbacks=[recorder])

    ran, best_epoch = _naive_stop([r["val_recall_at_10"] for r in history], patience=1, mode="max")
    assert len(history) == ran < 8
    assert history[-1].get("early_stopped") is True
    assert _same_state(trained.model.state_dict(), recorder.states[best_epoch - 1])
    assert not _same_state(trained.model.state_dict(), recorder.states[-1])


def test_early_stopping_without_a_stop_keeps_the_best_weights(synthetic_spec_path):
    """With a patience longer than the run, training runs every epoch and still ends on the best epoch's weights."""
    spec = load_spec(
        synthetic_spec_path,
        ["training.epochs=4", "training.early_stopping={metric: val_rmse, mode: min, patience: 10}"],
    )
    _, trained, data = prepare(spec)
    recorder = Recorder(trained.model)
    history, _ = train(trained.model, data, spec, callbacks=[recorder])
    values = [r["val_rmse"] for r in history]
    assert len(history) == 4
    assert "early_stopped" not in history[-1]
    assert _same_state(trained.model.state_dict(), recorder.states[int(np.argmin(values))])


def test_weight_statistics_summarise_each_part_per_epoch_with_a_histogram(synthetic_spec_path):
    """Each epoch has statistics of the query tower, candidate tower and rating head, matching the final weights."""
    result = run(load_spec(synthetic_spec_path))
    assert [w["epoch"] for w in result.weight_stats] == [1, 2, 3]
    model = result.trained.model
    parts = {
        "query_tower": model.query_tower,
        "candidate_tower": model.candidate_tower,
        "rating_head": model.rating_head,
    }
    for stats in result.weight_stats:
        assert set(stats) == {"epoch", *parts}
        for name, part in parts.items():
            s = stats[name]
            assert s["count"] == sum(p.numel() for p in part.parameters())
            assert sum(s["histogram"]["counts"]) == s["count"]
            assert len(s["histogram"]["edges"]) == len(s["histogram"]["counts"]) + 1
            assert s["histogram"]["edges"][0] == pytest.approx(s["min"])
            assert s["histogram"]["edges"][-1] == pytest.approx(s["max"])
    last = result.weight_stats[-1]
    for name, part in parts.items():
        values = [float(x) for p in part.parameters() for x in p.detach().reshape(-1)]
        mean = sum(values) / len(values)
        assert last[name]["mean"] == pytest.approx(mean, rel=1e-4, abs=1e-6)
        assert last[name]["std"] == pytest.approx((sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, rel=1e-4)
        assert (last[name]["min"], last[name]["max"]) == (min(values), max(values))


def test_weight_statistics_change_between_epochs(synthetic_spec_path):
    """Training moves the weights, so consecutive epochs' statistics differ."""
    stats = run(load_spec(synthetic_spec_path)).weight_stats
    assert stats[0]["query_tower"] != stats[1]["query_tower"]


def test_make_batch_folds_rows_into_distinct_queries_and_products(synthetic_spec_path):
    """A batch's distinct inputs, indexes and counts rebuild each row's own query and product."""
    spec = load_spec(synthetic_spec_path)
    _, _, data = prepare(spec)
    idx = torch.arange(0, 60)
    batch = make_batch(data, data.train, idx, data.log_q)
    rows_q = data.train.query[idx]
    rows_p = data.train.product[idx]
    for name, table in data.query_table.items():
        torch.testing.assert_close(batch.query_inputs[name][batch.query_index], table[rows_q])
    for name, table in data.catalog.items():
        torch.testing.assert_close(batch.candidate_inputs[name][batch.candidate_index], table[rows_p])
    counts = {}
    for p in rows_p.tolist():
        counts[p] = counts.get(p, 0) + 1
    assert sorted(batch.candidate_counts.tolist()) == sorted(counts.values())
    assert len(batch.query_inputs["buyer"]) == len(set(rows_q.tolist()))
    torch.testing.assert_close(batch.labels, data.train.labels[idx])


def test_log_q_is_the_log_share_of_each_product_in_training(synthetic_spec_path):
    """log_q is log(training rows of the product / training rows), products never trained on counting once."""
    _, _, data = prepare(load_spec(synthetic_spec_path))
    counts = [0] * len(data.product_ids)
    for p in data.train.product.tolist():
        counts[p] += 1
    counts = [max(c, 1) for c in counts]
    expected = [np.log(c / sum(counts)) for c in counts]
    np.testing.assert_allclose(data.log_q.numpy(), expected, rtol=1e-6)


# torch's Adagrad builds sparse tensors without saying whether to check their invariants, and torch 2.13 warns
# about that on every sparse step (a torch-internal warning, not ours); only that warning is let through here.
SPARSE_ADAGRAD_WARNING = pytest.mark.filterwarnings(
    "ignore:Sparse invariant checks are implicitly disabled:UserWarning"
)


@pytest.mark.parametrize("optimizer", [pytest.param("adagrad", marks=SPARSE_ADAGRAD_WARNING), "sgd", "adam"])
def test_sparse_embeddings_train_with_every_optimizer(synthetic_spec_path, optimizer):
    """With sparse embedding gradients every optimizer updates the id tables and keeps the weights finite."""
    spec = load_spec(
        synthetic_spec_path, ["training.sparse_embeddings=true", f"training.optimizer={optimizer}", "training.epochs=1"]
    )
    _, trained, data = prepare(spec)
    before = trained.model.query_tower.embeddings["buyer"].weight.detach().clone()
    train(trained.model, data, spec)
    after = trained.model.query_tower.embeddings["buyer"].weight.detach()
    assert trained.model.query_tower.embeddings["buyer"].sparse
    assert not torch.equal(before, after)
    assert all(torch.isfinite(p).all() for p in trained.model.parameters())


HISTORY = (
    "features.buyer=[{column: buyer, transform: id, embedding_dim: 8},"
    " {column: product, transform: history, max_items: 4}]"
)


def test_history_rows_are_their_own_queries_without_their_own_product(synthetic_spec_path):
    """Each training row is embedded from its buyer's bag less the row's own product, as if that entry were gone."""
    _, trained, data = prepare(load_spec(synthetic_spec_path, [HISTORY]))
    idx = torch.arange(0, 200)
    batch = make_batch(data, data.train, idx, None)
    own_rows, own_weights = batch.leave_out["history_product"]
    product_rows = trained.product_features.transform(data.catalog_frame)["product"]
    assert own_rows.tolist() == product_rows[data.train.product[idx].numpy()].tolist()
    per_row = {k: v[batch.query_index] for k, v in batch.query_inputs.items()}
    is_own = per_row["history_product"] == own_rows.unsqueeze(1)
    assert 0 < is_own.any(1).sum() < 200  # some rows' products are among their buyer's 4 heaviest, some not
    torch.testing.assert_close(per_row["history_product_weights"][is_own], own_weights[is_own.any(1)])
    per_row["history_product_weights"] = per_row["history_product_weights"].masked_fill(is_own, 0.0)
    tower = trained.model.query_tower
    got = tower(batch.query_inputs, batch.query_index, batch.leave_out)
    torch.testing.assert_close(got, tower(per_row))


def test_history_kept_in_training_when_asked(synthetic_spec_path):
    """leave_out_target: none keeps full bags (to measure the leak)."""
    spec = load_spec(synthetic_spec_path, [HISTORY.replace("max_items: 4", "max_items: 4, leave_out_target: none")])
    _, _, data = prepare(spec)
    batch = make_batch(data, data.train, torch.arange(0, 200), None)
    assert batch.leave_out is None


def test_catalog_negatives_put_every_product_in_every_batch(synthetic_spec_path):
    """retrieval_negatives 'catalog' trains against the whole catalog, each product once."""
    spec = load_spec(
        synthetic_spec_path, ["model.retrieval_negatives=catalog", "model.type=retrieval", "training.epochs=1"]
    )
    _, trained, data = prepare(spec)
    idx = torch.arange(0, 30)
    catalog = partial(
        catalog_candidates, n_catalog=len(data.product_ids), max_products=10**5, sampled=1, generator=None
    )
    batch = make_batch(data, data.train, idx, None, catalog)
    assert torch.equal(batch.candidate_inputs["product"], data.catalog["product"])
    assert torch.equal(batch.candidate_index, data.train.product[idx])
    assert batch.candidate_counts.tolist() == [1] * len(data.product_ids)
    history, _ = train(trained.model, data, spec)
    assert np.isfinite(history[0]["retrieval_loss"])
