"""Taking trials: the budget, and two workers (or fresh samplers per trial, as the platform has) never drawing the
same values although every one starts from the same seed."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tandem.study import search
from tandem.study.objectives import parse_objectives
from tandem.study.space import parse_space


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_workers_with_one_seed_draw_distinct_trials_up_to_the_budget(tmp_path, sampler):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = parse_space(["training.learning_rate=log:1e-4:1e-1", "model.dropout=0:0.5"])
    objectives = parse_objectives(["recall_at_100:max", "test_rmse:min"])

    def worker():
        return search.open_study(url, "s", objectives, space, sampler=sampler, heartbeat=False)

    drawn = []
    for _ in range(7):
        study = worker()  # a fresh worker (a fresh sampler) every time, as on the platform
        trial = search.claim(study, space, 6, sampler, seed=0)
        if trial is None:
            break
        drawn.append(tuple(trial.params.values()))
        search.finish(study, trial.number, TrialState.COMPLETE, values=[trial.params["model.dropout"], 1.0])
    assert len(drawn) == 6 == len(set(drawn))
    assert search.claim(worker(), space, 6, sampler, seed=0) is None
