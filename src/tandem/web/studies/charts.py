"""Chart.js configurations of a study, built as the experiment pages' are (:mod:`tandem.web.pages.charts`): the
Pareto front of two objectives, the best value so far over trials, Optuna's parameter importances and a slice
of each parameter against the first objective. Points carry `url` (their experiment) and `label` (a tooltip).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from tandem.study.objectives import Objective
from tandem.web.pages.charts import TASK_COLOURS, Chart, _chart, _rgba
from tandem.web.studies.models import StudyTrial, TrialState

FRONT_COLOUR = TASK_COLOURS["multitask"]
SINGLE_TASK_COLOUR = TASK_COLOURS["ranking"]
TRIAL_COLOUR = TASK_COLOURS["retrieval"]
GREY = "#9aa5b1"


def single_task(trial: StudyTrial) -> bool:
    """Whether a trial's model learns one task only: a single-task type, or a multitask model with a zero weight."""
    model = (trial.experiment.spec if trial.experiment else {}).get("model") or {}
    if model.get("type") in ("retrieval", "ranking"):
        return True
    return model.get("type") == "multitask" and 0 in (model.get("retrieval_weight"), model.get("ranking_weight"))


def _point(trial: StudyTrial, x: Any, y: Any) -> dict[str, Any]:
    params = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in trial.params.items())
    url = reverse("pages:experiment", args=[trial.experiment_id])
    return {"x": x, "y": y, "url": url, "label": f"trial {trial.number}: {params}", "number": trial.number}


def _scatter(label: str, points: list[dict[str, Any]], colour: str, **extra: Any) -> dict[str, Any]:
    return {"label": label, "data": points, "borderColor": colour, "backgroundColor": _rgba(colour, 0.6),
            "pointRadius": 5, "pointHoverRadius": 7, "showLine": False, **extra}  # fmt: skip


def pareto_chart(trials: list[StudyTrial], objectives: list[Objective], front: list[int]) -> Chart | None:
    """The first objective across, the second up: every completed trial a point linked to its trial page,
    single-task trials marked apart, the Pareto set joined by a line (sorted along the first objective)."""
    if len(objectives) < 2:
        return None
    done = [t for t in trials if t.state == TrialState.COMPLETE and len(t.values) >= 2]
    points = {t.number: _point(t, t.values[0], t.values[1]) for t in done}
    joint = [points[t.number] for t in done if not single_task(t)]
    single = [points[t.number] for t in done if single_task(t)]
    line = sorted((points[n] for n in front if n in points), key=lambda p: p["x"])
    datasets = [
        _scatter("trials", joint, TRIAL_COLOUR),
        _scatter(
            "single-task trials (a weight of 0)", single, SINGLE_TASK_COLOUR, pointStyle="triangle", pointRadius=7
        ),
        _scatter(
            "Pareto front",
            line,
            FRONT_COLOUR,
            showLine=True,
            borderWidth=2,
            pointRadius=7,
            pointStyle="rectRot",
            backgroundColor=FRONT_COLOUR,
            tension=0,
            front=True,
        ),
    ]
    a, b = objectives[0], objectives[1]
    return _chart("study-pareto", f"Pareto front: {a.metric} ({a.direction}) against {b.metric} ({b.direction})",
                  "scatter", [], datasets, numeric_x=True, points=True, x_title=a.metric, y_title=b.metric)  # fmt: skip


def best_so_far_chart(trials: list[StudyTrial], objective: Objective) -> Chart:
    """Each completed trial's first objective by trial number, and the best value reached so far."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    pick = max if objective.direction == "maximize" else min
    best, running = [], None
    for t in done:
        running = t.values[0] if running is None else pick(running, t.values[0])
        best.append({"x": t.number, "y": running})
    datasets = [
        _scatter(objective.metric, [_point(t, t.number, t.values[0]) for t in done], GREY),
        _scatter("best so far", best, FRONT_COLOUR, showLine=True, stepped=True, pointRadius=0, borderWidth=2),
    ]
    return _chart("study-best", f"Best {objective.metric} so far", "scatter", [], datasets, numeric_x=True,
                  points=True, x_title="trial", y_title=objective.metric)  # fmt: skip


def importance_chart(importances: dict[str, float], objective: Objective) -> Chart | None:
    """Optuna's importance of each parameter for the first objective (fANOVA-style, summing to 1)."""
    if not importances:
        return None
    names = list(importances)
    data = [{"label": "importance", "data": [importances[n] for n in names], "backgroundColor": FRONT_COLOUR}]
    return _chart("study-importance", f"Parameter importance for {objective.metric}", "bar", names, data,
                  y_title="importance")  # fmt: skip


def slice_charts(trials: list[StudyTrial], objective: Objective, paths: list[str]) -> list[Chart]:
    """One chart per parameter: its value across, the first objective up, one point per completed trial.
    A parameter of words or lists is placed at its value's position, named in the axis title."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    charts = []
    for i, path in enumerate(paths):
        values = [t.params.get(path) for t in done]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        order = [] if numeric else list(dict.fromkeys(str(v) for v in values))
        points = [
            _point(t, v if numeric else order.index(str(v)), t.values[0]) for t, v in zip(done, values, strict=True)
        ]
        title = path if numeric else f"{path} ({', '.join(f'{n} = {v}' for n, v in enumerate(order))})"
        charts.append(_chart(f"study-slice-{i}", f"{objective.metric} against {path}", "scatter", [],
                             [_scatter(objective.metric, points, TRIAL_COLOUR)], numeric_x=True, points=True,
                             x_title=title, y_title=objective.metric))  # fmt: skip
    return charts
