"""What the pages read: an organisation's records, and the shapes the templates show (cards, summaries,
leaderboards, comparisons).

Every lookup goes through `.of(organisation)`, so another organisation's record is "not found" (404) here
exactly as in the API. The shapes are plain data, so templates only lay them out and tests can check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from tandem.data.sources import is_numeric
from tandem.evaluation.metrics import ALL, EXPLORE, REPEAT, best_baseline, metric_key
from tandem.metric_names import DEFAULT_KS, RANKING_HEADLINE, RETRIEVAL_HEADLINE
from tandem.spec import ModelSpec
from tandem.web.accounts.models import Organisation
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tandem.web.experiments import services
from tandem.web.experiments.models import ACTIVE, HIGHER_IS_BETTER, Experiment, Status

MODEL_TYPES = ("retrieval", "ranking", "multitask")
KS = DEFAULT_KS
RETRIEVAL_METRICS = RETRIEVAL_HEADLINE
RANKING_METRICS = RANKING_HEADLINE
LABELS = {
    **{f"recall_at_{k}": f"Recall@{k}" for k in KS},
    "rmse": "Validation RMSE",
    "mae": "Validation MAE",
    "test_rmse": "Test RMSE",
    "test_mae": "Test MAE",
}
SHORT_LABELS = {
    **{f"recall_at_{k}": f"R@{k}" for k in KS},
    "rmse": "RMSE",
    "mae": "MAE",
    "test_rmse": "Test RMSE",
    "test_mae": "Test MAE",
}
# The metric a leaderboard sorts by, per model type (a multitask model is ranked by its retrieval).
PRIMARY_METRIC = {"retrieval": "recall_at_100", "ranking": "test_rmse", "multitask": "recall_at_100"}
# Recall of the model beside the best baseline, for these subsets of the test pairs.
SUBSETS = {ALL: "All pairs", REPEAT: "Re-orders", EXPLORE: "New products"}
SUBSET_SHORT = {ALL: "all", REPEAT: "repeat", EXPLORE: "explore"}
# The cut-offs a card shows the lift over the best baseline at.
CARD_LIFT_KS = (10, 100)


def owned(model: type[Model], organisation: Organisation, pk: int) -> Any:
    """The organisation's record `pk` of `model`; Http404 when it is missing or another organisation's."""
    return get_object_or_404(model.objects.of(organisation), pk=pk)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ experiments


def experiments(organisation: Organisation, *, status: str = "", model_type: str = "") -> QuerySet[Experiment]:
    """The organisation's experiments, newest first, filtered by status ("active": pending or running) and model
    type when given."""
    qs = Experiment.objects.of(organisation).select_related("dataset", "feature_config", "model_config")
    if status == "active":
        qs = qs.filter(status__in=ACTIVE)
    elif status in Status.values:
        qs = qs.filter(status=status)
    if model_type in MODEL_TYPES:
        qs = qs.filter(model_type=model_type)
    return qs


@dataclass(frozen=True)
class Progress:
    """How far a pending or running experiment is: a share for the bar and a sentence for the person."""

    percent: int
    label: str
    indeterminate: bool


def progress(experiment: Experiment) -> Progress:
    """The live progress of an experiment, from the epoch and step its worker last wrote.

    The worker writes `progress = {epoch, step, steps}` with the epoch being trained (1-based), so the share
    counts the finished epochs plus the finished part of the current one.
    """
    total = max(experiment.total_epochs, 1)
    if experiment.status == Status.PENDING:
        return Progress(0, "Queued, waiting for a worker", True)
    if experiment.status != Status.RUNNING:
        done = experiment.status == Status.COMPLETED
        return Progress(100 if done else 0, experiment.get_status_display(), False)
    p = experiment.progress or {}
    epoch, step, steps = int(p.get("epoch") or 0), int(p.get("step") or 0), int(p.get("steps") or 0)
    if epoch == 0:
        return Progress(0, "Preparing data", True)
    share = (epoch - 1 + (step / steps if steps else 0.0)) / total
    return Progress(min(100, round(share * 100)), f"Epoch {epoch} of {total}", False)


@dataclass(frozen=True)
class MetricCell:
    name: str
    label: str
    value: float | None
    baseline: float | None = None
    best: bool = False
    baseline_name: str = ""

    @property
    def lift(self) -> float | None:
        """How many times the baseline's value the model reaches (recall over the best baseline's recall)."""
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass(frozen=True)
class MetricRow:
    """One task's metrics: "Retrieval" (recall, percent) or "Ranking" (errors, three decimals); `note` says
    what the values are measured on (the errors' scale)."""

    task: str
    cells: list[MetricCell]
    note: str = ""
    beside_baseline: bool = False


def recall_cell(metrics: dict[str, Any], k: int, subset: str, label: str) -> MetricCell:
    """The model's recall@k on a subset of the test pairs, beside the best baseline's."""
    name = metric_key("recall", k, subset=subset)
    best = best_baseline(metrics, "recall", k, subset)
    value = metrics.get(name)
    return MetricCell(name, label, value, best[1] if best else None, baseline_name=best[0] if best else "")


def card_rows(experiment: Experiment) -> list[MetricRow]:
    """A card's metric rows: retrieval for retrieval models, ranking for ranking models, both for multitask."""
    rows = []
    if experiment.makes_lists:
        cells = [MetricCell(m, SHORT_LABELS[m], getattr(experiment, m)) for m in RETRIEVAL_METRICS]
        rows.append(MetricRow("Two-stage lists" if experiment.is_two_stage else "Retrieval", cells))
        metrics = experiment.all_metrics
        lifts = [
            recall_cell(metrics, k, subset, f"{SUBSET_SHORT[subset]}@{k}") for subset in SUBSETS for k in CARD_LIFT_KS
        ]
        lifts = [c for c in lifts if c.lift is not None]
        if lifts:
            rows.append(MetricRow("Lift over best baseline", lifts, beside_baseline=True))
    if experiment.model_section.has_ranking:
        names = RANKING_METRICS if has_validation(experiment) else RANKING_METRICS[2:]
        rows.append(MetricRow("Ranking", [MetricCell(m, SHORT_LABELS[m], getattr(experiment, m)) for m in names]))
    return rows


def has_validation(experiment: Experiment) -> bool:
    """Whether the experiment held out a validation split (without one the engine copies the test errors)."""
    split = ((experiment.spec or {}).get("data") or {}).get("split") or {}
    return bool(split.get("validation_fraction"))


def error_scale(experiment: Experiment) -> str:
    """What the rating errors are measured on: the target after its transform, e.g. "log1p(total_sales)"."""
    features = (experiment.spec or {}).get("features") or {}
    target, transform = features.get("target") or "the target", features.get("target_transform") or "none"
    return target if transform == "none" else f"{transform}({target})"


def measured(experiment: Experiment, metric: str) -> float | None:
    """A headline metric's value; None for validation errors of a run without a validation split (the engine
    copies the test errors there, which would read as a second measurement)."""
    if metric in RANKING_METRICS[:2] and not has_validation(experiment):
        return None
    return getattr(experiment, metric)


def summary(experiment: Experiment) -> list[MetricRow]:
    """The detail page's metrics: recall of all pairs, re-orders and new products, each with the best baseline
    beside it; the errors on their scale, the test RMSE beside the mean predictor's, and the validation errors only
    when there was a validation split."""
    rows = []
    other = experiment.other_metrics or {}
    if experiment.makes_lists:
        metrics = experiment.all_metrics
        headline = "Two-stage lists" if experiment.is_two_stage else "Retrieval"
        for subset, task in SUBSETS.items():
            cells = [recall_cell(metrics, k, subset, f"Recall@{k}") for k in KS]
            if subset == ALL or any(c.value is not None for c in cells):
                rows.append(MetricRow(headline if subset == ALL else task, cells, beside_baseline=True))
    if experiment.model_section.has_ranking:
        names = RANKING_METRICS if has_validation(experiment) else RANKING_METRICS[2:]
        cells = [MetricCell(m, LABELS[m], getattr(experiment, m), other.get(f"{m}_mean_baseline")) for m in names]
        rows.append(MetricRow("Ranking", cells, f"on {error_scale(experiment)}"))
    return rows


def is_active(experiment: Experiment) -> bool:
    """Pending or running: its pages keep polling."""
    return experiment.status in ACTIVE


# ------------------------------------------------------------------------------------------- compare


def compared(organisation: Organisation, ids: list[int]) -> list[Experiment]:
    """The organisation's experiments `ids` in the order given; Http404 names any that is not theirs."""
    wanted = list(dict.fromkeys(ids))
    found = {e.pk: e for e in experiments(organisation).filter(pk__in=wanted)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise Http404(f"No experiment {', '.join(map(str, missing))} in your organisation.")
    return [found[i] for i in wanted]


def comparison(chosen: list[Experiment]) -> list[MetricRow]:
    """The eight metrics side by side, one row per metric, the best value of each row marked.

    Best is the largest recall and the smallest error (the platform's `compare` decides); rows no chosen
    experiment measured are left out, so a comparison of retrieval models shows no empty error rows.
    """
    best = services.compare(chosen)["best"]
    rows = []
    for m in (*RETRIEVAL_METRICS, *RANKING_METRICS):
        values = [measured(e, m) for e in chosen]
        cells = [
            MetricCell(m, e.name, v, best=v is not None and best[m] == e.pk)
            for e, v in zip(chosen, values, strict=True)
        ]
        if any(c.value is not None for c in cells):
            rows.append(MetricRow(LABELS[m], cells))
    return rows


# ------------------------------------------------------------------------------------------ dashboard


def counts(organisation: Organisation) -> dict[str, int]:
    """How many datasets, configs and experiments the organisation has (the dashboard's tiles)."""
    return {
        "datasets": Dataset.objects.of(organisation).count(),
        "feature_configs": FeatureConfig.objects.of(organisation).count(),
        "model_configs": ModelConfig.objects.of(organisation).count(),
        "experiments": Experiment.objects.of(organisation).count(),
    }


def dashboard_panel(organisation: Organisation, tab: str, by: str = "") -> dict[str, Any]:
    """One model type's tab: the tabs with their counts, the leaderboard and the best-so-far series.

    Without a valid `tab`, the type of the latest completed experiment is shown (multitask when none).
    by="lift" ranks a retrieval tab by its lift over the best baseline instead of its raw metric.
    """
    if tab not in MODEL_TYPES:
        latest = experiments(organisation, status=Status.COMPLETED).order_by("-finished_at").first()
        tab = latest.model_type if latest else "multitask"
    done = experiments(organisation, status=Status.COMPLETED)
    return {
        "tab": tab,
        "tabs": [(t, done.filter(model_type=t).count()) for t in MODEL_TYPES],
        "by": by if by == "lift" and ModelSpec(type=tab).has_retrieval else "",
        "leaderboard": leaderboard(organisation, tab, by=by),
        "metric": "lift over the best baseline at Recall@100" if by == "lift" else LABELS[PRIMARY_METRIC[tab]],
        "best": best_over_time(organisation, tab),
    }


def leaderboard(
    organisation: Organisation, model_type: str, limit: int = 10, *, by: str = ""
) -> list[tuple[Experiment, MetricCell | None]]:
    """Completed experiments of one model type, best first by the type's primary metric, each with its
    Recall@100 beside the best baseline (None for ranking models).

    by="lift" (retrieval and multitask): best first by the lift over the best baseline; experiments measured
    without baselines come last.
    """
    metric = PRIMARY_METRIC[model_type]
    order = f"-{metric}" if HIGHER_IS_BETTER[metric] else metric
    qs = experiments(organisation, status=Status.COMPLETED, model_type=model_type).filter(
        **{f"{metric}__isnull": False}
    )
    by_lift = by == "lift" and ModelSpec(type=model_type).has_retrieval
    done = qs.order_by(order, "-finished_at") if by_lift else qs.order_by(order, "-finished_at")[:limit]
    rows = [
        (e, recall_cell(e.all_metrics, 100, ALL, "Lift@100") if ModelSpec(type=model_type).has_retrieval else None)
        for e in done
    ]
    if by_lift:  # the lift lives in each experiment's metrics JSON, so it is sorted here
        rows.sort(key=lambda row: (row[1].lift is None, -(row[1].lift or 0.0)))
    return rows[:limit]


def best_over_time(organisation: Organisation, model_type: str) -> dict[str, list[Any]]:
    """The best value reached so far of each of the type's headline metrics, after each completed run.

    Returns {"labels": [finish dates], metric: [running best, …]} in finishing order; a multitask type
    follows both its recall@100 and its test RMSE.
    """
    metrics = {"retrieval": ["recall_at_100"], "ranking": ["test_rmse"], "multitask": ["recall_at_100", "test_rmse"]}
    done = experiments(organisation, status=Status.COMPLETED, model_type=model_type).order_by("finished_at", "pk")
    out: dict[str, list[Any]] = {"labels": [], **{m: [] for m in metrics[model_type]}}
    best: dict[str, float | None] = dict.fromkeys(metrics[model_type])
    for e in done:
        values = {m: getattr(e, m) for m in metrics[model_type]}
        if all(v is None for v in values.values()):
            continue
        for m, v in values.items():
            if v is not None and (best[m] is None or (v > best[m] if HIGHER_IS_BETTER[m] else v < best[m])):
                best[m] = v
            out[m].append(best[m])
        out["labels"].append(e.finished_at.strftime("%d %b %H:%M") if e.finished_at else f"#{e.pk}")
    return out


def mlflow_run_url(experiment: Experiment) -> str:
    """The run's page in the MLflow UI when the tracking store is an MLflow server (its UI lives at the same
    address); "" for a file or database store, which has no UI until someone starts `mlflow ui` on it."""
    uri = settings.MLFLOW_TRACKING_URI or ""
    if not experiment.mlflow_run_id or not uri.startswith(("http://", "https://")):
        return ""
    return f"{uri.rstrip('/')}/#/runs/{experiment.mlflow_run_id}"


# -------------------------------------------------------------------------------------------- datasets


def profile_tables(dataset: Dataset, bars: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Each file's profile for the statistics table: its columns with the role they play and their histogram.

    `bars` (role → column → bars, from :mod:`histograms`) is None while the histograms are still loading.
    """
    roles = {
        dataset.buyer_id_column: "buyer id",
        dataset.product_id_column: "product id",
        dataset.timestamp_column: "timestamp",
    }
    keys = {"buyers": dataset.buyers_key, "products": dataset.products_key}
    out, mostly_numeric = [], dataset.mostly_numeric()
    for role in ("transactions", "buyers", "products"):
        table = dataset.profile.get(role)
        if not table:
            continue
        columns = []
        for column in table.get("columns", []):
            name = column["name"]
            tag = roles.get(name) if role == "transactions" else ("join key" if name == keys[role] else None)
            columns.append(
                {
                    **column,
                    "tag": tag,
                    # An id's size says nothing, nor does the mean of a time: those statistics are not shown.
                    "is_id": tag in ("buyer id", "product id", "join key"),
                    "has_mean": tag is None,
                    # Ids, numbers and times have ranges to mark under their histogram; categories do not.
                    "has_range": tag is not None or is_numeric(column["type"]) or "TIME" in column["type"].upper(),
                    "bars": None if bars is None else bars.get(role, {}).get(name, []),
                    # Numbers but for a few values: as a target, those values' rows are dropped and counted.
                    "not_numbers": mostly_numeric.get(name) or None,
                }
            )
        file_name = (dataset.original_names or {}).get(role, role)
        out.append(
            {
                "role": role,
                "file": file_name,
                "rows": table.get("rows", 0),
                "format": table.get("format"),
                "columns": columns,
            }
        )
    return out
