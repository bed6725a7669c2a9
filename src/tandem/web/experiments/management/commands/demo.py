"""`manage.py demo`: set up the platform with real data, run the recommended experiment, then serve it with a worker.

Steps (each reuses what an earlier run made): migrate; the demo organisation and user (password and API token
printed); The Complete Journey sample as a dataset; its recommended configs (as "use recommended settings"
makes them), a feature config and retrieval, ranking and multitask model configs; an experiment of each, the
recommended one (two-stage) run to completion before the server starts.
Then the server (http://127.0.0.1:8000) and a worker run until Ctrl-C, which stops both and every model server
started by Deploy; model servers that a demo which died left running are stopped when the next one starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tandem.web.deployments import services as deployments
from tandem.web.experiments.models import Experiment


class Command(BaseCommand):
    """demo [--addr HOST:PORT] [--products N] [--no-serve]"""

    help = "Set up the demo (data, configs, a finished recommended experiment) and serve it with a worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where to serve (default 127.0.0.1:8000)")
        parser.add_argument("--products", type=int, default=1000, help="products in the sample (default 1000)")
        parser.add_argument("--no-serve", action="store_true", help="set up and run, but do not serve")

    def handle(self, *args: Any, addr: str, products: int, no_serve: bool, **options: Any) -> None:
        from tandem.web import demo

        self._mlflow()
        self.stdout.write("1. Migrating the database …")
        call_command("migrate", interactive=False, verbosity=0)
        org, user, password, token = demo.ensure_account()
        self.stdout.write(f"2. Organisation '{org}' with user '{user.get_username()}'")
        self.stdout.write(f"3. Importing The Complete Journey ({products} most bought grocery products) …")
        dataset = demo.ensure_dataset(org, user, products)
        self.stdout.write(f"   dataset '{dataset}': {dataset.row_count:,} transaction lines")
        recommended, fc, models = demo.ensure_configs(org, user, dataset)
        self.stdout.write(
            f"4. Recommended configs '{recommended.feature_config}' and '{recommended.model_config}' (two-stage, "
            f"time split at {recommended.split_cutoff}); '{fc}'; "
            + ", ".join(f"'{m}' ({m.model_type})" for m in models)
        )
        experiments = demo.ensure_experiments(org, user, dataset, recommended, fc, models)
        flagship = experiments[0]
        if flagship.status != "completed":
            self.stdout.write(f"5. Running experiment #{flagship.pk} '{flagship}' (a few minutes) …")
            self._run_now(flagship)
        flagship.refresh_from_db()
        self._report(flagship)
        self.stdout.write(
            self.style.SUCCESS(f"\nSign in at http://{addr}/ as '{user.get_username()}' with password '{password}'")
        )
        self.stdout.write(f"API: http://{addr}/api/docs   token: {token}")
        if not no_serve:
            self.stdout.write("The other experiments run on the worker now. Ctrl-C stops everything.")
            self._serve(addr)

    def _mlflow(self) -> None:
        """The demo tracks experiments in a SQLite MLflow store in the data folder, unless told otherwise."""
        if not settings.MLFLOW_TRACKING_URI:
            uri = f"sqlite:///{settings.DATA_DIR / 'mlflow.db'}"
            os.environ["MLFLOW_TRACKING_URI"] = settings.MLFLOW_TRACKING_URI = uri
        self.stdout.write(f"MLflow tracking: {settings.MLFLOW_TRACKING_URI}")

    def _run_now(self, experiment: Experiment) -> None:
        """Run one queued experiment here, as a worker would, so its results exist before the server starts."""
        from django_tasks_db.models import DBTaskResult

        from tandem.web.experiments.runner import execute

        status = execute(experiment.pk, experiment.attempt)
        DBTaskResult.objects.filter(id=experiment.task_id).delete()  # done here; no worker needs to pick it up
        if status != "completed":
            experiment.refresh_from_db()
            self.stderr.write(f"the experiment ended {status}: {experiment.error}")

    def _report(self, e: Experiment) -> None:
        self.stdout.write(
            f"   #{e.pk} {e.status}: " + ", ".join(f"{k} {v:.4f}" for k, v in e.metrics.items() if v is not None)
        )
        if e.mlflow_run_id:
            self.stdout.write(f"   MLflow run {e.mlflow_run_id}")

    def _serve(self, addr: str) -> None:
        # Ctrl-C and SIGTERM both stop the demo. Handling SIGINT explicitly also undoes an inherited "ignore"
        # (a shell's background job), which the children would otherwise inherit too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, interrupt)
        if n := deployments.stop_all():
            self.stdout.write(f"Stopped {n} model server(s) left by an earlier run.")
        manage = [sys.executable, "-m", "tandem.web"]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        procs = [
            subprocess.Popen([*manage, "runserver", addr, "--noreload", "--insecure"], env=env),
            subprocess.Popen([*manage, "db_worker", "--no-reload", "--interval", "1"], env=env),
        ]
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            self.stderr.write("a process of the demo exited; stopping the others")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the server and the worker …")
        finally:
            stop_processes(procs)
            if n := deployments.stop_all():
                self.stdout.write(f"Stopped {n} model server(s).")


def interrupt(signum: int, frame: Any) -> None:
    """A SIGTERM handler that stops like Ctrl-C does."""
    raise KeyboardInterrupt


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """Let the children finish on the terminal's Ctrl-C, then ask again, insist, and kill; by PID, never by name.

    A second SIGINT makes the worker abandon its task, which it records as failed (the next demo re-runs it).
    """
    for sig, wait in ((None, 3.0), (signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            if sig is not None:
                p.send_signal(sig)
        deadline = time.monotonic() + wait
        for p in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
