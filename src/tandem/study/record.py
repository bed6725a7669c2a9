"""What a study found, read back from its storage: every trial (state, parameters, metrics) and the Pareto set
(Optuna's best trials; for one objective, the best trial)."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tandem.study.search import METRICS_ATTR, REASON_ATTR
from tandem.study.space import Space

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}  # fmt: skip


def pareto_numbers(study: optuna.Study) -> list[int]:
    """The trials no other trial beats on every objective (Optuna's best trials); one objective: the best one."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial.number]
    return sorted(t.number for t in study.best_trials)


def trial_record(trial: FrozenTrial, space: Space) -> dict[str, Any]:
    """One trial as study.json holds it."""
    return {
        "number": trial.number,
        "state": STATES[trial.state],
        "params": space.spec_values(trial.params) if len(trial.params) == len(space.params) else trial.params,
        "metrics": trial.user_attrs.get(METRICS_ATTR, {}),
    }


def reason(trial: FrozenTrial) -> str:
    """Why a trial was pruned or failed ('' when it completed, or a killed worker gave no reason)."""
    return trial.user_attrs.get(REASON_ATTR, "")


def study_record(study: optuna.Study, space: Space) -> dict[str, Any]:
    """`{"trials": [{number, state, params, metrics}, …], "pareto": [trial numbers]}`."""
    return {
        "trials": [trial_record(t, space) for t in study.get_trials(deepcopy=False)],
        "pareto": pareto_numbers(study),
    }


def best_number(study: optuna.Study) -> int | None:
    """The trial whose spec is "the best": the best one, or of the Pareto set the best on the first objective."""
    numbers = pareto_numbers(study)
    if not numbers:
        return None
    trials = study.get_trials(deepcopy=False)
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(numbers, key=lambda n: (sign * trials[n].values[0], -n))
