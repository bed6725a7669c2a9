"""The search space as written on the command line, and its check against the spec's own rules."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tandem.errors import SpecError
from tandem.study.space import check_space, parse_param, parse_space, trial_spec


def test_forms_of_a_parameter():
    """Values, stepped and continuous ranges, log ranges and YAML lists become Optuna's distributions."""
    weights = parse_param("model.retrieval_weight=0:2:0.25")
    assert weights.grid() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert weights.distribution() == FloatDistribution(0.0, 2.0, step=0.25)
    assert parse_param("training.epochs=1:9:2").grid() == [1, 3, 5, 7, 9]
    assert isinstance(parse_param("training.epochs=1:9:2").distribution(), IntDistribution)
    lr = parse_param("training.learning_rate=log:1e-4:1e-1")
    assert lr.distribution() == FloatDistribution(1e-4, 0.1, log=True) and lr.grid() is None
    assert parse_param("model.dropout=0:0.5").grid() is None
    optimizer = parse_param("training.optimizer=adam,adagrad")
    assert optimizer.distribution() == CategoricalDistribution(["adam", "adagrad"])
    assert parse_param("training.learning_rate=1e-3").choices == (0.001,)
    layers = parse_param("model.buyer_tower_layers=[[64],[128,64]]")
    assert layers.grid() == ["[64]", "[128, 64]"] and layers.value("[128, 64]") == [128, 64]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("model.retrieval_weight", "not of the form"),
        ("training.learning_rate=log:0:1", "above 0"),
        ("model.dropout=0.5:0.1", "below its low end"),
        ("model.retrieval_weight=0:2:0.3", "does not divide"),
        ("model.retrieval_weight=0:2:-1", "step must be above 0"),
        ("training.epochs=1:x", "not a finite number"),
        ("training.optimizer=adam,adam", "listed twice"),
    ],
)
def test_a_malformed_parameter_is_refused_saying_why(text, words):
    with pytest.raises(SpecError) as caught:
        parse_param(text)
    assert words in str(caught.value)


def test_every_problem_of_a_space_is_listed_before_any_trial(synthetic_spec_raw):
    """Range ends the spec refuses (a negative learning rate, a dropout of 1.5, an unknown field), a field
    searched twice and a malformed range are all listed at once."""
    with pytest.raises(SpecError) as caught:
        parse_space(["model.dropout=0:0.1", "model.dropout=0:0.2", "training.epochs=log:-1:3"])
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 2 and "searched twice" in messages[0] and "above 0" in messages[1]
    space = parse_space(
        ["training.learning_rate=-0.1:0.1:0.05", "model.dropout=0:1.5", "model.no_such_field=1,2", "training.epochs=2"]
    )
    with pytest.raises(SpecError) as caught:
        check_space(synthetic_spec_raw, None, space)
    paths = [p.path for p in caught.value.problems]
    assert "training.learning_rate" in paths and "model.dropout" in paths and any("no_such" in p for p in paths)
    text = str(caught.value)
    assert "training.learning_rate=-0.1" in text and "model.dropout=1.5" in text
    check_space(synthetic_spec_raw, None, parse_space(["training.learning_rate=log:1e-4:1e-1", "model.dropout=0:0.5"]))


def test_a_trial_spec_sets_each_value_at_its_path(synthetic_spec_raw):
    spec = trial_spec(synthetic_spec_raw, None, {"model.retrieval_weight": 0.25, "features.buyer.0.embedding_dim": 4})
    assert spec.model.retrieval_weight == 0.25 and spec.features.buyer[0].embedding_dim == 4
    assert synthetic_spec_raw["features"]["buyer"][0]["embedding_dim"] == 8  # the base spec is left as it was
