"""Background work: profiling a dataset's files on the worker that runs experiments (`manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def profile_dataset(dataset_id: int) -> str:
    """Compute the statistics of dataset `dataset_id`'s files; it ends ready, or failed with the reason."""
    from tandem.web.datasets.services import profile

    return profile(dataset_id)
