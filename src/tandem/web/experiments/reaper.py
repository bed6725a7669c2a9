"""Finding runs whose worker died, and marking them failed with the reason so they can be run again.

A running experiment is dead when its heartbeat is older than TANDEM_HEARTBEAT_TIMEOUT, or, found when a
worker starts on the same host, when the process named in its `worker` field no longer exists. Checks run
when a worker starts, periodically inside every worker, and when the API lists or reads experiments.
"""

from __future__ import annotations

import errno
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from tandem.web.experiments.models import Experiment, Status
from tandem.web.experiments.signals import announce_end


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM  # exists, owned by someone else
    return True


def _mark_lost(experiment: Experiment, reason: str) -> bool:
    now = timezone.now()
    n = Experiment.objects.filter(pk=experiment.pk, attempt=experiment.attempt, status=Status.RUNNING).update(
        status=Status.FAILED, finished_at=now, error=reason
    )
    if n and experiment.task_id:
        # The queue's own record would say "running" for ever too.
        DBTaskResult.objects.filter(id=experiment.task_id, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED, finished_at=now, exception_class_path="tandem.WorkerLost", traceback=reason
        )
    if n:
        announce_end(experiment.pk)
    return bool(n)


def reap_expired() -> int:
    """Fail running experiments whose heartbeat is older than the timeout; returns how many."""
    timeout = settings.TANDEM_HEARTBEAT_TIMEOUT
    limit = timezone.now() - timedelta(seconds=timeout)
    stale = Experiment.objects.filter(status=Status.RUNNING).filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at=None))
    count = 0
    for experiment in stale:
        last = experiment.heartbeat_at.isoformat(timespec="seconds") if experiment.heartbeat_at else "never"
        reason = (
            f"The worker running this experiment ({experiment.worker or 'unknown'}) stopped responding: no heartbeat "
            f"for over {timeout:g} seconds (last: {last}). It probably died; re-run the experiment."
        )
        count += _mark_lost(experiment, reason)
    return count


def reap_local_orphans() -> int:
    """Fail running experiments of this host whose worker process is gone (call when a worker starts)."""
    host = socket.gethostname()
    count = 0
    for experiment in Experiment.objects.filter(status=Status.RUNNING, worker__startswith=f"{host}:"):
        pid_text = experiment.worker.rsplit(":", 1)[1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            reason = (
                f"The worker process running this experiment ({experiment.worker}) exited during the run; found "
                "when a worker started. Re-run the experiment."
            )
            count += _mark_lost(experiment, reason)
    return count
