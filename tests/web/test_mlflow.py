"""MLflow: each experiment becomes one MLflow run, read back here from a SQLite tracking store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tandem.tracking.mlflow import flatten
from tandem.web.experiments.models import Experiment
from tandem.web.experiments.runner import execute
from tests.web.conftest import Tenant


def test_flatten_numbers_nested_lists_of_mappings_and_keeps_scalar_lists() -> None:
    flat = flatten({"model": {"layers": [64, 32], "index": {"m": 8}}, "features": {"buyer": [{"column": "b"}]}})
    assert flat == {"model.layers": "[64, 32]", "model.index.m": "8", "features.buyer.0.column": "b"}


@pytest.mark.django_db(transaction=True)
def test_an_experiment_is_logged_as_one_mlflow_run(acme: Tenant, setup_experiment, settings, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.MLFLOW_EXPERIMENT_NAME = "tandem-tests"
    body = setup_experiment(acme, validation_fraction=0.1)
    assert execute(body["id"], body["attempt"]) == "completed"
    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.mlflow_run_id and experiment.notes == []

    client = MlflowClient(uri)
    run = client.get_run(experiment.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tandem-tests"
    assert run.data.tags["tandem.experiment_id"] == str(experiment.pk)
    params = run.data.params
    assert params["model.type"] == "multitask" and params["training.epochs"] == "2"
    assert params["features.buyer.0.column"] == "buyer" and params["data.split.validation_fraction"] == "0.1"
    for name in ("recall_at_5", "recall_at_100", "rmse", "test_mae"):
        assert run.data.metrics[name] == pytest.approx(getattr(experiment, name))
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2]
    assert [m.value for m in losses] == pytest.approx([h["loss"] for h in experiment.history])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "weights.query_tower.mean")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.yaml", "model", "results"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {
        "model/model.pt",
        "model/features.json",
    }
    assert (tmp_path / "mlartifacts").is_dir()


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_is_a_failed_mlflow_run(acme: Tenant, setup_experiment, settings, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    body = setup_experiment(acme)
    spec = Experiment.objects.get(pk=body["id"]).spec
    spec["data"]["split"] = {"kind": "time", "cutoff": "2100-01-01"}
    Experiment.objects.filter(pk=body["id"]).update(spec=spec)
    assert execute(body["id"], body["attempt"]) == "failed"
    experiment = Experiment.objects.get(pk=body["id"])
    run = MlflowClient(uri).get_run(experiment.mlflow_run_id)
    assert run.info.status == "FAILED" and "no test rows" in run.data.tags["tandem.error"]


@pytest.mark.django_db(transaction=True)
def test_an_unusable_tracking_store_does_not_fail_the_experiment(
    acme: Tenant, setup_experiment, settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{blocker / 'mlflow.db'}"
    body = setup_experiment(acme)
    assert execute(body["id"], body["attempt"]) == "completed"
    experiment = Experiment.objects.get(pk=body["id"])
    assert experiment.mlflow_run_id == ""
    assert any("MLflow tracking could not start" in note for note in experiment.notes)
