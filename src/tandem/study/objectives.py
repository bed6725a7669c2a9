"""What a study optimises: metrics of a trial's run (any metrics.json key, or a lift over the best baseline),
each with a direction, written `recall_at_100:max`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tandem.errors import Problem, SpecError, TandemError
from tandem.evaluation.metrics import lifts

DIRECTIONS = {"max": "maximize", "min": "minimize"}
# Lift keys: lift_{subset}{metric}_at_{k}, the model's value over the best baseline's (tandem.evaluation.metrics).
LIFT_PREFIX = "lift_"


@dataclass(frozen=True)
class Objective:
    """One metric to maximise or minimise."""

    metric: str
    direction: str  # Optuna's: "maximize" or "minimize"

    @property
    def monitored(self) -> str:
        """The per-epoch validation metric that stands for it when pruning (`test_rmse` → `val_rmse`)."""
        return "val_" + self.metric.removeprefix("test_").removeprefix(LIFT_PREFIX)

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction[:3]}"


def parse_objectives(texts: list[str]) -> list[Objective]:
    """Every `--objective metric:max|min`; raises SpecError listing each problem."""
    problems, objectives = [], []
    for text in texts:
        metric, _, direction = text.strip().rpartition(":")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", metric) or direction not in DIRECTIONS:
            problems.append(Problem("--objective", f"'{text}' is not of the form metric:max or metric:min"))
        elif any(o.metric == metric for o in objectives):
            problems.append(Problem("--objective", f"'{metric}' is listed twice"))
        else:
            objectives.append(Objective(metric, DIRECTIONS[direction]))
    if not texts:
        problems.append(Problem("--objective", "a study needs at least one --objective, e.g. recall_at_100:max"))
    if problems:
        raise SpecError(problems)
    return objectives


def with_lifts(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's metrics plus each lift over the best baseline (recall and NDCG at every K, all/repeat/explore)."""
    ks = sorted({int(k.rsplit("_", 1)[1]) for k in metrics if re.fullmatch(r"recall_at_\d+", k)})
    out = dict(metrics)
    for metric in ("recall", "ndcg"):
        for lift in lifts(metrics, ks, metric):
            if lift.lift is not None:
                out[f"{LIFT_PREFIX}{lift.subset}{metric}_at_{lift.k}"] = lift.lift
    return out


def objective_values(objectives: list[Objective], metrics: Mapping[str, Any]) -> list[float]:
    """The objectives' values in a trial's metrics; raises TandemError naming a metric the run does not report."""
    missing = [o.metric for o in objectives if o.metric not in metrics]
    if missing:
        known = ", ".join(sorted(k for k in metrics if not k.startswith(("popularity", "buy_again", "ease"))))
        raise TandemError(f"the runs do not report {', '.join(missing)}; objectives can be: {known}")
    return [float("nan") if metrics[o.metric] is None else float(metrics[o.metric]) for o in objectives]
