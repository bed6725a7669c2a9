"""The ranker's graph: several rankers (`recommend.rankers`) score with the mean of what each, trained alone
with its own seed, would score."""

import numpy as np
import pytest

from tandem.recommend.ranker import train_ranker
from tandem.recommend.ranker_graph import Ranker


def _lists(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 buyer lists of 20 candidates; a candidate is bought when a noisy mix of its first two features is high."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(1200, 5)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.5, size=1200) > 1.2).astype(np.float32)
    return features, labels, np.repeat(np.arange(60), 20)


@pytest.mark.parametrize("loss", ["lambdarank", "softmax"])
def test_several_rankers_score_the_mean_of_each_one_alone(loss: str) -> None:
    features, labels, groups = _lists()
    settings = {"layers": [8, 1], "loss": loss, "epochs": 3, "learning_rate": 0.01, "groups_per_batch": 8}
    graph, losses = train_ranker(features, labels, groups, seed=5, members=3, **settings)
    alone = [train_ranker(features, labels, groups, seed=5 + i, **settings) for i in range(3)]
    expected = np.mean([Ranker(g).score(features) for g, _ in alone], axis=0)
    np.testing.assert_allclose(Ranker(graph).score(features), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses, np.mean([h for _, h in alone], axis=0), rtol=1e-6)
    # The members differ: averaging is not one ranker three times.
    assert np.abs(Ranker(alone[0][0]).score(features) - Ranker(alone[1][0]).score(features)).max() > 1e-3


def test_the_rankers_learn_the_buying_rule() -> None:
    features, labels, groups = _lists()
    graph, _ = train_ranker(
        features,
        labels,
        groups,
        layers=[8, 1],
        loss="softmax",
        epochs=20,
        learning_rate=0.01,
        groups_per_batch=8,
        seed=0,
        members=2,
    )
    test_features, test_labels, _ = _lists(seed=1)
    score = Ranker(graph).score(test_features)
    # Bought candidates score above the others (AUC over the held-out lists).
    bought, other = score[test_labels > 0], score[test_labels == 0]
    assert (bought[:, None] > other[None, :]).mean() > 0.85
