"""Chart.js configurations built from an experiment's history and weight statistics.

The pages' script only hands these dicts to `new Chart(...)`, so what a chart shows (which series, which
colours, which axes) is decided and tested here, in Python.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tandem.web.experiments.models import Experiment

PALETTE = ("#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#0b7285", "#5f3dc4", "#e67700")
TOWERS = (
    ("query_tower", "Query tower (buyer)"),
    ("candidate_tower", "Candidate tower (product)"),
    ("rating_head", "Rating head"),
)
LOSSES = (("retrieval_loss", "Retrieval loss"), ("ranking_loss", "Ranking loss"), ("loss", "Total loss"))

Chart = dict[str, Any]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


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
    losses = [(k, t) for k, t in LOSSES if _present(history, k)]
    if len(losses) == 2:  # a single task's total is its own loss: no third line
        losses = losses[:1]
    for i, (key, title) in enumerate(losses):
        colour = PALETTE[i]
        charts.append(
            _chart(key, title, "line", epochs, [_line(title, _series(history, key), colour)], x_title="epoch")
        )
    recalls = _recall_keys(history)
    if recalls:
        datasets = [_line(f"R@{k.rsplit('_', 1)[1]}", _series(history, k), PALETTE[i]) for i, k in enumerate(recalls)]
        charts.append(
            _chart("val_recall", "Validation recall", "line", epochs, datasets, percent=True, x_title="epoch")
        )
    errors = [(k, label) for k, label in (("val_rmse", "RMSE"), ("val_mae", "MAE")) if _present(history, k)]
    if errors:
        datasets = [_line(label, _series(history, k), PALETTE[i + 3]) for i, (k, label) in enumerate(errors)]
        charts.append(_chart("val_errors", "Validation RMSE and MAE", "line", epochs, datasets, x_title="epoch"))
    return charts


def weight_charts(experiment: Experiment) -> list[dict[str, Any]]:
    """Per tower: mean ± standard deviation of its weights per epoch, and the last epoch's histogram.

    Returns [{"title", "trend": Chart, "histogram": Chart}] for the towers the model has.
    """
    stats = experiment.weight_stats or []
    out = []
    for i, (tower, title) in enumerate(TOWERS):
        per_epoch = [s for s in stats if isinstance(s.get(tower), dict) and s[tower].get("count")]
        if not per_epoch:
            continue
        colour = PALETTE[i]
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
        centres = [f"{(a + b) / 2:.3g}" for a, b in pairwise(edges)]
        histogram = _chart(
            f"{tower}_histogram",
            f"{title}: weights after epoch {epochs[-1]}",
            "bar",
            centres,
            [{"label": "weights", "data": counts, "backgroundColor": _rgba(colour, 0.7)}],
            x_title="weight value",
        )
        out.append({"title": title, "trend": trend, "histogram": histogram})
    return out


def compare_curves(chosen: list[Experiment]) -> list[Chart]:
    """The experiments' curves overlaid, one chart per series that at least one of them recorded."""
    longest = max((len(e.history or []) for e in chosen), default=0)
    epochs = list(range(1, longest + 1))
    recalls = sorted({k for e in chosen for k in _recall_keys(e.history or [])}, key=lambda k: int(k.rsplit("_", 1)[1]))
    series = [*LOSSES]
    if recalls:
        series.append((recalls[-1], f"Validation recall@{recalls[-1].rsplit('_', 1)[1]}"))
    series.append(("val_rmse", "Validation RMSE"))
    charts = []
    for key, title in series:
        datasets = [
            _line(f"#{e.pk} {e.name}", _series(e.history, key), PALETTE[i % len(PALETTE)])
            for i, e in enumerate(chosen)
            if _present(e.history or [], key)
        ]
        if datasets:
            charts.append(_chart(key, title, "line", epochs, datasets, percent="recall" in key, x_title="epoch"))
    return charts


def best_over_time_chart(model_type: str, series: dict[str, list[Any]]) -> Chart | None:
    """The dashboard's chart: the best headline metric reached so far after each completed experiment."""
    if not series["labels"]:
        return None
    names = {"recall_at_100": "Best recall@100", "test_rmse": "Best test RMSE"}
    datasets = []
    for i, metric in enumerate(m for m in series if m != "labels"):
        extra = {"stepped": True, "yAxisID": "y" if i == 0 else "y1"}
        datasets.append(_line(names[metric], series[metric], PALETTE[i], **extra))
    percent = model_type != "ranking"
    return _chart(
        f"best_{model_type}",
        "Best so far",
        "line",
        series["labels"],
        datasets,
        percent=percent,
        secondary=len(datasets) > 1,
        x_title="finished",
    )
