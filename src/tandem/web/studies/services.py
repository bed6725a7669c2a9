"""What the pages and workers do with studies: create one from an experiment, keep it going, cancel, promote.

`advance` is the one step that moves a study: under the study's lock (its row, FOR UPDATE, on PostgreSQL; a
file lock beside the SQLite database, whose writers Optuna's own connection must not wait behind), it tells
Optuna how each ended trial's experiment ended, then takes new trials up to the parallelism and the budget and
queues each as an ordinary experiment. It runs when the study is created and whenever one of its trials'
runs ends (the worker that ran it, the reaper that found its worker dead, a cancel), so N workers on any
machines keep one study going and no trial is taken twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from tandem.errors import SpecError, TandemError
from tandem.study import search
from tandem.study.objectives import objective_values, parse_objectives, with_lifts
from tandem.study.record import best_number, pareto_numbers
from tandem.study.space import Space, check_space, parse_space, with_values
from tandem.study.worker import file_lock, problems_text
from tandem.web import engine
from tandem.web.accounts.models import Organisation
from tandem.web.configs import services as config_services
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.errors import Conflict
from tandem.web.experiments import limits
from tandem.web.experiments import services as experiment_services
from tandem.web.experiments.models import ACTIVE, Experiment, Status
from tandem.web.studies.models import MAX_PARALLELISM, MAX_TRIALS, Study, StudyStatus, StudyTrial, TrialState

logger = logging.getLogger("tandem.web.studies")
# The samplers' seed (each trial's draw is seeded by its number, see tandem.study.search.claim).
SEED = 0

OPTUNA_STATES = {
    TrialState.COMPLETE: optuna.trial.TrialState.COMPLETE,
    TrialState.PRUNED: optuna.trial.TrialState.PRUNED,
    TrialState.FAILED: optuna.trial.TrialState.FAIL,
}


def storage_url() -> str:
    """The platform's own database as a SQLAlchemy URL, for Optuna's RDB storage."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql+psycopg://{db.get('USER') or ''}{password}@{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def space_of(study: Study) -> Space:
    return parse_space(list(study.params))


def optuna_study(study: Study) -> optuna.Study:
    """The study's Optuna side (created on first use). The platform's heartbeats are its experiments'."""
    return search.open_study(storage_url(), study.optuna_name, parse_objectives(list(study.objectives)),
                             space_of(study), heartbeat=False, sampler=study.sampler, pruner=study.pruner,
                             startup_trials=3, seed=SEED)  # fmt: skip


@contextlib.contextmanager
def study_lock(study_id: int) -> Iterator[None]:
    """One worker at a time moves a study."""
    if connection.vendor == "sqlite":
        with file_lock(Path(connection.settings_dict["NAME"]).with_name(f"study-{study_id}.lock")):
            yield
    else:
        with transaction.atomic():
            list(Study.objects.select_for_update().filter(pk=study_id).values_list("pk"))
            yield


def _field_problems(data: Mapping[str, Any]) -> tuple[dict[str, list[str]], Space | None, list[Any]]:
    errors: dict[str, list[str]] = {}
    space, objectives = None, []
    for field, parse in (("params", parse_space), ("objectives", parse_objectives)):
        values = data.get(field) or []
        if isinstance(values, str):
            values = [line.strip() for line in values.splitlines() if line.strip()]
        try:
            parsed = parse(list(values))
        except SpecError as e:
            errors[field] = [str(p) for p in e.problems]
            continue
        if field == "params":
            space = parsed
        else:
            objectives = parsed
    for field, low, high in (("n_trials", 1, MAX_TRIALS), ("parallelism", 1, MAX_PARALLELISM)):
        value = data.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors[field] = [f"a whole number from {low} to {high}, got {value!r}"]
    for field, choices in (("sampler", search.SAMPLERS), ("pruner", search.PRUNERS)):
        if data.get(field) not in choices:
            errors[field] = [f"one of {', '.join(choices)}, got {data.get(field)!r}"]
    return errors, space, objectives


def create_study(
    organisation: Organisation, user: AbstractBaseUser | None, base: Experiment, data: Mapping[str, Any]
) -> Study:
    """Validate everything (each searched value as a spec) before any trial; create the study; start trials.

    Raises ValidationError listing every problem by field, and OverBudget (429) when the queue is full.
    """
    data = {"sampler": "tpe", "pruner": "none", "n_trials": 20, "parallelism": 2, **dict(data)}
    errors, space, objectives = _field_problems(data)
    name = str(data.get("name") or "").strip() or f"Tune {base.name}"
    if space is not None:
        try:
            check_space(dict(base.spec), Path(settings.MEDIA_ROOT), space)
        except SpecError as e:
            errors.setdefault("params", []).extend(str(p) for p in e.problems)
    if space is not None and objectives and not errors:
        try:
            validation = float((base.spec.get("data") or {}).get("split", {}).get("validation_fraction") or 0)
            search.check_search(space, objectives, data["sampler"], data["pruner"], validation)
        except SpecError as e:
            errors.setdefault("pruner" if "--prune" in str(e) else "sampler", []).extend(p.message for p in e.problems)
    if errors:
        raise ValidationError({k: [ValidationError(m, code="invalid") for m in v] for k, v in errors.items()})
    limits.check_queue(organisation)
    grid = space.grid_size() if data["sampler"] == "grid" else None
    study = Study.objects.create(
        organisation=organisation, created_by=user, name=name[:200], base=base,
        params=[p.text for p in space.params], objectives=[str(o) for o in objectives], sampler=data["sampler"],
        pruner=data["pruner"], n_trials=min(data["n_trials"], grid) if grid else data["n_trials"],
        parallelism=data["parallelism"], optuna_name=f"tandem-{uuid.uuid4().hex}",
    )  # fmt: skip
    optuna_study(study)
    _start_parent_run(study)
    advance(study.pk)
    study.refresh_from_db()
    return study


def _start_parent_run(study: Study) -> None:
    """With MLflow on, the study is a parent run (the base spec as parameters) whose children are its trials."""
    if not settings.MLFLOW_TRACKING_URI:
        return
    try:
        from tandem.tracking.mlflow import MlflowTracker

        tracker = MlflowTracker(settings.MLFLOW_TRACKING_URI, experiment_name=settings.MLFLOW_EXPERIMENT_NAME,
                                run_name=f"study: {study.name}", artifact_location=settings.MLFLOW_ARTIFACT_ROOT,
                                tags={"tandem.study_id": str(study.pk), "tandem.objectives": ", ".join(study.objectives),
                                      "tandem.search": "; ".join(study.params)})  # fmt: skip
        run_id = tracker.start(engine.parse(dict(study.base.spec), base=Path(settings.MEDIA_ROOT)))
    except Exception:  # tracking is a convenience: the study runs without it
        logger.warning("MLflow parent run of study %s could not start", study.pk, exc_info=True)
        return
    Study.objects.filter(pk=study.pk).update(mlflow_run_id=run_id)


def _end_parent_run(study: Study) -> None:
    if not (settings.MLFLOW_TRACKING_URI and study.mlflow_run_id):
        return
    try:
        from mlflow import MlflowClient

        MlflowClient(settings.MLFLOW_TRACKING_URI).set_terminated(study.mlflow_run_id, "FINISHED")
    except Exception:
        logger.warning("MLflow parent run of study %s could not end", study.pk, exc_info=True)


def parent_run_tags(sender: Any, experiment: Experiment, **kwargs: Any) -> dict[str, str]:
    """A trial's MLflow run is a child of its study's run."""
    row = StudyTrial.objects.select_related("study").filter(experiment=experiment).first()
    if row is None or not row.study.mlflow_run_id:
        return {}
    return {"mlflow.parentRunId": row.study.mlflow_run_id, "tandem.study_id": str(row.study_id),
            "tandem.trial": str(row.number)}  # fmt: skip


def _tell(ostudy: optuna.Study, study: Study, trial: StudyTrial) -> None:
    """Record in Optuna (and on the trial) how its experiment ended."""
    e = trial.experiment
    metrics: dict[str, Any] = {}
    values: list[float] = []
    if e is None:
        state = TrialState.FAILED
    elif e.status == Status.COMPLETED:
        metrics = with_lifts({k: v for k, v in e.all_metrics.items() if isinstance(v, int | float)})
        try:
            values = objective_values(parse_objectives(list(study.objectives)), metrics)
        except TandemError as err:
            trial.reason = str(err)
        finite = values and all(math.isfinite(v) for v in values)
        state = TrialState.COMPLETE if finite else TrialState.FAILED
        if values and not finite:
            trial.reason = "an objective is not a finite number (the model diverged?)"
    elif trial.state == TrialState.PRUNED:
        state = TrialState.PRUNED
        metrics = dict((e.history or [{}])[-1])
    else:
        state = TrialState.FAILED
        trial.reason = trial.reason or e.error or f"the experiment was {e.status}"
    search.finish(ostudy, trial.number, OPTUNA_STATES[state], values=values or None, metrics=metrics,
                  reason=trial.reason)  # fmt: skip
    trial.state, trial.values = state, values if state == TrialState.COMPLETE else []
    trial.save(update_fields=["state", "values", "reason"])


def _start_trial(ostudy: optuna.Study, study: Study, space: Space) -> bool:
    """Take the next trial and queue its experiment; False when the budget is spent."""
    trial = search.claim(ostudy, space, study.n_trials, study.sampler, SEED)
    if trial is None:
        return False
    values = space.spec_values(trial.params)
    row = StudyTrial(study=study, number=trial.number, optuna_trial_id=trial._trial_id, params=values)
    raw = with_values(dict(study.base.spec), values)
    raw["name"] = f"{study.name} · trial {trial.number}"
    try:
        spec = engine.parse(raw, base=Path(settings.MEDIA_ROOT))
    except SpecError as e:
        row.reason = problems_text(e)
        row.save()
        _tell(ostudy, study, row)
        return True
    base = study.base
    experiment = Experiment.objects.create(
        organisation=study.organisation, created_by=study.created_by, name=raw["name"][:200],
        description=f"Trial {trial.number} of the study “{study.name}”.", dataset=base.dataset,
        feature_config=base.feature_config, model_config=base.model_config, model_type=spec.model.type,
        sample_fraction=base.sample_fraction, split_kind=base.split_kind, test_fraction=base.test_fraction,
        validation_fraction=base.validation_fraction, split_cutoff=base.split_cutoff, seed=base.seed, spec=raw,
    )  # fmt: skip
    row.experiment = experiment
    row.save()
    experiment_services.queue(experiment)
    return True


def advance(study_id: int) -> None:
    """Tell Optuna about ended trials, start new ones up to the parallelism and budget, mark the study done."""
    with study_lock(study_id):
        study = Study.objects.select_related("base").get(pk=study_id)
        ostudy = optuna_study(study)
        told = ostudy.get_trials(deepcopy=False)
        for trial in study.trials.filter(state__in=(TrialState.RUNNING, TrialState.PRUNED)).select_related(
            "experiment"
        ):
            ended = trial.experiment is None or trial.experiment.status not in ACTIVE
            if ended and not told[trial.number].state.is_finished():
                _tell(ostudy, study, trial)
        if study.status != StudyStatus.RUNNING:
            return
        space = space_of(study)
        running = study.trials.filter(state=TrialState.RUNNING).count()
        more = True
        while running < study.parallelism:
            more = _start_trial(ostudy, study, space)
            if not more:
                break
            running = study.trials.filter(state=TrialState.RUNNING).count()
        if not more and running == 0:
            Study.objects.filter(pk=study_id).update(status=StudyStatus.COMPLETED, finished_at=timezone.now())
            _end_parent_run(study)


def trial_ended(sender: Any, experiment_id: int, **kwargs: Any) -> None:
    """A run ended: when it was a study's trial, move the study on."""
    study_id = StudyTrial.objects.filter(experiment_id=experiment_id).values_list("study_id", flat=True).first()
    if study_id is not None:
        advance(study_id)


class _PlatformPruning(search.PruningCallback):
    """The engine's pruning callback, which also marks the trial pruned (with the reason) before the run stops."""

    def __init__(self, trial: optuna.Trial, objective: Any, pruner: str, row_id: int) -> None:
        super().__init__(trial, objective, pruner)
        self.row_id = row_id

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None:
        try:
            super().on_epoch_end(epoch, record, weights)
        except search.Pruned as e:
            StudyTrial.objects.filter(pk=self.row_id).update(state=TrialState.PRUNED, reason=str(e))
            raise


def pruning_callbacks(sender: Any, experiment: Experiment, **kwargs: Any) -> list[Any]:
    """A study trial's run reports its validation metric to Optuna's pruner each epoch."""
    row = StudyTrial.objects.select_related("study").filter(experiment=experiment).first()
    if row is None or row.study.pruner == "none":
        return []
    ostudy = optuna_study(row.study)
    objective = parse_objectives(list(row.study.objectives))[0]
    return [_PlatformPruning(optuna.trial.Trial(ostudy, row.optuna_trial_id), objective, row.study.pruner, row.pk)]


def cancel(study: Study) -> Study:
    """Stop taking trials and cancel the running ones."""
    n = Study.objects.filter(pk=study.pk, status=StudyStatus.RUNNING).update(
        status=StudyStatus.CANCELLED, finished_at=timezone.now()
    )
    if n == 0:
        raise Conflict(f"Only a running study can be cancelled; this one is {study.status}.", code="not_active")
    for trial in study.trials.filter(experiment__status__in=ACTIVE).select_related("experiment"):
        experiment_services.cancel(trial.experiment)
    study.refresh_from_db()
    return study


def pareto(study: Study) -> list[int]:
    """The trial numbers of the Pareto set (for one objective, the best trial), as Optuna computes it."""
    return pareto_numbers(optuna_study(study))


def best_trial(study: Study) -> int | None:
    """The trial "promote the best" copies: the best, or of the Pareto set the best on the first objective."""
    return best_number(optuna_study(study))


def importances(ostudy: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances for the first objective ({} until two trials with different values)."""
    complete = [t for t in ostudy.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    # Importances of the first objective: a one-objective copy in memory (Optuna's evaluator takes no target
    # without warning, and warning filters are no thing to change in a threaded server).
    first = optuna.create_study(direction=ostudy.directions[0])
    for t in complete:
        first.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.values[0]))
    try:
        found = optuna.importance.get_param_importances(first)
    except (RuntimeError, ValueError, ZeroDivisionError):  # every value equal, or one distinct point
        return {}
    return {name: float(value) for name, value in found.items()}


def promote(trial: StudyTrial, user: AbstractBaseUser | None) -> tuple[FeatureConfig, ModelConfig]:
    """Copy a trial's spec sections as named configs (features; model and training) to build on."""
    if trial.experiment is None or trial.state != TrialState.COMPLETE:
        raise Conflict("Only a completed trial can be promoted.", code="not_complete")
    spec = trial.experiment.spec
    org = trial.study.organisation
    stem = f"{trial.study.name} · trial {trial.number}"
    try:
        features = config_services.create(
            FeatureConfig, organisation=org, user=user, data={"name": f"{stem} features", "features": spec["features"]}
        )
        model = config_services.create(ModelConfig, organisation=org, user=user, data={
            "name": f"{stem} model", "model": spec["model"], "training": spec["training"]})  # fmt: skip
    except ValidationError as e:
        raise Conflict(
            f"The trial's configs could not be saved: {'; '.join(e.messages)}", code="not_promoted"
        ) from None
    return features, model
