"""Chart.js configurations built from an experiment's history and weight statistics.

The pages' script only hands these dicts to `new Chart(...)`, so what a chart shows (which series, which
colours, which axes) is decided and tested here, in Python.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tandem.web.experiments.models import Experiment

# A task keeps its colour on every page (the stylesheet's --retrieval, --ranking and --multitask): its loss,
# its metrics, the dashboard's best-so-far lines and the model-type badges.
TASK_COLOURS = {"retrieval": "#2f6fed", "ranking": "#e8590c", "multitask": "#7b3fc4"}
# Shades of a task's colour, darkest first, for several lines of one task (recall@5 … recall@100).
SHADES = (1.0, 0.75, 0.55, 0.38)
# Overlaid experiments are told apart by dash and point style as well as by shade.
DASHES = ([], [6, 4], [2, 3], [10, 3, 2, 3])
POINTS = ("circle", "rect", "triangle", "rectRot")
TOWERS = (
    ("query_tower", "Query tower (buyer)", "retrieval"),
    ("candidate_tower", "Candidate tower (product)", "retrieval"),
    ("rating_head", "Rating head", "ranking"),
)
LOSSES = (
    ("retrieval_loss", "Retrieval loss", "retrieval"),
    ("ranking_loss", "Ranking loss", "ranking"),
    ("loss", "Total loss", "multitask"),
)
LOSS_AXIS = "loss per example"

Chart = dict[str, Any]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _shade(task: str, i: int) -> str:
    """The i-th shade of a task's colour (opaque, mixed towards white), cycling after the last."""
    r, g, b = (int(TASK_COLOURS[task][j : j + 2], 16) for j in (1, 3, 5))
    share = SHADES[i % len(SHADES)]
    r, g, b = (round(c * share + 255 * (1 - share)) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _styled(i: int) -> dict[str, Any]:
    """The i-th overlaid line's dash and point style."""
    return {"borderDash": DASHES[i % len(DASHES)], "pointStyle": POINTS[i % len(POINTS)], "pointRadius": 4}


def _line(label: str, values: list[Any], colour: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "data": values,
        "borderColor": colour,
        "backgroundColor": colour,
        "tension": 0.2,
        "pointRadius": 3,
        "spanGaps": True,
        **extra,
    }


def _chart(key: str, title: str, kind: str, labels: list[Any], datasets: list[dict[str, Any]], **axes: Any) -> Chart:
    """One chart: `key` names its canvas; `axes` may set "percent" (y as %) or "x_title"/"y_title"."""
    return {"key": key, "title": title, "type": kind, "data": {"labels": labels, "datasets": datasets}, "axes": axes}


def _series(history: list[dict[str, Any]], key: str) -> list[Any]:
    return [record.get(key) for record in history]


def _present(history: list[dict[str, Any]], key: str) -> bool:
    return any(record.get(key) is not None for record in history)


def _recall_keys(history: list[dict[str, Any]], prefix: str = "val_recall_at_") -> list[str]:
    keys = {k for record in history for k in record if k.startswith(prefix) and k[len(prefix) :].isdigit()}
    return sorted(keys, key=lambda k: int(k[len(prefix) :]))


def training_curves(experiment: Experiment) -> list[Chart]:
    """Each task's loss per epoch (and the weighted total of a multitask model), then the validation metrics.

    Validation metrics exist only when the experiment held out a validation split.
    """
    history = experiment.history or []
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]
    charts = []
    losses = [loss for loss in LOSSES if _present(history, loss[0])]
    if len(losses) == 2:  # a single task's total is its own loss: no third line
        losses = losses[:1]
    for key, title, task in losses:
        line = _line(title, _series(history, key), TASK_COLOURS[task])
        charts.append(_chart(key, title, "line", epochs, [line], x_title="epoch", y_title=LOSS_AXIS))
    recalls = _recall_keys(history)
    if recalls:
        datasets = [
            _line(f"R@{k.rsplit('_', 1)[1]}", _series(history, k), _shade("retrieval", i), **_styled(i))
            for i, k in enumerate(recalls)
        ]
        charts.append(
            _chart("val_recall", "Validation recall", "line", epochs, datasets, percent=True, x_title="epoch")
        )
    errors = [(k, label) for k, label in (("val_rmse", "RMSE"), ("val_mae", "MAE")) if _present(history, k)]
    if errors:
        datasets = [
            _line(label, _series(history, k), _shade("ranking", i), **_styled(i)) for i, (k, label) in enumerate(errors)
        ]
        charts.append(_chart("val_errors", "Validation RMSE and MAE", "line", epochs, datasets, x_title="epoch"))
    return charts


def weight_charts(experiment: Experiment) -> list[dict[str, Any]]:
    """Per tower: mean ± standard deviation of its weights per epoch, and the last epoch's histogram.

    Returns [{"title", "trend": Chart, "histogram": Chart}] for the towers the model has.
    """
    stats = experiment.weight_stats or []
    out = []
    for tower, title, task in TOWERS:
        per_epoch = [s for s in stats if isinstance(s.get(tower), dict) and s[tower].get("count")]
        if not per_epoch:
            continue
        colour = TASK_COLOURS[task]
        epochs = [s.get("epoch") for s in per_epoch]
        mean = [s[tower]["mean"] for s in per_epoch]
        std = [s[tower]["std"] for s in per_epoch]
        band = {"pointRadius": 0, "borderWidth": 0, "backgroundColor": _rgba(colour, 0.15)}
        trend = _chart(
            f"{tower}_trend",
            f"{title}: mean ± std",
            "line",
            epochs,
            [
                _line("mean ± std", [m + s for m, s in zip(mean, std, strict=True)], colour, fill="+1", **band),
                _line(
                    "mean − std",
                    [m - s for m, s in zip(mean, std, strict=True)],
                    colour,
                    fill=False,
                    hideInLegend=True,
                    **band,
                ),
                _line("mean", mean, colour),
            ],
            x_title="epoch",
        )
        last = per_epoch[-1][tower].get("histogram") or {"counts": [], "edges": []}
        edges, counts = last.get("edges", []), last.get("counts", [])
        # Bars placed at their bins' centres on a numeric axis, whose ticks are round numbers.
        bins = [{"x": (a + b) / 2, "y": n} for (a, b), n in zip(pairwise(edges), counts, strict=False)]
        histogram = _chart(
            f"{tower}_histogram",
            f"{title}: weights after epoch {epochs[-1]}",
            "bar",
            [],
            [
                {
                    "label": "weights",
                    "data": bins,
                    "backgroundColor": _rgba(colour, 0.7),
                    "barPercentage": 1.0,
                    "categoryPercentage": 1.0,
                }
            ],
            numeric_x=True,
            x_title="weight value",
            y_title="count",
        )
        out.append({"title": title, "trend": trend, "histogram": histogram})
    return out


def _relative(values: list[Any]) -> list[Any]:
    """A loss curve divided by its first value, so runs whose losses differ in size share one axis."""
    first = next((v for v in values if v), None)
    return [None if v is None or first is None else v / first for v in values]


def compare_curves(chosen: list[Experiment]) -> list[Chart]:
    """The experiments' curves overlaid: one chart per task's loss (relative to its first epoch, so that runs of
    different sizes compare), then validation recall and RMSE, each of them drawn by the runs that recorded it.

    The total loss is left out: it weighs the tasks differently in each run. Lines are in their task's colour,
    told apart by shade, dash and point style.
    """
    longest = max((len(e.history or []) for e in chosen), default=0)
    epochs = list(range(1, longest + 1))
    recalls = sorted({k for e in chosen for k in _recall_keys(e.history or [])}, key=lambda k: int(k.rsplit("_", 1)[1]))
    series = [(key, f"{title}, relative to epoch 1", task, True) for key, title, task in LOSSES[:2]]
    if recalls:
        series.append((recalls[-1], f"Validation recall@{recalls[-1].rsplit('_', 1)[1]}", "retrieval", False))
    series.append(("val_rmse", "Validation RMSE", "ranking", False))
    charts = []
    for key, title, task, relative in series:
        datasets = []
        for i, e in enumerate(chosen):
            if not _present(e.history or [], key):
                continue
            values = _series(e.history, key)
            datasets.append(
                _line(f"#{e.pk} {e.name}", _relative(values) if relative else values, _shade(task, i), **_styled(i))
            )
        if datasets:
            axes = {"y_title": "÷ first epoch"} if relative else {}
            charts.append(
                _chart(key, title, "line", epochs, datasets, percent="recall" in key, x_title="epoch", **axes)
            )
    return charts


def best_over_time_chart(model_type: str, series: dict[str, list[Any]]) -> Chart | None:
    """The dashboard's chart: the best headline metric reached so far after each completed experiment."""
    if not series["labels"]:
        return None
    names = {"recall_at_100": ("Best recall@100", "retrieval"), "test_rmse": ("Best test RMSE", "ranking")}
    datasets = []
    for i, metric in enumerate(m for m in series if m != "labels"):
        name, task = names[metric]
        extra = {"stepped": True, "yAxisID": "y" if i == 0 else "y1", "pointRadius": 5, "pointStyle": POINTS[i]}
        datasets.append(_line(name, series[metric], TASK_COLOURS[task], **extra))
    titles = [names[m][0].removeprefix("Best ") for m in series if m != "labels"]
    return _chart(
        f"best_{model_type}",
        "Best so far",
        "line",
        series["labels"],
        datasets,
        percent=model_type != "ranking",
        secondary=len(datasets) > 1,
        x_title="finished",
        y_title=titles[0],
        y1_title=titles[-1] if len(titles) > 1 else "",
        # A single run is one point: centred, not drawn on the axis.
        offset=len(series["labels"]) == 1,
    )
