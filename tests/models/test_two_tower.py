"""The two-tower model: towers, the rating head, and how the three model types combine their task losses."""

from __future__ import annotations

import pytest
import torch

from tandem.features.pipeline import InputSpec
from tandem.models.two_tower import Batch, TwoTowerModel
from tandem.spec import ModelSpec

QUERY_INPUTS = [InputSpec("buyer", "index", 6, 4), InputSpec("age", "dense", 1, 0)]
CANDIDATE_INPUTS = [InputSpec("product", "index", 7, 3), InputSpec("title", "bag", 9, 2)]


def _model(**spec) -> TwoTowerModel:
    torch.manual_seed(0)
    defaults = {"buyer_tower_layers": [5], "product_tower_layers": [5], "rating_head_layers": [4, 1]}
    return TwoTowerModel(ModelSpec(**{**defaults, **spec}), QUERY_INPUTS, CANDIDATE_INPUTS)


def _batch() -> Batch:
    """Six rows over three distinct query rows and four distinct products."""
    return Batch(
        query_inputs={"buyer": torch.tensor([1, 3, 5]), "age": torch.tensor([[0.5], [-1.0], [0.0]])},
        query_index=torch.tensor([0, 1, 2, 0, 1, 0]),
        candidate_inputs={
            "product": torch.tensor([0, 2, 4, 6]),
            "title": torch.tensor([[2, 3, 0], [4, 0, 0], [5, 6, 7], [1, 0, 0]]),
        },
        candidate_index=torch.tensor([0, 1, 2, 3, 1, 1]),
        candidate_counts=torch.tensor([1, 3, 1, 1]),
        labels=torch.tensor([1.0, 5.0, 3.0, 4.0, 2.0, 5.0]),
    )


def _naive_retrieval_sum(queries: torch.Tensor, candidates: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy of the B × B in-batch scores with identity labels."""
    scores = queries[batch.query_index] @ candidates[batch.candidate_index].T
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(batch.query_index)), reduction="sum")


def _naive_mse(model: TwoTowerModel, queries: torch.Tensor, candidates: torch.Tensor, batch: Batch) -> torch.Tensor:
    head_in = torch.cat([queries[batch.query_index], candidates[batch.candidate_index]], dim=1)
    predictions = model.rating_head(head_in).squeeze(1)
    return ((predictions - batch.labels) ** 2).mean()


def test_multitask_loss_is_the_weighted_sum_of_both_task_losses():
    """A multitask model's total is retrieval_weight × in-batch softmax + ranking_weight × MSE; the logged losses
    are per example (the summed retrieval loss divided by the batch's rows)."""
    model = _model(type="multitask", retrieval_weight=0.7, ranking_weight=1.9)
    batch = _batch()

    total, parts = model.compute_loss(batch)

    queries = model.query_tower(batch.query_inputs)
    candidates = model.candidate_tower(batch.candidate_inputs)
    retrieval = _naive_retrieval_sum(queries, candidates, batch)
    ranking = _naive_mse(model, queries, candidates, batch)
    rows = len(batch.query_index)
    assert parts["retrieval_loss"].item() == pytest.approx(retrieval.item() / rows, rel=1e-5)
    assert parts["ranking_loss"].item() == pytest.approx(ranking.item(), rel=1e-5)
    assert total.item() == pytest.approx(0.7 * retrieval.item() + 1.9 * ranking.item(), rel=1e-5)
    assert parts["loss"].item() == pytest.approx(0.7 * retrieval.item() / rows + 1.9 * ranking.item(), rel=1e-5)


def test_retrieval_model_has_no_rating_head_and_trains_only_retrieval():
    """A retrieval model builds no rating head, ignores labels, and its loss is the retrieval loss alone."""
    model = _model(type="retrieval", ranking_weight=5.0)
    batch = _batch()
    total, parts = model.compute_loss(batch)
    assert model.rating_head is None
    assert set(parts) == {"retrieval_loss", "loss"}
    retrieval = _naive_retrieval_sum(
        model.query_tower(batch.query_inputs), model.candidate_tower(batch.candidate_inputs), batch
    )
    assert total.item() == pytest.approx(retrieval.item(), rel=1e-5)


def test_ranking_model_trains_only_the_ranking_loss():
    """A ranking model reports no retrieval loss, and its total is the ranking loss whatever the weights say."""
    model = _model(type="ranking", retrieval_weight=3.0, ranking_weight=0.5)
    batch = _batch()
    total, parts = model.compute_loss(batch)
    assert set(parts) == {"ranking_loss", "loss"}
    queries, candidates = model.query_tower(batch.query_inputs), model.candidate_tower(batch.candidate_inputs)
    assert total.item() == pytest.approx(_naive_mse(model, queries, candidates, batch).item(), rel=1e-5)


def test_a_zero_weight_task_is_logged_but_gives_no_gradient():
    """With ranking_weight 0 the ranking loss is still reported, but the rating head receives no gradient."""
    model = _model(type="multitask", retrieval_weight=1.0, ranking_weight=0.0)
    total, parts = model.compute_loss(_batch())
    total.backward()
    assert parts["ranking_loss"].item() > 0
    assert all(p.grad is None for p in model.rating_head.parameters())
    assert model.query_tower.embeddings["buyer"].weight.grad is not None


def test_towers_with_different_output_sizes_are_rejected():
    """Buyer and product towers whose output sizes differ raise a ValueError naming both sizes."""
    with pytest.raises(ValueError, match=r"buyer 5, product 6"):
        _model(product_tower_layers=[6])


def test_concat_product_head_input_adds_the_elementwise_product():
    """With rating_head_input 'concat_product' the head reads [q, c, q ⊙ c], three embeddings wide."""
    model = _model(type="ranking", rating_head_input="concat_product")
    q = torch.randn(4, 5)
    c = torch.randn(4, 5)
    assert model.rating_head[0].in_features == 15
    expected = model.rating_head(torch.cat([q, c, q * c], dim=1)).squeeze(1)
    torch.testing.assert_close(model.rate(q, c), expected)


def test_normalized_towers_output_unit_vectors():
    """With normalize_embeddings every tower output has L2 norm 1."""
    model = _model(normalize_embeddings=True)
    out = model.query_tower(_batch().query_inputs)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_tower_without_layers_outputs_its_concatenated_inputs():
    """A tower with no MLP layers outputs its embeddings and dense values side by side."""
    model = _model(buyer_tower_layers=[], product_tower_layers=[], type="retrieval")
    batch = _batch()
    out = model.query_tower(batch.query_inputs)
    table = model.query_tower.embeddings["buyer"].weight
    expected = torch.cat([table[batch.query_inputs["buyer"]], batch.query_inputs["age"]], dim=1)
    torch.testing.assert_close(out, expected)


def test_text_bag_embedding_is_the_mean_of_its_non_padding_tokens():
    """A token bag is embedded as the mean of its tokens' rows, ignoring padding index 0."""
    model = _model(buyer_tower_layers=[], product_tower_layers=[], type="retrieval")
    bag = model.candidate_tower.embeddings["title"]
    tokens = torch.tensor([[2, 3, 0], [4, 0, 0]])
    expected = torch.stack([(bag.weight[2] + bag.weight[3]) / 2, bag.weight[4]])
    torch.testing.assert_close(bag(tokens), expected)


def test_tower_groups_name_the_parts_whose_weights_are_summarised():
    """tower_groups lists both towers, plus the rating head when the model has one."""
    assert set(_model(type="multitask").tower_groups()) == {"query_tower", "candidate_tower", "rating_head"}
    assert set(_model(type="retrieval").tower_groups()) == {"query_tower", "candidate_tower"}


def test_history_bag_pools_the_candidate_towers_own_rows_by_weight():
    """The query tower's bag is the weighted mean of the product table's rows, and it trains that same table."""
    torch.manual_seed(0)
    query_inputs = [InputSpec("buyer", "index", 6, 4), InputSpec("history", "weighted_bag", 7, 3, shares="product")]
    spec = ModelSpec(type="retrieval", buyer_tower_layers=[5], product_tower_layers=[5])
    model = TwoTowerModel(spec, query_inputs, CANDIDATE_INPUTS)
    table = model.candidate_tower.embeddings["product"]
    bag = model.query_tower.embeddings["history"]
    assert bag.table is table
    rows = torch.tensor([[2, 5, 0], [0, 0, 0]])
    weights = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    pooled = bag(rows, weights)
    torch.testing.assert_close(pooled[0], (3 * table.weight[2] + table.weight[5]) / 4)
    assert torch.equal(pooled[1], torch.zeros(3))  # an empty history pools to zeros
    model.query_tower({"buyer": torch.tensor([1, 2]), "history": rows, "history_weights": weights}).sum().backward()
    assert set(torch.nonzero(table.weight.grad.abs().sum(1)).flatten().tolist()) == {2, 5}
    assert sum(p is table.weight for p in model.parameters()) == 1  # one table, optimised once
