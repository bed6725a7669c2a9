"""Running a study's trials on this machine: take a trial under a lock, run the engine on its spec, tell the study.

Any number of these loops (processes of one `tandem study`, or `tandem study` commands started elsewhere on the
same storage) share one study; the lock makes the budget exact and keeps two workers from taking one grid point.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tandem.errors import SpecError, TandemError
from tandem.study import search
from tandem.study.objectives import Objective, objective_values, with_lifts
from tandem.study.space import Space, trial_spec

ABORTED_ATTR = "aborted"


@dataclass(frozen=True)
class StudySetup:
    """Everything a worker needs to run a study's trials: the base spec, the space, the objectives, the budget."""

    raw: dict[str, Any]
    base: Path | None
    space: Space
    objectives: list[Objective]
    budget: int
    pruner: str = "none"
    sampler: str = "tpe"
    seed: int = 0

    @property
    def pruned_objective(self) -> Objective | None:
        return self.objectives[0] if len(self.objectives) == 1 else None


class StudyAborted(TandemError):
    """A problem that every trial would hit (an objective the runs do not report): the study stops."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on a file, held by one process of this machine at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def problems_text(error: SpecError) -> str:
    return "the spec breaks its rules at these values: " + "; ".join(str(p) for p in error.problems)


def run_trial(study: optuna.Study, trial: optuna.Trial, setup: StudySetup, out: Path | None) -> FrozenTrial:
    """Run one trial to its end and record it: complete (its metrics), pruned or failed (with the reason)."""
    from tandem.run import run

    number = trial.number
    pruning = search.PruningCallback(trial, setup.pruned_objective, setup.pruner)
    try:
        with search.heartbeat(study, trial):
            spec = trial_spec(setup.raw, setup.base, setup.space.spec_values(trial.params))
            result = run(spec, callbacks=[pruning])
    except search.Pruned as e:
        return search.finish(study, number, TrialState.PRUNED, metrics=pruning.last, reason=str(e))
    except SpecError as e:
        return search.finish(study, number, TrialState.FAIL, reason=problems_text(e))
    except TandemError as e:
        return search.finish(study, number, TrialState.FAIL, reason=str(e))
    except Exception as e:  # one trial's crash (a diverging model, a bad combination) must not end the study
        return search.finish(study, number, TrialState.FAIL, reason=f"{type(e).__name__}: {e}")
    except BaseException:
        search.finish(study, number, TrialState.FAIL, reason="the worker was interrupted during the trial")
        raise
    metrics = json.loads(json.dumps(with_lifts(result.metrics)))
    if out is not None:
        result.save(out / "trials" / f"{number:04d}", models=False)
    try:
        values = objective_values(setup.objectives, metrics)
    except TandemError as e:
        search.finish(study, number, TrialState.FAIL, metrics=metrics, reason=str(e))
        raise StudyAborted(str(e)) from None
    broken = [o.metric for o, v in zip(setup.objectives, values, strict=True) if not math.isfinite(v)]
    if broken:
        reason = f"the run's {', '.join(broken)} is not a finite number (the model diverged?)"
        return search.finish(study, number, TrialState.FAIL, metrics=metrics, reason=reason)
    return search.finish(study, number, TrialState.COMPLETE, values=values, metrics=metrics)


def work(study: optuna.Study, setup: StudySetup, lock: Path, out: Path | None) -> int:
    """Take and run trials until the budget is spent or the study is aborted; returns how many this worker ran."""
    ran = 0
    while ABORTED_ATTR not in study.user_attrs:
        with file_lock(lock):
            trial = search.claim(study, setup.space, setup.budget, setup.sampler, setup.seed)
        if trial is None:
            break
        try:
            run_trial(study, trial, setup, out)
        except StudyAborted as e:
            study.set_user_attr(ABORTED_ATTR, str(e))
            raise
        ran += 1
    return ran
