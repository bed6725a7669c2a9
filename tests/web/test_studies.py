"""Studies on the platform with real `db_worker` processes: trials are ordinary experiments, two workers share one
study through Optuna's storage in the platform's database, a killed worker's trial is failed and the study goes on.

Run it on PostgreSQL as production does: DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from tests.study.test_pareto import non_dominated
from tests.web.conftest import Tenant, Workers, create_configs, make_tenant, upload_dataset, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(400)]


@pytest.fixture
def tenant(transactional_db: None) -> Tenant:
    return make_tenant("Initech")


def _experiment(tenant: Tenant, dataset: int, features: dict, model: dict, training: dict) -> Any:
    from tandem.web.experiments import services
    from tandem.web.experiments.models import Experiment

    fc = tenant.post("/api/feature-configs", {"name": f"f-{dataset}", "features": features})
    mc = tenant.post("/api/model-configs", {"name": f"m-{dataset}", "model": model, "training": training})
    assert fc.status_code == mc.status_code == 201, (fc.content, mc.content)
    body = {"dataset": dataset, "feature_config": fc.json()["id"], "model_config": mc.json()["id"], "name": "base"}
    created = tenant.post("/api/experiments", {**body, "validation_fraction": 0.0})
    assert created.status_code == 201, created.content
    base = Experiment.objects.get(pk=created.json()["id"])
    return services.cancel(base)  # the study runs its own trials; the base only lends its spec


def _study(tenant: Tenant, base: Any, **data: Any) -> Any:
    from tandem.web.studies.services import create_study

    return create_study(tenant.organisation, tenant.user, base, data)


def _finished(study_id: int) -> Any:
    from tandem.web.studies.models import Study

    study = Study.objects.get(pk=study_id)
    return study if study.status == "completed" else None


def _overlapping(a: Any, b: Any) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at


@pytest.fixture
def movielens_files(shared_data_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """MovieLens 100K as the platform takes it: ratings with a header, and the movie titles."""
    ratings = pd.read_csv(
        shared_data_dir / "ml-100k" / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"]
    )
    items = pd.read_csv(shared_data_dir / "ml-100k" / "u.item", sep="|", header=None, encoding="latin-1",
                        usecols=[0, 1], names=["item_id", "title"])  # fmt: skip
    paths = {"transactions": tmp_path / "ratings.csv", "products": tmp_path / "movies.parquet"}
    ratings.to_csv(paths["transactions"], index=False)
    items.to_parquet(paths["products"], index=False)
    return paths


@pytest.mark.slow
def test_the_tutorial_weight_grid_with_two_workers(tenant: Tenant, workers: Workers, movielens_files) -> None:
    """The 9-point weight grid on the tutorial protocol: two workers run trials at the same time, each grid
    point once, each trial one experiment run once; (0, 0) is refused as a spec and never queued; the Pareto
    set is the non-dominated set of the completed trials."""
    from django_tasks_db.models import DBTaskResult

    from tandem.web.studies.models import StudyTrial
    from tandem.web.studies.services import pareto

    dataset = upload_dataset(tenant, movielens_files, name="movielens", buyer_id_column="user_id",
                             product_id_column="item_id", timestamp_column="ts", products_key="item_id")["id"]  # fmt: skip
    base = _experiment(
        tenant, dataset,
        {"buyer": [{"column": "user_id", "transform": "id", "embedding_dim": 32}],
         "product": [{"column": "title", "transform": "id", "embedding_dim": 32}], "target": "rating"},
        {"type": "multitask", "rating_head_layers": [256, 128, 1], "ranking_loss": "mse"},
        {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 8192, "epochs": 1, "seed": 42},
    )  # fmt: skip
    study = _study(tenant, base, sampler="grid", n_trials=50, parallelism=2,
                   params=["model.retrieval_weight=0,1,2", "model.ranking_weight=0,1,2", "evaluation.baseline=false"],
                   objectives=["recall_at_100:max", "test_rmse:min"])  # fmt: skip
    assert study.n_trials == 9  # the grid's size
    workers.extra_env["TANDEM_HEARTBEAT_TIMEOUT"] = "30"  # a loaded machine is not a dead worker
    workers.start()
    workers.start()
    wait_for(lambda: _finished(study.pk), 300, "the study to finish", interval=1.0)
    trials = list(StudyTrial.objects.filter(study=study).select_related("experiment"))
    points = [(t.params["model.retrieval_weight"], t.params["model.ranking_weight"]) for t in trials]
    assert sorted(points) == sorted(itertools.product([0, 1, 2], repeat=2)), workers.logs()
    by_point = dict(zip(points, trials, strict=True))
    refused = by_point[0, 0]
    assert (
        refused.state == "failed"
        and refused.experiment is None
        and "retrieval_weight or ranking_weight" in refused.reason
    )
    ran = [t for t in trials if t.experiment is not None]
    assert all(t.state == "complete" and t.experiment.status == "completed" for t in ran), workers.logs()
    assert all(t.experiment.attempt == 1 for t in ran)
    assert DBTaskResult.objects.filter(args_kwargs__args__0__in=[t.experiment.pk for t in ran]).count() == 8
    assert {t.experiment.worker for t in ran} == {f"{os.uname().nodename}:{p.pid}" for p in workers.procs}
    assert any(_overlapping(a.experiment, b.experiment) for a, b in itertools.combinations(ran, 2))
    points = {t.number: (t.experiment.recall_at_100, t.experiment.test_rmse) for t in ran}
    assert pareto(study) == non_dominated(points, (1, -1))
    assert all(t.values == list(points[t.number]) for t in ran)


def test_a_worker_killed_mid_trial_leaves_it_failed_and_the_study_completes(
    tenant: Tenant, workers: Workers, synthetic_files
) -> None:
    """SIGKILL one of two workers while it trains a trial: the reaper fails that trial, the other worker takes
    the remaining ones, the budget is met and no grid point or experiment runs twice."""
    from tandem.web.studies.models import StudyTrial

    dataset = upload_dataset(tenant, synthetic_files)["id"]
    fc, mc = create_configs(tenant)
    body = {"dataset": dataset, "feature_config": fc, "model_config": mc, "name": "base", "validation_fraction": 0.1}
    created = tenant.post("/api/experiments", body)
    from tandem.web.experiments import services
    from tandem.web.experiments.models import Experiment

    base = services.cancel(Experiment.objects.get(pk=created.json()["id"]))
    study = _study(tenant, base, sampler="grid", n_trials=4, parallelism=2,
                   params=["model.dropout=0,0.1,0.2,0.3", "training.epochs=25"], objectives=["recall_at_10:max"])  # fmt: skip
    workers.extra_env["TANDEM_HEARTBEAT_TIMEOUT"] = "15"
    victim = workers.start()
    workers.start()
    name = f"{os.uname().nodename}:{victim.pid}"

    def victim_training() -> Any:
        return StudyTrial.objects.filter(study=study, experiment__worker=name, experiment__current_epoch__gte=1).first()

    killed = wait_for(victim_training, 120, "the first worker to be training a trial")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    wait_for(lambda: _finished(study.pk), 300, "the study to finish", interval=1.0)
    trials = list(StudyTrial.objects.filter(study=study).select_related("experiment"))
    assert len(trials) == 4 and len({t.params["model.dropout"] for t in trials}) == 4
    killed.refresh_from_db()
    assert killed.state == "failed" and "stopped responding" in killed.reason, killed.reason
    assert killed.experiment.status == "failed"
    others = [t for t in trials if t.pk != killed.pk]
    assert all(t.state == "complete" and t.experiment.attempt == 1 for t in others), workers.logs()


def test_a_bad_range_is_refused_before_any_trial(tenant: Tenant, setup_experiment) -> None:
    from tandem.web.experiments.models import Experiment
    from tandem.web.studies.models import Study

    base = Experiment.objects.get(pk=setup_experiment(tenant)["id"])
    before = Experiment.objects.count()
    with pytest.raises(ValidationError) as caught:
        _study(tenant, base, params=["training.learning_rate=-0.1:0.1:0.05", "model.dropout=0:1.5"],
               objectives=["recall_at_10:up"], n_trials=0)  # fmt: skip
    errors = caught.value.message_dict
    assert set(errors) == {"params", "objectives", "n_trials"}
    assert any("greater than 0" in m and "learning_rate=-0.1" in m for m in errors["params"])
    assert any("model.dropout=1.5" in m for m in errors["params"])
    assert Study.objects.count() == 0 and Experiment.objects.count() == before


def test_trials_are_child_runs_of_the_study_and_hopeless_ones_are_pruned(
    acme: Tenant, setup_experiment, settings, tmp_path: Path
) -> None:
    """In this process, trial after trial: each trial's MLflow run is a child of the study's run; with the median
    rule after three trials, the two hopeless learning rates are stopped at epoch 1 and marked pruned, with
    the reason, on the trial and its experiment."""
    from mlflow import MlflowClient

    from tandem.web.experiments.models import Experiment
    from tandem.web.experiments.runner import execute
    from tandem.web.studies.models import Study, StudyTrial

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.MLFLOW_EXPERIMENT_NAME = "tandem-tests"
    base = Experiment.objects.get(pk=setup_experiment(acme, validation_fraction=0.2)["id"])
    study = _study(acme, base, sampler="grid", pruner="median", parallelism=1, n_trials=5,
                   params=["training.learning_rate=0.3,0.25,0.2,0.00001,0.00002", "training.epochs=4"],
                   objectives=["test_rmse:min"])  # fmt: skip
    for _ in range(5):
        (trial,) = StudyTrial.objects.filter(study=study, state="running")  # one at a time
        execute(trial.experiment_id, trial.experiment.attempt)
    study = Study.objects.get(pk=study.pk)
    assert study.status == "completed" and study.mlflow_run_id
    trials = {t.params["training.learning_rate"]: t for t in StudyTrial.objects.filter(study=study)}
    assert {lr: t.state for lr, t in trials.items()} == {
        0.3: "complete",
        0.25: "complete",
        0.2: "complete",
        0.00001: "pruned",
        0.00002: "pruned",
    }
    for lr in (0.00001, 0.00002):
        pruned = trials[lr]
        assert pruned.reason.startswith("pruned after epoch 1 by the median pruner: val_rmse = ")
        assert len(pruned.experiment.history) == 1 and pruned.experiment.error == pruned.reason
    client = MlflowClient(settings.MLFLOW_TRACKING_URI)
    children = client.search_runs(
        [client.get_run(study.mlflow_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{study.mlflow_run_id}'",
    )
    assert sorted(r.info.run_id for r in children) == sorted(t.experiment.mlflow_run_id for t in trials.values())
    assert client.get_run(study.mlflow_run_id).info.status == "FINISHED"


def test_another_organisation_sees_none_of_a_study(tenant: Tenant, setup_experiment) -> None:
    """The study, its live panel, its promote action and the experiment's "tune this" are 404 to others; the owner
    sees the study page and the queued trials."""
    from django.test import Client

    from tandem.web.experiments.models import Experiment

    base = Experiment.objects.get(pk=setup_experiment(tenant)["id"])
    study = _study(tenant, base, params=["model.dropout=0,0.1"], objectives=["recall_at_10:max"], sampler="grid")
    owner, other = Client(), Client()
    owner.force_login(tenant.user)
    other.force_login(make_tenant("Globex").user)
    page = owner.get(f"/studies/{study.pk}/")
    assert page.status_code == 200 and page.content.count(b'data-trial="') == 2
    assert owner.get("/dashboard/").content.count(f'data-study="{study.pk}"'.encode()) == 1
    for path in (f"/studies/{study.pk}/", f"/studies/{study.pk}/live/", f"/experiments/{base.pk}/tune/"):
        assert other.get(path).status_code == 404, path
    assert other.post(f"/studies/{study.pk}/trials/0/promote/").status_code == 404
    assert study.name.encode() not in other.get("/studies/").content
    assert study.name.encode() in owner.get("/studies/").content
