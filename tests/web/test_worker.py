"""The real stack: a live server, `manage.py db_worker` processes, and a worker killed with SIGKILL mid-run.

Everything here goes through HTTP to a live server and through the queue to separate worker processes, on
the same database (SQLite file, or PostgreSQL when DATABASE_URL names it).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.web.conftest import FEATURES, MODEL, Tenant, Workers, make_tenant, run_profiling, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


class Api:
    """A tiny client of the live server's API with a bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base + "/api"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> Any:
        response = self.session.get(self.base + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict | None = None, status: int = 200, **kw: Any) -> Any:
        response = self.session.post(self.base + path, json=body, timeout=30, **kw) if "files" not in kw else (
            self.session.post(self.base + path, timeout=30, **kw)
        )  # fmt: skip
        assert response.status_code == status, response.text
        return response.json()

    def experiment(self, experiment_id: int) -> dict:
        return self.get(f"/experiments/{experiment_id}")


@pytest.fixture
def tenant(transactional_db: None) -> Tenant:
    return make_tenant("Initech")


@pytest.fixture
def api(live_server: Any, tenant: Tenant) -> Api:
    return Api(live_server.url, tenant.token)


def _dataset(api: Api, files: dict[str, Path]) -> int:
    with files["transactions"].open("rb") as tx, files["products"].open("rb") as pr:
        body = api.post(
            "/datasets",
            status=201,
            data={"name": "synthetic", "buyer_id_column": "buyer", "product_id_column": "product",
                  "timestamp_column": "ts", "products_key": "product"},
            files={"transactions": ("transactions.csv", tx), "products": ("products.parquet", pr)},
        )  # fmt: skip
    assert run_profiling() == ["ready"]  # profiled here: these tests start their workers after queueing runs
    return body["id"]


def _experiment(api: Api, dataset: int, name: str, **training: Any) -> dict:
    fc = api.post("/feature-configs", {"name": f"f-{name}", **FEATURES}, status=201)["id"]
    body = {**MODEL, "training": {**MODEL["training"], **training}}
    mc = api.post("/model-configs", {"name": f"m-{name}", **body}, status=201)["id"]
    body = {"dataset": dataset, "feature_config": fc, "model_config": mc, "name": name, "validation_fraction": 0.1}
    return api.post("/experiments", body, status=201)


def _status(api: Api, experiment_id: int, *wanted: str) -> Any:
    body = api.experiment(experiment_id)
    return body if body["status"] in wanted else None


def test_a_worker_runs_an_experiment_to_completion(api: Api, workers: Workers, synthetic_files) -> None:
    """Upload, configure and queue over HTTP; a db_worker process trains it; the API shows the results."""
    dataset = _dataset(api, synthetic_files)
    created = _experiment(api, dataset, "live", epochs=3)
    assert created["status"] == "pending"
    workers.start()
    done = wait_for(lambda: _status(api, created["id"], "completed", "failed"), 120, "the experiment to finish")
    assert done["status"] == "completed", done["error"] + workers.logs()
    assert all(v is not None for v in done["metrics"].values())
    assert [h["epoch"] for h in done["history"]] == [1, 2, 3] and done["current_epoch"] == 3
    assert len(done["weight_stats"]) == 3 and done["worker"].endswith(f":{workers.procs[0].pid}")
    assert done["started_at"] <= done["finished_at"]
    listed = api.get("/experiments?status=completed")
    assert [e["id"] for e in listed["items"]] == [created["id"]]


def test_two_workers_run_two_experiments_at_once_and_cancel_stops_them(
    api: Api, workers: Workers, synthetic_files
) -> None:
    """Both experiments are running at the same moment, each on its own worker; cancelling stops the training."""
    dataset = _dataset(api, synthetic_files)
    first = _experiment(api, dataset, "one", epochs=400)
    second = _experiment(api, dataset, "two", epochs=400)
    workers.start()
    workers.start()

    def both_running() -> list[dict] | None:
        bodies = [api.experiment(e["id"]) for e in (first, second)]
        # current_epoch is the epoch in progress; history holds the epochs that have ended.
        return bodies if all(b["status"] == "running" and b["history"] for b in bodies) else None

    running = wait_for(both_running, 120, "both experiments to be training at once")
    assert running[0]["worker"] != running[1]["worker"]
    assert all(b["history"] for b in running)  # epochs are recorded while training goes on
    for e in (first, second):
        assert api.post(f"/experiments/{e['id']}/cancel")["status"] == "cancelled"

    from django_tasks_db.models import DBTaskResult

    from tandem.web.experiments.models import Experiment

    def stopped() -> bool:
        ids = list(Experiment.objects.filter(pk__in=[first["id"], second["id"]]).values_list("task_id", flat=True))
        results = DBTaskResult.objects.filter(id__in=ids)
        return all(r.status == "SUCCESSFUL" for r in results) and [r.return_value for r in results] == ["stopped"] * 2

    wait_for(stopped, 60, "both workers to abandon their cancelled runs")
    for e in (first, second):
        body = api.experiment(e["id"])
        assert body["status"] == "cancelled" and body["metrics"]["recall_at_10"] is None
        assert body["current_epoch"] < 400


def _kill_mid_run(api: Api, workers: Workers, experiment_id: int) -> int:
    victim = workers.start()
    wait_for(lambda: api.experiment(experiment_id)["current_epoch"] >= 2, 120, "training to reach epoch 2")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    return victim.pid


def test_a_worker_killed_mid_run_is_failed_when_its_heartbeat_expires_and_runs_again(
    api: Api, workers: Workers, synthetic_files, settings
) -> None:
    """SIGKILL mid-training: once the heartbeat is overdue the run is failed with the reason; a re-run completes."""
    dataset = _dataset(api, synthetic_files)
    created = _experiment(api, dataset, "doomed", epochs=40)
    pid = _kill_mid_run(api, workers, created["id"])
    failed = wait_for(lambda: _status(api, created["id"], "failed"), 60, "the dead run to be marked failed")
    assert "stopped responding" in failed["error"] and f":{pid}" in failed["error"]
    assert failed["metrics"]["recall_at_10"] is None and failed["current_epoch"] >= 2

    rerun = api.post(f"/experiments/{created['id']}/rerun")
    assert rerun["status"] == "pending" and rerun["attempt"] == 2 and rerun["history"] == []
    # the live re-run is not to be reaped because a busy machine starved its heartbeat
    settings.TANDEM_HEARTBEAT_TIMEOUT = 60
    workers.extra_env["TANDEM_HEARTBEAT_TIMEOUT"] = "60"
    workers.start()
    done = wait_for(lambda: _status(api, created["id"], "completed", "failed"), 180, "the re-run to finish")
    assert done["status"] == "completed", done["error"] + workers.logs()
    assert done["attempt"] == 2 and len(done["history"]) == 40 and done["error"] == ""


def test_a_worker_coming_back_fails_the_run_its_dead_predecessor_left(
    api: Api, workers: Workers, synthetic_files, settings
) -> None:
    """With heartbeats that would take ten minutes to expire, the next worker on the host still notices at once."""
    settings.TANDEM_HEARTBEAT_TIMEOUT = 600
    workers.extra_env["TANDEM_HEARTBEAT_TIMEOUT"] = "600"
    dataset = _dataset(api, synthetic_files)
    created = _experiment(api, dataset, "orphan", epochs=40)
    pid = _kill_mid_run(api, workers, created["id"])
    assert api.experiment(created["id"])["status"] == "running"  # nobody has noticed yet
    workers.start()
    failed = wait_for(lambda: _status(api, created["id"], "failed"), 60, "the new worker to fail the orphaned run")
    assert "exited during the run" in failed["error"] and f":{pid}" in failed["error"]
