"""Experiments through the test client: validation first, queueing, a run in this process, cancel, re-run, compare."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from tandem.web.experiments.models import METRIC_FIELDS, Experiment
from tandem.web.experiments.reaper import reap_expired, reap_local_orphans
from tandem.web.experiments.runner import execute
from tandem.web.experiments.tasks import run_experiment
from tests.web.conftest import Tenant, create_configs, upload_dataset

pytestmark = pytest.mark.django_db
# Tests that run an experiment here need committed rows: the run's heartbeat thread has its own connection.
RUNS = pytest.mark.django_db(transaction=True)


def _run(experiment: dict) -> Experiment:
    assert execute(experiment["id"], experiment["attempt"]) in ("completed", "failed")
    return Experiment.objects.get(pk=experiment["id"])


@RUNS
def test_a_valid_experiment_is_queued_with_the_spec_it_will_run(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme, sample_fraction=0.5, validation_fraction=0.1, name="first")
    assert body["status"] == "pending" and body["attempt"] == 1 and body["model_type"] == "multitask"
    assert (
        body["spec"]["data"]["sample_fraction"] == 0.5 and body["spec"]["data"]["split"]["validation_fraction"] == 0.1
    )
    assert body["spec"]["data"]["transactions"]["path"].startswith("datasets/")  # relative to MEDIA_ROOT
    task = DBTaskResult.objects.get(id=Experiment.objects.get(pk=body["id"]).task_id)
    assert task.status == TaskResultStatus.READY and task.args_kwargs["args"] == [body["id"], 1]


def _runs_queued() -> int:
    """Experiment runs in the task queue (datasets' profiling tasks share it)."""
    return DBTaskResult.objects.filter(task_path=run_experiment.module_path).count()


def test_every_problem_is_listed_before_anything_is_queued(acme: Tenant, synthetic_files) -> None:
    """Engine rules and platform rules together: unknown column, non-numeric target, top-K, cutoff, split."""
    dataset = upload_dataset(acme, synthetic_files)["id"]
    fc, mc = create_configs(
        acme,
        features={"buyer": [{"column": "customer", "transform": "id"}], "target": "buyer"},
        model={"index": {"candidate_pool": 500}, "buyer_tower_layers": [8], "product_tower_layers": [8]},
    )
    response = acme.post(
        "/api/experiments",
        {"dataset": dataset, "feature_config": fc, "model_config": mc, "sample_fraction": 0, "test_fraction": 1.5},
    )  # fmt: skip
    assert response.status_code == 422
    errors = response.json()["errors"]
    joined = " | ".join(errors["feature_config"])
    assert "buyer.0.column: unknown column 'customer'" in joined and "'buyer' is not numeric (VARCHAR)" in joined
    assert "candidate_pool 500 is larger than the catalog (120 products)" in " ".join(errors["model_config"])
    assert {"sample_fraction", "test_fraction"} <= set(errors)
    response = acme.post(
        "/api/experiments",
        {"dataset": dataset, "feature_config": fc, "model_config": mc, "split_kind": "time", "split_cutoff": "soon"},
    )
    assert "'soon' is not a date or timestamp" in " ".join(response.json()["errors"]["split_cutoff"])
    assert Experiment.objects.count() == 0 and not _runs_queued()


def test_a_cutoff_outside_the_data_is_refused(acme: Tenant, synthetic_files) -> None:
    """A time split whose cutoff is after the last transaction would leave no test rows: refused before queueing."""
    dataset = upload_dataset(acme, synthetic_files)["id"]
    fc, mc = create_configs(acme)
    body = {"dataset": dataset, "feature_config": fc, "model_config": mc, "split_kind": "time"}
    response = acme.post("/api/experiments", {**body, "split_cutoff": "2999-01-01"})
    assert "outside the data" in " ".join(response.json()["errors"]["split_cutoff"])
    assert Experiment.objects.count() == 0


def test_an_engine_cross_section_rule_is_reported_on_the_field_to_fix(acme: Tenant, synthetic_files) -> None:
    """A ranking model needs a target: the engine's rule lands on feature_config."""
    dataset = upload_dataset(acme, synthetic_files)["id"]
    fc, mc = create_configs(acme, features={"target": None}, model={"type": "ranking"})
    response = acme.post("/api/experiments", {"dataset": dataset, "feature_config": fc, "model_config": mc})
    assert response.json()["errors"] == {"feature_config": ["target: a ranking model needs a target column to predict"]}


def test_a_time_split_needs_the_dataset_timestamp(acme: Tenant, synthetic_files) -> None:
    dataset = upload_dataset(acme, synthetic_files, timestamp_column="")["id"]
    fc, mc = create_configs(acme)
    response = acme.post(
        "/api/experiments", {"dataset": dataset, "feature_config": fc, "model_config": mc, "split_kind": "time"}
    )
    assert "split_kind" in response.json()["errors"]


@RUNS
def test_a_run_records_metrics_history_weights_and_artifacts(acme: Tenant, setup_experiment) -> None:
    experiment = _run(setup_experiment(acme, validation_fraction=0.1))
    assert experiment.status == "completed", experiment.error
    assert all(isinstance(getattr(experiment, m), float) for m in METRIC_FIELDS)
    assert 0 <= experiment.recall_at_5 <= experiment.recall_at_10 <= experiment.recall_at_100 <= 1
    assert "mrr" in experiment.other_metrics and not set(METRIC_FIELDS) & set(experiment.other_metrics)
    assert [h["epoch"] for h in experiment.history] == [1, 2] and experiment.current_epoch == 2
    assert "val_recall_at_10" in experiment.history[0]
    assert set(experiment.weight_stats[0]) >= {"epoch", "query_tower", "candidate_tower", "rating_head"}
    assert experiment.started_at <= experiment.finished_at and experiment.worker
    artifacts = Path(settings.MEDIA_ROOT) / experiment.artifacts_dir
    assert (artifacts / "metrics.json").exists() and (artifacts / "model" / "model.pt").exists()
    detail = acme.client.get(f"/api/experiments/{experiment.pk}").json()
    assert detail["metrics"]["recall_at_100"] == experiment.recall_at_100 and len(detail["history"]) == 2


@RUNS
def test_a_retrieval_run_has_no_rating_metrics(acme: Tenant, setup_experiment) -> None:
    experiment = _run(setup_experiment(acme, model={"type": "retrieval"}))
    assert experiment.status == "completed", experiment.error
    assert experiment.recall_at_10 is not None and experiment.rmse is None and experiment.test_mae is None


@RUNS
def test_a_failing_run_records_the_problem(acme: Tenant, setup_experiment) -> None:
    """A problem only the data shows (a split without test rows) fails the run with the engine's message."""
    body = setup_experiment(acme)
    spec = Experiment.objects.get(pk=body["id"]).spec
    spec["data"]["split"] = {"kind": "time", "cutoff": "2100-01-01"}
    Experiment.objects.filter(pk=body["id"]).update(spec=spec)
    experiment = _run(body)
    assert experiment.status == "failed"
    assert "data.split: the time split leaves no test rows" in experiment.error


@RUNS
def test_list_filters_by_status_and_model_type(acme: Tenant, setup_experiment, synthetic_files) -> None:
    dataset = upload_dataset(acme, synthetic_files)["id"]
    setup_experiment(acme, dataset_id=dataset)
    retrieval = setup_experiment(acme, dataset_id=dataset, model={"type": "retrieval"})
    _run(retrieval)

    def names(query: str) -> list[int]:
        return [e["id"] for e in acme.client.get(f"/api/experiments{query}").json()["items"]]

    assert len(names("")) == 2
    assert names("?model_type=retrieval") == [retrieval["id"]]
    assert names("?status=completed") == [retrieval["id"]]
    assert names("?status=completed&model_type=multitask") == []


@RUNS
def test_cancel_a_pending_experiment_removes_its_queued_task(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme)
    response = acme.post(f"/api/experiments/{body['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert not _runs_queued()
    assert execute(body["id"], body["attempt"]) == "skipped"
    again = acme.post(f"/api/experiments/{body['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "not_active"


@RUNS
def test_rerun_starts_a_new_attempt_and_a_stale_task_is_skipped(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme)
    acme.post(f"/api/experiments/{body['id']}/cancel")
    rerun = acme.post(f"/api/experiments/{body['id']}/rerun")
    assert rerun.status_code == 200 and rerun.json()["status"] == "pending" and rerun.json()["attempt"] == 2
    assert execute(body["id"], 1) == "skipped"
    assert execute(body["id"], 2) == "completed"
    refused = acme.post(f"/api/experiments/{body['id']}/rerun")
    assert refused.status_code == 409 and refused.json()["code"] == "not_rerunnable"


@RUNS
def test_delete_refuses_an_active_experiment_and_removes_artifacts(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme)
    assert acme.client.delete(f"/api/experiments/{body['id']}").status_code == 409
    experiment = _run(body)
    artifacts = Path(settings.MEDIA_ROOT) / experiment.artifacts_dir
    assert artifacts.exists()
    assert acme.client.delete(f"/api/experiments/{body['id']}").status_code == 204
    assert not artifacts.exists() and not Experiment.objects.filter(pk=body["id"]).exists()


@RUNS
def test_compare_puts_model_types_side_by_side_and_names_the_best(acme: Tenant, setup_experiment, synthetic_files):
    dataset = upload_dataset(acme, synthetic_files)["id"]
    multitask = _run(setup_experiment(acme, dataset_id=dataset))
    ranking = _run(setup_experiment(acme, dataset_id=dataset, model={"type": "ranking"}))
    response = acme.client.get(f"/api/experiments/compare?ids={ranking.pk}&ids={multitask.pk}")
    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["experiments"]] == [ranking.pk, multitask.pk]
    assert body["metrics"] == list(METRIC_FIELDS)
    assert body["best"]["recall_at_10"] == multitask.pk  # the ranking model has no retrieval metrics
    better_rmse = min((ranking, multitask), key=lambda e: e.rmse)
    assert body["best"]["rmse"] == better_rmse.pk
    assert acme.client.get("/api/experiments/compare").status_code == 422
    too_many = "&".join(f"ids={i}" for i in range(1, 23))
    assert acme.client.get(f"/api/experiments/compare?{too_many}").status_code == 422


def test_an_expired_heartbeat_fails_the_run_with_the_reason(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme)
    old = timezone.now() - timedelta(seconds=settings.TANDEM_HEARTBEAT_TIMEOUT + 1)
    Experiment.objects.filter(pk=body["id"]).update(status="running", heartbeat_at=old, worker="elsewhere:1")
    assert reap_expired() == 1
    experiment = Experiment.objects.get(pk=body["id"])
    assert (
        experiment.status == "failed" and "stopped responding" in experiment.error and "elsewhere:1" in experiment.error
    )
    assert acme.post(f"/api/experiments/{body['id']}/rerun").json()["status"] == "pending"


def test_a_run_whose_local_worker_process_is_gone_is_failed_when_a_worker_starts(acme: Tenant, setup_experiment):
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    body = setup_experiment(acme)
    Experiment.objects.filter(pk=body["id"]).update(
        status="running", heartbeat_at=timezone.now(), worker=f"{socket.gethostname()}:{gone.pid}"
    )
    assert reap_expired() == 0
    assert reap_local_orphans() == 1
    assert "exited during the run" in Experiment.objects.get(pk=body["id"]).error


def test_reading_experiments_reaps_dead_runs(acme: Tenant, setup_experiment) -> None:
    body = setup_experiment(acme)
    old = timezone.now() - timedelta(hours=1)
    Experiment.objects.filter(pk=body["id"]).update(status="running", heartbeat_at=old)
    assert acme.client.get(f"/api/experiments/{body['id']}").json()["status"] == "failed"
