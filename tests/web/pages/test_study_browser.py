"""A study in a real browser against a live server and real workers: "tune this" on an experiment, the study page
live while two workers run its trials, the Pareto chart (its front is Optuna's, a point opens its experiment),
a trial's page, and "promote the best". Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.study.test_pareto import non_dominated
from tests.web.conftest import Tenant, Workers
from tests.web.pages.test_browser import Screens, _sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def test_tune_this_then_watch_the_study_and_promote_the_best(
    browser: Any, live_server: Any, workers: Workers, acme: Tenant, finished: Any, screenshots: Any, settings: Any
) -> None:
    from tandem.web.configs.models import ModelConfig
    from tandem.web.studies.models import Study
    from tandem.web.studies.services import best_trial, pareto

    settings.TANDEM_HEARTBEAT_TIMEOUT = 30  # the pages reap too: a loaded machine is not a dead worker
    workers.extra_env["TANDEM_HEARTBEAT_TIMEOUT"] = "30"
    base = finished(acme, name="weights")
    shot = Screens(screenshots / "study")
    shot.folder.mkdir(exist_ok=True)
    page = _sign_in(browser, live_server.url, acme)
    page.goto(f"/experiments/{base.pk}/")
    page.click("#tune-this")
    page.wait_for_url(f"**/experiments/{base.pk}/tune/")
    page.fill("#id_params", "model.retrieval_weight=0,1\nmodel.ranking_weight=0.5,1\ntraining.epochs=2")
    page.fill("#id_objectives", "recall_at_10:max\ntest_rmse:min")
    page.select_option("#id_sampler", "grid")
    page.fill("#id_n_trials", "4")
    shot(page, "tune-this")
    page.click("#start-study")
    page.wait_for_url("**/studies/*/")
    study = Study.objects.get()
    assert page.locator("#study-live").get_attribute("data-status") == "running"
    shot(page, "study-queued")
    page.goto("/dashboard/")
    assert page.locator(f"#running-studies [data-study='{study.pk}']").count() == 1
    shot(page, "dashboard-running-study")
    page.goto(f"/studies/{study.pk}/")
    workers.start()
    workers.start()
    # Locators, not page scripts: the page reloads itself when the study ends.
    page.locator("#trial-counts", has_text=re.compile(r"[1-9] running")).wait_for(timeout=120_000)
    shot(page, "study-live")
    page.locator("#status", has_text="Completed").wait_for(timeout=200_000)
    page.wait_for_selector("canvas[data-chart=study-pareto]")
    page.wait_for_timeout(500)  # the charts draw
    shot(page, "study-completed")
    assert page.locator("#trials tbody tr").count() == 4
    config = json.loads(page.locator("#study-pareto").text_content())
    front = next(d for d in config["data"]["datasets"] if d.get("front"))
    single = next(d for d in config["data"]["datasets"] if d["label"].startswith("single-task"))
    trials = {t.number: t for t in study.trials.all()}
    assert sorted(p["number"] for p in front["data"]) == pareto(study)
    points = {n: tuple(t.values) for n, t in trials.items() if t.state == "complete"}
    assert pareto(study) == non_dominated(points, (1, -1))
    assert sorted(p["number"] for p in single["data"]) == sorted(
        n for n, t in trials.items() if t.params["model.retrieval_weight"] == 0
    )
    # A click on a point of the front opens that trial's experiment.
    first = sorted(front["data"], key=lambda p: p["x"])[0]
    box = page.locator("canvas[data-chart=study-pareto]").bounding_box()
    spot = page.evaluate(
        "() => { const c = Chart.getChart(document.querySelector('canvas[data-chart=study-pareto]'));"
        " const i = c.data.datasets.findIndex(d => d.front); const p = c.getDatasetMeta(i).data[0];"
        " return [p.x, p.y]; }"
    )
    page.mouse.click(box["x"] + spot[0], box["y"] + spot[1])
    page.wait_for_url(f"**{first['url']}")
    assert page.locator("#status").text_content().strip() == "Completed"
    assert page.locator("#study-link").get_attribute("href") == f"/studies/{study.pk}/"
    shot(page, "trial-experiment")
    page.go_back()
    page.wait_for_selector("#promote-best")
    page.click("#promote-best")
    page.wait_for_url("**/model-configs/*/")
    best = best_trial(study)
    assert trials[best].values[0] == max(points[n][0] for n in pareto(study))
    promoted = ModelConfig.objects.get(name=f"{study.name} · trial {best} model")
    assert promoted.model["retrieval_weight"] == trials[best].params["model.retrieval_weight"]
    assert promoted.training["epochs"] == 2
    shot(page, "promoted")
