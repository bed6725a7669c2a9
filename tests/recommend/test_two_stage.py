"""The two-stage recommender end to end on synthetic lines built so that the latest habits, not the most
ordered products, are bought next: the learned ranker must beat buy-again, and the saved recommender must
give the lists the evaluation measured."""

import numpy as np
import pandas as pd
import pytest

from tandem.recommend.build import train_two_stage
from tandem.recommend.two_stage import TwoStage, candidate_table
from tandem.run import run
from tandem.spec import parse_spec

DAY = 86_400
CUTOFF = 200 * DAY


def _lines(seed: int = 0) -> pd.DataFrame:
    """Each buyer buys 4 old favourites often (15 orders) early on and then stops; 3 current products every 10 days from a
    buyer-specific start to the end. Buy-again ranks the old favourites first; they are never bought again."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(40):
        products = rng.permutation(30)
        for p in products[:4]:  # 15 orders in days 0-60
            for day in np.sort(rng.choice(60, 15, replace=False)):
                rows.append((f"b{b}", f"p{p}", 1.0, int(day) * DAY + 3600))
        start = int(rng.integers(0, 80))
        for p in products[4:7]:  # every 10 days from a start in days 0-80 (fewer orders than the old ones)
            for day in range(start + 80, 260, 10):
                rows.append((f"b{b}", f"p{p}", 1.0, (day + int(rng.integers(0, 3))) * DAY + 7200))
    return pd.DataFrame(rows, columns=["buyer", "product", "quantity", "ts"])


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("two_stage") / "lines.csv"
    _lines().to_csv(path, index=False)
    spec = parse_spec(
        {
            "data": {
                "transactions": {"path": str(path)},
                "buyer_id": "buyer",
                "product_id": "product",
                "timestamp": "ts",
                "aggregate": [{"name": "quantity", "fn": "sum", "column": "quantity"}],
                "split": {"kind": "time", "cutoff": str(CUTOFF)},
            },
            "features": {
                "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 4}],
                "product": [{"column": "product", "transform": "id", "embedding_dim": 4}],
            },
            "model": {"type": "retrieval", "top_k": 10},
            "training": {"epochs": 1, "batch_size": 256},
            "evaluation": {"ks": [3, 10], "ease_products": 30},
            "recommend": {"ease": 5, "popularity": 5, "windows": 3, "ranker_epochs": 30, "ease_neighbours": 10},
        }
    )
    return run(spec)


def test_learned_ranker_beats_buy_again_where_recency_matters(result) -> None:
    m = result.metrics
    assert m["buy_again_recall_at_3"] < 0.2
    assert m["recall_at_3"] > 0.9
    assert m["recall_at_3"] >= m["repeat_recall_at_3"] * 0.99  # every test pair is a re-order here
    assert "retrieval_recall_at_10" in m and "buy_again_recall_at_10" in m


def test_saved_two_stage_gives_the_evaluated_lists(result, tmp_path) -> None:
    result.save(tmp_path / "run")
    loaded = TwoStage.load(tmp_path / "run" / "bundle" / "two_stage")
    buyers = np.arange(result.two_stage.log.n_buyers)
    for explore in (False, True):
        assert np.array_equal(
            loaded.lists(buyers, 10, explore=explore), result.two_stage.lists(buyers, 10, explore=explore)
        )


def test_lists_of_new_products_are_the_explore_rankers_order(result) -> None:
    """Without the buyer's history, the candidates it never bought are ordered by the second ranker, learned on
    those candidates alone: recomputed here from the candidate table and that ranker's scores."""
    two_stage = result.two_stage
    assert two_stage.explore_ranker.graph != two_stage.ranker.graph
    assert len(two_stage.report["explore_losses"]) == two_stage.settings.ranker_epochs
    buyers = np.arange(two_stage.log.n_buyers)
    rows, products, features = candidate_table(
        two_stage.log, two_stage.neighbours, two_stage.stats, buyers, two_stage.settings
    )
    history = two_stage.log.history()
    new = ~history.bought(buyers[rows], products)
    scores = two_stage.explore_ranker.score(features[new])
    lists = two_stage.lists(buyers, 10, explore=True)
    for b in buyers:
        mine = rows[new] == b
        expected = pd.DataFrame({"p": products[new][mine], "s": scores[mine]}).sort_values(
            ["s", "p"], ascending=[False, True]
        )
        n = min(10, len(expected))
        assert lists[b, :n].tolist() == expected["p"].head(n).tolist()
        assert not history.bought(np.full(10, b), np.maximum(lists[b], 0)).any()


def test_each_ranker_learns_with_its_own_loss(result) -> None:
    """ranker_loss trains the ranker of whole lists, explore_ranker_loss the ranker of new products, and neither
    reaches the other: retrained with one of them changed, only that ranker's scores change."""
    fitted = result.two_stage
    buyers = np.arange(fitted.log.n_buyers)
    _, _, features = candidate_table(fitted.log, fitted.neighbours, fitted.stats, buyers, fitted.settings)
    assert (fitted.settings.ranker_loss, fitted.settings.explore_ranker_loss) == ("lambdarank", "softmax")

    def retrained(**losses: str) -> TwoStage:
        settings = fitted.settings.model_copy(update=losses)
        return train_two_stage(
            fitted.log, fitted.as_of, fitted.horizon, fitted.category, settings, result.spec.training.seed
        )

    def same(a, b) -> bool:
        return np.array_equal(a.score(features), b.score(features))

    softmax = retrained(ranker_loss="softmax")
    assert not same(softmax.ranker, fitted.ranker) and same(softmax.explore_ranker, fitted.explore_ranker)
    bce = retrained(explore_ranker_loss="bce")
    assert same(bce.ranker, fitted.ranker) and not same(bce.explore_ranker, fitted.explore_ranker)
