"""What other apps (studies) hear from an experiment's run, without the experiments app knowing them.

`run_callbacks`: sent when a worker starts a run; each receiver returns a list of engine callbacks to add.
`run_tags`: sent when a run's MLflow run is created; each receiver returns tags to add (a parent run's id).
`run_ended`: sent once a run is over, however it ended (completed, failed, cancelled, its worker lost).
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("tandem.web.experiments")

run_callbacks = Signal()
run_tags = Signal()
run_ended = Signal()


def extra_callbacks(experiment: Any) -> list[Any]:
    """Every receiver's callbacks for this experiment's run."""
    return [
        cb for _, callbacks in run_callbacks.send(sender=type(experiment), experiment=experiment) for cb in callbacks
    ]


def extra_tags(experiment: Any) -> dict[str, str]:
    """Every receiver's MLflow tags for this experiment's run."""
    return {k: v for _, tags in run_tags.send(sender=type(experiment), experiment=experiment) for k, v in tags.items()}


def announce_end(experiment_id: int) -> None:
    """Tell the receivers a run ended; a receiver's failure is logged, never the worker's."""
    from tandem.web.experiments.models import Experiment

    for receiver, outcome in run_ended.send_robust(sender=Experiment, experiment_id=experiment_id):
        if isinstance(outcome, Exception):
            logger.error("after experiment %s ended, %s failed", experiment_id, receiver, exc_info=outcome)
