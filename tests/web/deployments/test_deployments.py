"""Deploying an experiment: a real `tandem serve` process on 127.0.0.1 for its bundle, the page's Try-it form and
the API's relay answering exactly as the bundle's own in-process recommender, a second deploy pointing at the live
server, stop and experiment deletion ending the process, and refusals (not deployable, another organisation's)."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.conf import settings
from django.test import Client

from tandem.serving import recommender
from tandem.serving.bundle import Bundle
from tandem.web.deployments import services
from tandem.web.deployments.forms import TryForm
from tandem.web.deployments.models import Deployment, Status
from tandem.web.experiments.models import Experiment
from tests.web.conftest import Tenant, wait_for
from tests.web.deployments.conftest import Servers

pytestmark = pytest.mark.timeout(120)
HX = {"HTTP_HX_REQUEST": "true"}
BUYER = {"buyer": "b1"}


def _health(deployment: Deployment) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{deployment.url}/v1/health", timeout=5) as response:
        return json.loads(response.read())


def _listening_on(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp and tcp6 write them) with a socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _top(bundle: Bundle, k: int) -> list[Any]:
    return recommender.retrieve(bundle, [BUYER], k, [[]])[0]["product_ids"]


def _until_running(tenant: Tenant, deployment_id: int) -> dict[str, Any]:
    """Poll the deployment as the pages do until its server answers (a deploy returns while it starts)."""

    def running() -> dict[str, Any] | None:
        body = tenant.client.get(f"/api/deployments/{deployment_id}").json()
        assert body["status"] in ("starting", "running"), body
        return body if body["status"] == "running" else None

    return wait_for(running, 60, "the model server to answer its health check")


def _try(page: Client, experiment: Experiment, **data: Any) -> Any:
    response = page.post(f"/experiments/{experiment.pk}/try/", {"buyer_0": "b1", **data}, **HX)
    assert response.status_code == 200
    return response


@pytest.mark.django_db(transaction=True)
def test_deploy_serves_the_bundle_and_try_it_answers_as_the_in_process_recommender(
    acme: Tenant, page: Client, completed: Any, servers: Servers
) -> None:
    experiment = completed(acme)
    response = page.post(f"/experiments/{experiment.pk}/deploy/", **HX)
    # The request returns while the server loads; the panel polls until it answers.
    panel = response.content.decode()
    assert response.status_code == 200 and 'data-deployment="starting"' in panel and 'hx-trigger="every 2s"' in panel
    deployment = Deployment.objects.get(experiment=experiment)
    servers.add(deployment.pid)
    _until_running(acme, deployment.pk)
    assert 'data-deployment="running"' in page.get(f"/experiments/{experiment.pk}/deployment/").content.decode()
    deployment.refresh_from_db()
    assert deployment.status == Status.RUNNING and deployment.organisation == acme.organisation
    assert deployment.host == "127.0.0.1"
    assert _listening_on(deployment.port) == {"0100007F"}  # 127.0.0.1 only, no IPv6 or wildcard address
    assert _health(deployment) == {
        "status": "ok",
        "model_type": "multitask",
        "signatures": ["serving_default", "serve_ranking"],
    }
    artifacts = Path(settings.MEDIA_ROOT) / experiment.artifacts_dir
    assert Path(deployment.bundle) == artifacts / "bundle" and (artifacts / f"server-{deployment.pk}.log").exists()

    detail = page.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'id="try-form"' in detail and deployment.url in detail
    assert all(f'value="{a}">{a.capitalize()}</button>' in detail for a in ("retrieve", "rank", "recommend"))

    bundle = Bundle.load(deployment.bundle)
    expected = recommender.retrieve(bundle, [BUYER], 5, [[]])[0]
    rows = _try(page, experiment, k=5, action="retrieve").context["rows"]
    assert [r["product_id"] for r in rows] == expected["product_ids"]
    assert [r["score"] for r in rows] == pytest.approx(expected["scores"], abs=1e-6)

    asked = [*expected["product_ids"][::-1], "p0"]
    predictions = recommender.rank(bundle, [BUYER], [asked])[0]["predictions"]
    response = _try(page, experiment, product_ids=", ".join(asked), action="rank")
    rows = response.context["rows"]
    assert {r["product_id"]: r["prediction"] for r in rows} == pytest.approx(
        dict(zip(asked, predictions, strict=True)), abs=1e-6
    )
    assert [r["prediction"] for r in rows] == sorted(predictions, reverse=True)  # best first
    assert all(asked[r["position"] - 1] == r["product_id"] for r in rows)

    expected = recommender.recommend(bundle, [BUYER], 4, [[]])[0]
    rows = _try(page, experiment, k=4, action="recommend").context["rows"]
    assert [r["product_id"] for r in rows] == expected["product_ids"]
    assert [r["prediction"] for r in rows] == pytest.approx(expected["predictions"], abs=1e-6)
    assert [r["score"] for r in rows] == pytest.approx(expected["scores"], abs=1e-6)
    table = _try(page, experiment, k=4, action="recommend").content.decode()
    assert f'<tr data-product="{rows[0]["product_id"]}">' in table
    # Each product with its attributes from the dataset (the synthetic products file: category).
    products = pd.read_parquet(Path(settings.MEDIA_ROOT) / experiment.dataset.products_file.name)
    category = dict(zip(products["product"].astype(str), products["category"], strict=True))
    assert [r["attributes"] for r in rows] == [[category[r["product_id"]]] for r in rows]
    assert "<th>category</th>" in table
    # The buyer's id is offered the values the model learnt.
    assert '<datalist id="known-buyer_0">' in detail and '<option value="b1">' in detail

    # The server's refusals are shown as messages; the form's own problems too.
    refused = _try(page, experiment, product_ids="p1 no-such-product", action="rank")
    assert "unknown product id(s) in product_ids: 'no-such-product'" in html.unescape(refused.content.decode())
    assert "rows" not in refused.context
    assert "Give the product ids to rank." in _try(page, experiment, action="rank").content.decode()

    # The API relays requests to the same server, the server's refusals keeping their status.
    answer = acme.post(f"/api/deployments/{deployment.pk}/retrieve", {"buyer": BUYER, "k": 3})
    assert answer.status_code == 200 and answer.json()["product_ids"] == _top(bundle, 3)
    refused = acme.post(f"/api/deployments/{deployment.pk}/rank", {"buyer": BUYER, "product_ids": ["nope"]})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_product"
    malformed = acme.post(f"/api/deployments/{deployment.pk}/retrieve", {"buyer": BUYER, "k": "ten"})
    assert malformed.status_code == 422 and malformed.json()["errors"] == {"k": ["Input should be a valid integer"]}


@pytest.mark.django_db(transaction=True)
def test_a_baseline_model_is_trained_deployed_and_tried_as_any_model(
    acme: Tenant, page: Client, completed: Any, servers: Servers
) -> None:
    """A buy_again experiment trains without towers, its page shows its metrics, it deploys, and Try it answers
    with its lists (the buyer's own products first) and offers the buyer ids it knows."""
    experiment = completed(acme, "buy_again")
    assert experiment.all_metrics["recall_at_10"] == experiment.all_metrics["buy_again_recall_at_10"]
    assert page.get(f"/experiments/{experiment.pk}/").status_code == 200
    response = page.post(f"/experiments/{experiment.pk}/deploy/", **HX)
    assert response.status_code == 200
    deployment = Deployment.objects.get(experiment=experiment)
    servers.add(deployment.pid)
    _until_running(acme, deployment.pk)
    assert _health(deployment) == {"status": "ok", "model_type": "buy_again", "signatures": ["serving_default"]}
    detail = page.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'value="retrieve">Retrieve</button>' in detail and 'value="rank">' not in detail
    assert '<option value="b1">' in detail
    bundle = Bundle.load(deployment.bundle)
    expected = recommender.retrieve(bundle, [BUYER], 5, [[]])[0]
    assert expected["fallback"] is None
    rows = _try(page, experiment, k=5, action="retrieve").context["rows"]
    assert [r["product_id"] for r in rows] == expected["product_ids"]
    bought = set(
        pd.read_csv(Path(settings.MEDIA_ROOT) / experiment.dataset.transactions_file.name).query("buyer == 'b1'")[
            "product"
        ]
    )
    assert rows[0]["product_id"] in bought


@pytest.mark.django_db(transaction=True)
def test_a_second_deploy_reuses_the_live_server_and_stop_or_deletion_ends_the_process(
    acme: Tenant, completed: Any, servers: Servers
) -> None:
    experiment = completed(acme)
    first = acme.post("/api/deployments", {"experiment": experiment.pk})
    assert first.status_code == 201 and first.json()["status"] == "starting", first.content
    pid = servers.add(first.json()["pid"])
    running = _until_running(acme, first.json()["id"])
    again = acme.post("/api/deployments", {"experiment": experiment.pk})
    assert again.status_code == 200 and again.json() == running

    # A server that died is reported failed, and the next deploy starts a new one.
    os.kill(pid, signal.SIGKILL)

    def reported_failed() -> dict[str, Any] | None:
        body = acme.client.get(f"/api/deployments/{first.json()['id']}").json()
        return body if body["status"] == "failed" else None

    failed = wait_for(reported_failed, 10, "the killed server to be reported failed")
    assert "The model server exited." in failed["error"] and _gone(pid)
    second = acme.post("/api/deployments", {"experiment": experiment.pk}).json()
    assert second["id"] != first.json()["id"]
    pid = servers.add(second["pid"])
    _until_running(acme, second["id"])

    stopped = acme.post(f"/api/deployments/{second['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped" and _gone(pid)
    assert acme.post(f"/api/deployments/{second['id']}/retrieve", {"buyer": BUYER}).status_code == 503

    third = acme.post("/api/deployments", {"experiment": experiment.pk})
    assert third.status_code == 201
    pid = servers.add(third.json()["pid"])
    _until_running(acme, third.json()["id"])
    listed = acme.client.get(f"/api/deployments?experiment={experiment.pk}").json()
    assert [d["status"] for d in listed["items"]] == ["running", "stopped", "failed"]
    assert acme.client.delete(f"/api/experiments/{experiment.pk}").status_code == 204
    assert _gone(pid) and not Deployment.objects.exists()


@pytest.mark.django_db
def test_only_a_completed_experiment_with_a_bundle_is_deployed(
    acme: Tenant, page: Client, setup_experiment: Any
) -> None:
    pending = Experiment.objects.get(pk=setup_experiment(acme)["id"])
    refused = acme.post("/api/deployments", {"experiment": pending.pk})
    assert refused.status_code == 409 and refused.json()["code"] == "not_deployable"
    assert "Only a completed experiment can be deployed; this one is pending." in refused.json()["message"]
    panel = page.post(f"/experiments/{pending.pk}/deploy/", **HX).content.decode()
    assert "Only a completed experiment can be deployed" in panel and 'data-deployment="none"' in panel
    detail = page.get(f"/experiments/{pending.pk}/").content.decode()
    assert 'id="deploy-reason"' in detail and ">Deploy</button>" not in detail

    Experiment.objects.filter(pk=pending.pk).update(status="completed", artifacts_dir="")
    refused = acme.post("/api/deployments", {"experiment": pending.pk})
    assert refused.status_code == 409 and refused.json()["code"] == "no_bundle"
    not_deployed = page.post(f"/experiments/{pending.pk}/try/", {"buyer_0": "b1", "action": "retrieve"}, **HX)
    assert "deploy the experiment first" in not_deployed.content.decode()
    assert not Deployment.objects.exists()


@pytest.mark.django_db
def test_another_organisations_experiment_or_deployment_is_not_found(
    acme: Tenant, globex: Tenant, setup_experiment: Any
) -> None:
    experiment = Experiment.objects.get(pk=setup_experiment(acme)["id"])
    deployment = Deployment.objects.create(
        organisation=acme.organisation, experiment=experiment, bundle="/nowhere/bundle", host="127.0.0.1",
        port=1, status=Status.STOPPED,
    )  # fmt: skip
    assert acme.client.get(f"/api/deployments/{deployment.pk}").status_code == 200

    assert globex.post("/api/deployments", {"experiment": experiment.pk}).status_code == 404
    assert globex.client.get(f"/api/deployments/{deployment.pk}").status_code == 404
    assert globex.post(f"/api/deployments/{deployment.pk}/stop").status_code == 404
    assert globex.post(f"/api/deployments/{deployment.pk}/retrieve", {"buyer": BUYER}).status_code == 404
    assert globex.client.get("/api/deployments").json() == {"items": [], "count": 0}
    page = Client()
    page.force_login(globex.user)
    base = f"/experiments/{experiment.pk}"
    assert page.get(f"{base}/deployment/").status_code == 404
    for action in ("deploy", "deployment/stop", "try"):
        assert page.post(f"{base}/{action}/", {"action": "retrieve"}, **HX).status_code == 404


def _manifest(signatures: list[str]) -> dict[str, Any]:
    buyer = [
        {"column": "age", "transform": "numeric"},
        {"column": "buyer", "transform": "id"},
        {"column": "age", "transform": "bucketize"},
        {"column": "seen", "transform": "timestamp"},
    ]
    spec = {"data": {"buyer_id": "buyer"}, "features": {"buyer": buyer}}
    return {"signatures": signatures, "buyer_columns": ["age", "buyer", "seen"], "spec": spec}


def test_the_try_form_sends_values_as_their_transforms_read_them_and_offers_the_bundles_signatures() -> None:
    multitask = TryForm(manifest=_manifest(["serving_default", "serve_ranking"]))
    assert multitask.actions == ["retrieve", "rank", "recommend"]
    # The buyer id first, then the feature config's order (the manifest's list is sorted).
    assert [f.label for f in multitask.buyer_fields()] == ["buyer", "age", "seen"]

    form = TryForm({"buyer_0": "007", "buyer_1": "42", "buyer_2": "1700000000", "action": "retrieve"},
                   manifest=_manifest(["serving_default"]))  # fmt: skip
    assert form.is_valid(), form.errors
    assert form.actions == ["retrieve"] and "product_ids" not in form.fields
    assert form.body() == {"buyer": {"age": 42, "buyer": "007", "seen": 1_700_000_000}, "k": 10}
    form = TryForm({"buyer_1": "3.5", "buyer_2": "2024-05-01", "k": "3", "action": "retrieve"},
                   manifest=_manifest(["serving_default"]))  # fmt: skip
    assert form.is_valid() and form.body() == {"buyer": {"age": 3.5, "seen": "2024-05-01"}, "k": 3}
    form = TryForm({"buyer_1": "old", "action": "retrieve"}, manifest=_manifest(["serving_default"]))
    assert not form.is_valid() and form.errors["buyer_1"] == ["“old” is not a number."]

    ranking = _manifest(["serve_ranking"])
    form = TryForm({"buyer_0": "b1", "product_ids": "p1,p2\np3", "action": "rank"}, manifest=ranking)
    assert form.is_valid() and "k" not in form.fields
    assert form.body() == {"buyer": {"buyer": "b1"}, "product_ids": ["p1", "p2", "p3"]}
    rows = form.rows({"predictions": [0.5, 2.0, None]})
    assert [(r["product_id"], r["position"]) for r in rows] == [("p2", 2), ("p1", 1), ("p3", 3)]
    assert not TryForm({"action": "retrieve"}, manifest=ranking).is_valid()  # no such button on a ranking bundle


def test_a_second_stage_offers_recommend_and_lays_out_its_lists() -> None:
    """A retrieval model with a second stage gets the recommend button and the new-products box; its lists come
    with the ranker's scores."""
    form = TryForm({"buyer_0": "b1", "k": "2", "action": "recommend"},
                   manifest=_manifest(["serving_default", "two_stage"]))  # fmt: skip
    assert form.actions == ["retrieve", "recommend"] and form.is_valid(), form.errors
    assert form.body() == {"buyer": {"buyer": "b1"}, "k": 2}
    new = TryForm({"buyer_0": "b1", "k": "2", "new_only": "on", "action": "recommend"},
                  manifest=_manifest(["serving_default", "two_stage"]))  # fmt: skip
    assert new.is_valid() and new.body() == {"buyer": {"buyer": "b1"}, "k": 2, "new_only": True}
    new = TryForm({"buyer_0": "b1", "new_only": "on", "action": "retrieve"},
                  manifest=_manifest(["serving_default", "two_stage"]))  # fmt: skip
    assert new.is_valid() and "new_only" not in new.body()  # retrieval is the first stage's, not the lists'
    assert "new_only" not in TryForm(manifest=_manifest(["serving_default", "serve_ranking"])).fields
    answer = {"product_ids": ["p2", "p1"], "scores": [1.5, None], "stage": "two_stage", "fallback": None}
    rows = form.rows(answer)  # the ranker's score; none for a product filling a short list
    assert [(r["rank"], r["product_id"], r["score"], r["prediction"]) for r in rows] == [
        (1, "p2", 1.5, None),
        (2, "p1", None, None),
    ]


def test_a_popularity_fallback_keeps_its_counts_out_of_the_score_column() -> None:
    form = TryForm({"buyer_0": "new", "action": "retrieve"}, manifest=_manifest(["serving_default"]))
    assert form.is_valid()
    answer = {"product_ids": ["p1", "p2"], "scores": [30.0, 12.0], "fallback": "popularity"}
    assert [(r["score"], r["bought"]) for r in form.rows(answer)] == [(None, 30.0), (None, 12.0)]
    answer = {"product_ids": ["p1"], "scores": [0.7], "fallback": None}
    assert [(r["score"], r["bought"]) for r in form.rows(answer)] == [(0.7, None)]


@pytest.mark.django_db
def test_a_recorded_pid_that_is_not_the_deployments_server_is_never_signalled(
    acme: Tenant, setup_experiment: Any
) -> None:
    """After a restart a recorded PID may belong to another program: stopping the deployment leaves it alone."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        deployment = Deployment.objects.create(
            organisation=acme.organisation, experiment_id=setup_experiment(acme)["id"], bundle="/nowhere/bundle",
            host="127.0.0.1", port=1, pid=other.pid, status=Status.RUNNING,
        )  # fmt: skip
        assert services.stop(deployment).status == Status.STOPPED
        assert other.poll() is None  # still running
    finally:
        other.kill()
        other.wait()
