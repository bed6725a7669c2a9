"""Optuna's side of a study: its storage, sampler and pruner, taking the next trial under the caller's lock,
and recording how a trial ended (its metrics, or why it was pruned or failed) in the study's storage.

Trials are asked for and told explicitly (Optuna's ask-and-tell), so the CLI's worker processes and the
platform's workers run them the same way: take a trial while holding a lock (a file lock, a database row
lock), so the budget is exact and a grid point is never taken twice; run it; tell the study.
"""

from __future__ import annotations

import contextlib
import statistics
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.pool import NullPool

from tandem.errors import Problem, SpecError, TandemError
from tandem.study.objectives import Objective
from tandem.study.space import Space

SAMPLERS = ("grid", "random", "tpe", "nsga2")
PRUNERS = ("none", "median", "halving")
# How often a running trial tells the storage it is alive, and how long a silent one is left before it is
# failed (its worker died): Optuna's heartbeat.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 30
# What a trial keeps in the storage: its metrics, and why it ended when it did not complete.
METRICS_ATTR, REASON_ATTR = "metrics", "reason"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def check_search(space: Space, objectives: list[Objective], sampler: str, pruner: str, validation: float) -> None:
    """Refuse a sampler or pruner that cannot serve this space and these objectives, naming why."""
    problems = []
    if sampler == "grid" and space.grid() is None:
        continuous = [p.path for p in space.params if p.grid() is None]
        problems.append(Problem("--sampler", f"a grid needs listed values or stepped ranges; {continuous} are not"))
    if pruner != "none" and len(objectives) > 1:
        problems.append(Problem("--prune", "pruning follows one objective; this study has several"))
    if pruner != "none" and validation <= 0:
        problems.append(Problem("--prune", "pruning reads per-epoch validation metrics: set "
                                           "data.split.validation_fraction above 0"))  # fmt: skip
    if problems:
        raise SpecError(problems)


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid, without its stop after the last point: the caller's budget ends the study (and Optuna's
    stop works only inside `optimize`, which ask-and-tell does not use)."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        pass


def make_sampler(name: str, space: Space, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's grid, random, TPE (multi-objective when there are several objectives) or NSGA-II sampler."""
    if name == "grid":
        return _Grid(space.grid(), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # several objectives: Optuna's multi-objective TPE


def make_pruner(name: str, startup_trials: int) -> optuna.pruners.BasePruner:
    """Stop hopeless trials from their per-epoch validation metric: median rule or successive halving."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, min_early_stopping_rate=0)
    return optuna.pruners.NopPruner()


def storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage (a SQLite file or the platform's PostgreSQL). With heartbeats, a trial whose worker
    was killed is failed instead of running for ever (the platform has its own, on the trial's experiment)."""
    # No pool: a connection lives as long as one storage call, so none is left open (a database can be dropped,
    # a process forked) and a short-lived worker holds nothing between trials.
    engine_kwargs: dict[str, Any] = {"poolclass": NullPool}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    if not heartbeat:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    with _heartbeat_warnings_off():
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
        )


@contextlib.contextmanager
def _heartbeat_warnings_off() -> Iterator[None]:
    """Optuna calls its heartbeat experimental, and meant for `optimize`; here it serves ask-and-tell.

    Only the heartbeat's users (the CLI's workers) pass through here: warning filters are process-wide, and a
    threaded server changing them from several threads at once would drop one thread's filter.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def open_study(
    url: str,
    name: str,
    objectives: list[Objective],
    space: Space,
    *,
    heartbeat: bool = True,
    sampler: str = "tpe",
    pruner: str = "none",
    startup_trials: int = 3,
    seed: int = 0,
) -> optuna.Study:
    """Create the study, or load it when it exists (another worker of the same study)."""
    return optuna.create_study(
        storage=storage(url, heartbeat=heartbeat),
        study_name=name,
        directions=[o.direction for o in objectives],
        sampler=make_sampler(sampler, space, seed),
        pruner=make_pruner(pruner, startup_trials),
        load_if_exists=True,
    )


def claim(study: optuna.Study, space: Space, budget: int, sampler: str, seed: int) -> optuna.Trial | None:
    """The next trial with its parameters, or None when the budget (all trials, however they ended) is spent.

    Call it holding the study's lock: counting and asking must not interleave with another worker's. Every
    worker's sampler starts from the same seed, so each ask but the grid's (which draws nothing) is seeded by the
    trial's number: two workers, or two asks of the platform's fresh samplers, never draw the same values.
    """
    beating = is_heartbeat_enabled(study._storage)
    if beating:
        fail_stale(study)
    taken = len(study.get_trials(deepcopy=False))
    if taken >= budget:
        return None
    if sampler != "grid":
        study.sampler = make_sampler(sampler, space, seed + taken)
    if not beating:
        return study.ask(space.distributions())
    with _heartbeat_warnings_off():
        trial = study.ask(space.distributions())
    study._storage.record_heartbeat(trial._trial_id)  # alive from the start, not from its first beat
    return trial


def fail_stale(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat went stale: their worker died."""
    with _heartbeat_warnings_off():
        optuna.storages.fail_stale_trials(study)


def finish(study: optuna.Study, number: int, state: TrialState, *, values: list[float] | None = None,
           metrics: dict[str, Any] | None = None, reason: str = "") -> FrozenTrial:  # fmt: skip
    """Record a trial's end: metrics and reason as attributes, then its state (values when complete)."""
    trial = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    if trial.state.is_finished():
        return trial  # failed meanwhile (its heartbeat went stale): the first word stands
    if metrics is not None:
        study._storage.set_trial_user_attr(trial._trial_id, METRICS_ATTR, metrics)
    if reason:
        study._storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, reason)
    return study.tell(number, values if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)


class Pruned(TandemError):
    """The pruner stopped the trial; the message says at which epoch and why."""


class PruningCallback:
    """Reports the monitored validation metric each epoch and stops the run (raising Pruned, with the
    reason) as soon as the pruner says so. `last` keeps the latest epoch's record: a pruned trial's metrics."""

    def __init__(self, trial: optuna.Trial, objective: Objective | None, pruner: str) -> None:
        self.trial, self.objective, self.pruner = trial, objective, pruner
        self.last: dict[str, Any] = {}

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, record: dict[str, Any], weights: dict[str, Any]) -> None:
        self.last = {k: v for k, v in record.items() if isinstance(v, int | float)}
        if self.objective is None or self.pruner == "none":
            return
        key = self.objective.monitored
        value = record.get(key)
        if not isinstance(value, int | float):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise Pruned(self._reason(epoch, key, float(value)))

    def _reason(self, epoch: int, key: str, value: float) -> str:
        others = [
            t.intermediate_values[epoch]
            for t in self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if epoch in t.intermediate_values
        ]
        against = (
            f"; the median of {len(others)} completed trials there was {statistics.median(others):.4g}"
            if others
            else ""
        )
        return f"pruned after epoch {epoch} by the {self.pruner} pruner: {key} = {value:.4g}{against}"


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Any:
    """A context that beats for the trial while it runs (data loading and evaluation included)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)
