"""`manage.py db_worker`: django-tasks-db's worker, plus the reaping of runs whose worker died.

On start it fails this host's running experiments whose worker process is gone; while it runs, a thread
fails running experiments whose heartbeat expired. Everything else is django-tasks-db's worker unchanged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import connection
from django_tasks_db.management.commands.db_worker import Command as BaseWorkerCommand

from tandem.web.experiments.reaper import reap_expired, reap_local_orphans

logger = logging.getLogger("tandem.web.experiments")


def _reap_forever(stop: threading.Event, interval: float) -> None:
    try:
        while not stop.wait(interval):
            try:
                if n := reap_expired():
                    logger.warning("marked %d experiment(s) failed: their worker stopped sending heartbeats", n)
            except Exception:
                logger.warning("reaping expired experiments failed", exc_info=True)
    finally:
        connection.close()


class Command(BaseWorkerCommand):
    """db_worker, with the reaper started first."""

    help = BaseWorkerCommand.help + " (Tandem: also fails experiments whose worker died)"

    def handle(self, *args: Any, **options: Any) -> None:
        if n := reap_local_orphans():
            self.stdout.write(f"marked {n} experiment(s) failed: their worker process on this host is gone")
        reap_expired()
        stop = threading.Event()
        interval = max(1.0, settings.TANDEM_HEARTBEAT_TIMEOUT / 4)
        reaper = threading.Thread(target=_reap_forever, args=(stop, interval), name="reaper", daemon=True)
        reaper.start()
        try:
            super().handle(*args, **options)
        finally:
            stop.set()
