"""Background work: running an experiment on a worker (`python manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def run_experiment(experiment_id: int, attempt: int) -> str:
    """Run attempt `attempt` of experiment `experiment_id`; a stale attempt (cancelled, re-run) is skipped."""
    from tandem.web.experiments.runner import execute

    return execute(experiment_id, attempt)
