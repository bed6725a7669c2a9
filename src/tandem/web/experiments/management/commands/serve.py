"""`manage.py serve`: the platform as it runs for real: gunicorn workers, DEBUG off, static files by whitenoise.

It migrates, collects the static files, stops model servers an earlier platform left running, then runs
gunicorn (and, unless --no-worker, a task worker) until SIGINT or SIGTERM, after which it stops both and every
model server started by Deploy. Set TANDEM_HTTPS=1 where people reach it over HTTPS (see the README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tandem.web.deployments import services as deployments
from tandem.web.experiments.management.commands.demo import interrupt, stop_processes


class Command(BaseCommand):
    """serve [--bind HOST:PORT] [--workers N] [--threads N] [--no-worker]"""

    help = "Serve the platform with gunicorn and whitenoise (DEBUG off), with a task worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="address to bind (default 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
        parser.add_argument("--timeout", type=int, default=120, help="seconds before a silent worker is restarted")
        parser.add_argument("--no-worker", action="store_true", help="do not start a task worker here")

    def handle(
        self, *args: Any, bind: str, workers: int, threads: int, timeout: int, no_worker: bool, **_: Any
    ) -> None:
        if settings.DEBUG:
            raise CommandError("TANDEM_DEBUG=1 is for development; unset it to serve the platform.")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if n := deployments.stop_all():
            self.stdout.write(f"Stopped {n} model server(s) left by an earlier run.")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, interrupt)
        gunicorn = [
            sys.executable, "-m", "gunicorn", "tandem.web.wsgi:application", "--bind", bind,
            "--workers", str(workers), "--threads", str(threads), "--timeout", str(timeout),
            "--graceful-timeout", "10", "--access-logfile", "-",
        ]  # fmt: skip
        procs = [subprocess.Popen(gunicorn, env=os.environ.copy())]
        if not no_worker:
            worker = [sys.executable, "-m", "tandem.web", "db_worker", "--no-reload", "--interval", "1"]
            procs.append(subprocess.Popen(worker, env=os.environ.copy()))
        self.stdout.write(f"Serving on http://{bind}/ (SIGINT or SIGTERM stops it)", ending="\n")
        self.stdout.flush()
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            self.stderr.write("a process of the platform exited; stopping the others")
        except KeyboardInterrupt:
            self.stdout.write("Stopping …")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # gunicorn: graceful; the worker: finish the task in hand
            stop_processes(procs)
            if n := deployments.stop_all():
                self.stdout.write(f"Stopped {n} model server(s).")
