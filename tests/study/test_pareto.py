"""The Pareto set a study reports is the non-dominated set of its trials, computed here independently."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from tandem.study.record import best_number, pareto_numbers


def non_dominated(points: dict[int, tuple[float, ...]], signs: tuple[int, ...]) -> list[int]:
    """Trials no other trial matches or beats on every objective while beating on one (signs: +1 max, -1 min)."""

    def beats(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return sorted(n for n, p in points.items() if not any(beats(q, p) for m, q in points.items() if m != n))


def test_pareto_set_matches_a_brute_force_computation():
    rng = np.random.default_rng(3)
    study = optuna.create_study(directions=["maximize", "minimize"])
    points = {}
    for _ in range(60):
        trial = study.ask()
        values = (round(float(rng.random()), 2), round(float(rng.random()), 2))  # ties on purpose
        study.tell(trial, values)
        points[trial.number] = values
    study.tell(study.ask(), state=TrialState.FAIL)  # not a point of the front
    expected = non_dominated(points, (1, -1))
    assert pareto_numbers(study) == expected and 1 < len(expected) < 60
    best = best_number(study)
    assert points[best][0] == max(points[n][0] for n in expected)


def test_one_objective_reports_its_best_trial():
    study = optuna.create_study(direction="minimize")
    for value in (3.0, 1.0, 2.0):
        study.tell(study.ask(), value)
    assert pareto_numbers(study) == [1] and best_number(study) == 1
    assert pareto_numbers(optuna.create_study()) == []
