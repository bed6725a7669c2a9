"""A person's path through the pages in a real browser (Chromium via Playwright), against a live server and again
against the platform started the production way (`manage.py serve`), with a real `manage.py db_worker` process:
sign in, upload, configure, run, watch, read, compare; and another organisation sees none of it. A screenshot of
each page is saved under test-output/screenshots/ (production/ for the second run).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Tenant, Workers, make_tenant, synthetic_frames, upload_dataset
from tests.web.pages.conftest import HEARTBEAT_TIMEOUT, Platform

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path, settings: Any) -> Iterator[Workers]:
    """The tests' worker processes, with the browser walks' heartbeat timeout there and in this process."""
    settings.TANDEM_HEARTBEAT_TIMEOUT = float(HEARTBEAT_TIMEOUT)
    pool = Workers(tmp_path, {"TANDEM_HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT})
    try:
        yield pool
    finally:
        pool.stop_all()


FINISH_SECONDS = 150


@pytest.fixture
def transactions_csv(tmp_path: Path) -> Path:
    """600 transactions of 40 buyers and 120 products (four product groups, ratings higher inside a buyer's)."""
    transactions, products = synthetic_frames(n_buyers=40, n_products=120, per_buyer=15)
    path = tmp_path / "orders.csv"
    transactions.merge(products, on="product")[["buyer", "product", "category", "rating", "ts"]].to_csv(
        path, index=False
    )
    return path


class Screens:
    """Saves full-page screenshots named in the order they were taken."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.n = folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Any, name: str) -> None:
        self.n += 1
        page.evaluate("window.scrollTo(0, 0)")  # else the sticky top bar is drawn where the page was scrolled to
        page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)


# Messages the browser logged about the Content-Security-Policy refusing something the pages do.
_CSP_REFUSALS: list[str] = []


@pytest.fixture(autouse=True)
def _pages_keep_to_the_content_security_policy() -> Iterator[None]:
    _CSP_REFUSALS.clear()
    yield
    assert not _CSP_REFUSALS, _CSP_REFUSALS


def _wait_until(page: Any, expression: str, arg: Any = None, timeout: float = 10.0) -> None:
    """Poll `expression` in the page until it is truthy. (Playwright's wait_for_function evaluates a string
    with eval inside the page, which the pages' Content-Security-Policy refuses, as it should.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def _sign_in(browser: Any, base: str, tenant: Tenant, shot: Screens | None = None) -> Any:
    clipboard = ["clipboard-read", "clipboard-write"]  # the spec's copy button writes to it
    page = browser.new_context(viewport=VIEWPORT, base_url=base, permissions=clipboard).new_page()
    page.on("console", lambda m: "Content Security Policy" in m.text and _CSP_REFUSALS.append(m.text))
    page.set_default_timeout(15_000)
    page.goto("/dashboard/")
    page.wait_for_url("**/login/?next=/dashboard/")
    page.fill("#id_username", tenant.user.username)
    page.fill("#id_password", tenant.password)
    if shot is not None:
        shot(page, "login")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    return page


def _upload(page: Any, shot: Screens, csv: Path) -> int:
    page.goto("/datasets/")
    shot(page, "datasets-empty")
    page.click("text=Upload a dataset >> nth=0")
    page.set_input_files("#id_transactions", str(csv))
    # The page reads the CSV's header: the name and the three columns are suggested from it.
    _wait_until(page, "document.querySelector('#id_buyer_id_column').value === 'buyer'")
    assert page.input_value("#id_name") == "orders"
    assert (page.input_value("#id_product_id_column"), page.input_value("#id_timestamp_column")) == ("product", "ts")
    shot(page, "dataset-upload")
    # A slow link (8 kB/s up) so that the upload takes a moment and its progress bar can be seen moving.
    network = page.context.new_cdp_session(page)
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 8000}
    network.send("Network.emulateNetworkConditions", slow)
    page.click("#upload-form button[type=submit]")
    _wait_until(page, "document.querySelector('.upload-progress progress').value > 0")
    assert page.locator(".upload-progress").is_visible()
    shot(page, "dataset-uploading")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))
    network.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
    # The worker reads the whole file in the background; the page says so and reloads itself once it is done.
    page.wait_for_selector("#dataset-status[data-status=ready]", state="attached", timeout=90_000)
    page.wait_for_selector("tr[data-column=rating] svg.spark rect")  # histograms arrive by htmx
    assert "600 transactions" in page.inner_text(".page-head")
    shot(page, "dataset-detail")
    dataset = int(re.search(r"/datasets/(\d+)/", page.url).group(1))
    page.goto("/datasets/")
    assert "orders.csv" in page.inner_text("#datasets")
    shot(page, "datasets")
    return dataset


def _feature_config(page: Any, shot: Screens, dataset: int) -> None:
    page.goto(f"/feature-configs/new/?dataset={dataset}")
    page.fill("#id_name", "ids and category")
    rows = {name: page.locator(f"tr[data-column={name}]") for name in ("buyer", "product", "category", "rating")}
    for name in ("buyer", "product"):
        rows[name].locator("input[name^=dim_]").fill("8")
    rows["category"].locator("select[name^=side_]").select_option("product")
    rows["category"].locator("select[name^=transform_]").select_option("categorical")
    rows["category"].locator("input[name^=dim_]").fill("5000")  # too wide: refused on the category row
    page.click("text=Save feature config")
    assert "4096" in page.locator("tr[data-column=category] .field-error").inner_text()
    shot(page, "feature-config-error")
    rows["category"].locator("input[name^=dim_]").fill("4")
    assert rows["rating"].locator("select[name^=side_]").input_value() == ""
    assert page.locator("#id_features-target option").all_inner_texts() == ["none (retrieval only)", "rating"]
    page.select_option("#id_features-target", "rating")
    shot(page, "feature-config-form")
    page.click("text=Save feature config")
    page.wait_for_url(re.compile(r".*/feature-configs/\d+/$"))  # the new config's own page
    page.goto("/feature-configs/")
    assert "category · categorical · 4" in page.inner_text("#feature-configs")
    shot(page, "feature-configs")


def _layers(page: Any, name: str, sizes: list[int]) -> None:
    """Edit a layer list through its buttons: remove every row, then add one per size."""
    field = page.locator(f"[data-layer-list][data-name={name}]")
    while field.locator("[data-remove-row]").count():
        field.locator("[data-remove-row]").first.click()
    for size in sizes:
        field.locator("[data-add-row]").click()
        field.locator("input").last.fill(str(size))


def _model_config(page: Any, shot: Screens, name: str, model_type: str) -> None:
    page.goto("/model-configs/new/")
    page.check(f"input[name=model-type][value={model_type}]")
    page.fill("#id_name", name)
    _layers(page, "model-buyer_tower_layers", [16])
    _layers(page, "model-product_tower_layers", [16])
    for field, value in (("training-batch_size", "128"), ("training-epochs", "2")):
        page.fill(f"#id_{field}", value)
    if model_type == "multitask":
        # Move the sliders with the keyboard, as a person would: one step is 0.1.
        page.focus("#id_model-retrieval_weight")
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        page.focus("#id_model-ranking_weight")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        assert page.inner_text("output[for=id_model-retrieval_weight]") == "1.5"
        assert page.inner_text("output[for=id_model-ranking_weight]") == "0.7"
        _layers(page, "model-rating_head_layers", [8, 4])  # a head must end in 1: refused beside the field
        shot(page, "model-config-form")
        page.click("text=Save model config")
        error = page.locator(".field-error[data-field=model-rating_head_layers]")
        assert "1" in error.inner_text()
        shot(page, "model-config-error")
        _layers(page, "model-rating_head_layers", [8, 1])
    else:
        assert page.locator("#id_model-retrieval_weight").is_hidden()
        assert page.locator("#id_model-rating_head_layers").is_hidden()
        shot(page, "model-config-retrieval")
    page.click("text=Save model config")
    page.wait_for_url(re.compile(r".*/model-configs/\d+/$"))


def _start(page: Any, shot: Screens, model_config: str, name: str, *, show_problems: bool = False) -> int:
    page.goto("/experiments/new/")
    # The only dataset and the only feature config are chosen already; of two model configs, none is.
    assert page.input_value("#id_dataset") and page.input_value("#id_feature_config")
    assert page.input_value("#id_model_config") == ""
    page.select_option("#id_model_config", label=model_config)
    page.fill("#id_name", name)
    page.fill("#id_validation_fraction", "0.2")
    assert page.locator("#id_split_cutoff").is_hidden()  # a random split has no cutoff
    if show_problems:  # a split that cannot work is explained before anything starts
        page.select_option("#id_split_kind", "time")
        page.fill("#id_split_cutoff", "next week")
        assert page.locator("#id_test_fraction").is_hidden()  # the cutoff decides the test rows
        page.click("button[value=validate]")
        assert "is not a date or timestamp" in page.inner_text("#problems")
        assert page.locator("#id_test_fraction").is_hidden()
        shot(page, "experiment-problems")
        page.select_option("#id_split_kind", "random")  # the cutoff is hidden, and no longer sent
        assert page.locator("#id_split_cutoff").is_hidden() and page.locator("#id_test_fraction").is_visible()
    page.click("button[value=validate]")
    page.wait_for_selector("#checks-passed")
    shot(page, f"experiment-validated-{name}")
    page.click("button[value=start]")
    page.wait_for_url(re.compile(r".*/experiments/\d+/$"))
    return int(re.search(r"/experiments/(\d+)/", page.url).group(1))


def _rows(page: Any, experiment: int) -> list[str]:
    return [
        re.sub(r"\s+", " ", t).strip() for t in page.locator(f"#experiment-{experiment} .metric-row").all_inner_texts()
    ]


def _charts_drawn(page: Any, within: str) -> int:
    """How many canvases under `within` hold a Chart.js chart with a drawn area; asserts there are some.

    Charts are drawn after htmx settles a swapped panel, so this waits (a few seconds at most) for them first.
    """
    drawn = """(within) => Array.from(document.querySelectorAll(within + ' canvas[data-chart]')).filter(
               (c) => Chart.getChart(c) && c.width > 0 && c.height > 0).length"""
    all_drawn = f"""(within) => {{ const n = document.querySelectorAll(within + ' canvas[data-chart]').length;
               return n > 0 && ({drawn})(within) === n; }}"""
    with contextlib.suppress(AssertionError):  # the assertion below says what is missing
        _wait_until(page, all_drawn, within)
    count = page.evaluate(drawn, within)
    total = page.locator(f"{within} canvas[data-chart]").count()
    assert total and count == total, f"{count} of {total} charts drawn under {within}"
    # No axis repeats a tick label (34%, 34%, 33%… when too few decimals are shown).
    labels = page.evaluate(
        """(within) => Array.from(document.querySelectorAll(within + ' canvas[data-chart]')).flatMap((c) =>
               Object.values(Chart.getChart(c).scales).map((s) => [c.dataset.chart, s.id, s.ticks.map((t) => t.label)]))""",
        within,
    )
    for chart, axis, ticks in labels:
        assert len(set(map(str, ticks))) == len(ticks), (chart, axis, ticks)
    return count


def _close_runs(experiment: int) -> None:
    """Three more completed runs like `experiment`, each a little better (+0.05 points of recall@100): their
    best-so-far line spans a fraction of a percent, where whole-percent ticks would repeat."""
    from tandem.web.experiments.models import Experiment

    for i in range(1, 4):
        run = Experiment.objects.get(pk=experiment)
        run.pk, run.name = None, f"close {i}"
        run.recall_at_100 += 0.0005 * i
        run.finished_at += timedelta(minutes=i)
        run.save()


def _configs_in_use(page: Any, shot: Screens, dataset: int) -> None:
    """Read each config's page; edits of a used config are refused, so a copy is edited and then deleted."""
    page.goto("/feature-configs/")
    page.click("#feature-configs >> text=ids and category")
    assert "embedding 8" in page.inner_text("#features") and "predicts rating" in page.inner_text("#target")
    assert page.locator("#record-actions .btn.disabled", has_text="Edit").is_visible()
    shot(page, "feature-config-detail")
    page.goto(page.url + "edit/")
    assert "used by 5 experiments" in page.inner_text("#refused")  # the two runs and three close ones
    shot(page, "feature-config-edit-refused")
    page.click("#copy-and-edit")
    assert page.input_value("#id_name") == "ids and category (copy)"
    assert page.locator("tr[data-column=category] select[name^=side_]").input_value() == "product"
    shot(page, "feature-config-copy")

    page.goto("/model-configs/")
    page.click("#model-configs >> text=multitask small")
    meaning = page.inner_text("#meaning")
    assert "Buyer tower 16" in meaning and "total = 1.5 × retrieval loss + 0.7 × ranking loss" in meaning
    page.click("text=The model section")
    assert page.locator("tr[data-fact='index.hnsw_m']").is_visible()
    shot(page, "model-config-detail")
    page.click("#record-actions button:has-text('Delete')")
    assert "cannot be deleted" in page.inner_text(".messages")
    page.click("#copy")
    assert page.input_value("#id_name") == "multitask small (copy)"
    page.fill("#id_name", "multitask wider")
    _layers(page, "model-buyer_tower_layers", [32, 16])
    page.click("text=Save model config")
    page.wait_for_selector("#meaning")
    assert "Buyer tower 32 → 16" in page.inner_text("#meaning")
    page.click("#edit")  # an unused copy can be edited
    page.fill("#id_training-epochs", "4")
    shot(page, "model-config-edit")
    page.click("text=Save model config")
    assert "4 epochs" in page.inner_text("#meaning")
    shot(page, "model-config-copy-detail")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#record-actions button:has-text('Delete')")
    page.wait_for_url("**/model-configs/")
    assert "multitask wider" not in page.inner_text("#model-configs")

    page.goto(f"/datasets/{dataset}/")
    assert page.locator("#columns-fixed").is_visible() and page.locator("#columns-form").count() == 0
    page.fill("#name-form #id_name", "orders renamed")
    page.click("#name-form button[type=submit]")
    page.wait_for_selector("text=Name saved.")
    assert page.inner_text("h1") == "orders renamed"
    page.wait_for_selector("tr[data-column=rating] svg.spark rect")
    shot(page, "dataset-in-use")
    page.fill("#name-form #id_name", "orders")
    page.click("#name-form button[type=submit]")
    page.wait_for_selector("text=Name saved.")


def _api_docs(page: Any, shot: Screens) -> None:
    """The API's documentation is one click away, and one click leads back."""
    page.click("nav >> text=API docs")
    page.wait_for_selector(".swagger-ui .opblock")
    shot(page, "api-docs")
    page.click("#back-to-pages")
    page.wait_for_url("**/dashboard/")


def test_a_person_trains_reads_and_compares_experiments(
    browser: Any, platform: Platform, workers: Workers, transactions_csv: Path, screenshots: Path
) -> None:
    acme, hooli = make_tenant("Acme"), make_tenant("Hooli")
    for tenant in (acme, hooli):
        platform.account(tenant)
    workers.start()  # warms up (Django, torch) while the person configures
    shot = Screens(screenshots / "production" if platform.production else screenshots)
    page = _sign_in(browser, platform.url, acme, shot)
    shot(page, "dashboard-empty")

    dataset = _upload(page, shot, transactions_csv)
    _feature_config(page, shot, dataset)
    _model_config(page, shot, "multitask small", "multitask")
    _model_config(page, shot, "retrieval small", "retrieval")
    page.goto("/model-configs/")
    shot(page, "model-configs")

    multitask = _start(page, shot, "multitask small · multitask", "mt", show_problems=True)
    shot(page, "experiment-detail-queued")
    retrieval = _start(page, shot, "retrieval small · retrieval", "ret")

    page.goto("/experiments/")
    shot(page, "experiments-running")
    # The cards refresh themselves (htmx polling) until the worker has finished both runs.
    for experiment in (multitask, retrieval):
        card = page.locator(f"#experiment-{experiment}")
        card.and_(page.locator("[data-status=completed], [data-status=failed]")).wait_for(timeout=FINISH_SECONDS * 1000)
        assert card.get_attribute("data-status") == "completed", card.inner_text() + workers.logs()
    shot(page, "experiments-completed")
    mt_rows, ret_rows = _rows(page, multitask), _rows(page, retrieval)
    assert len(mt_rows) == 3 and len(ret_rows) == 2
    recall = r"Retrieval: R@5 \d+\.\d% R@10 \d+\.\d% R@50 \d+\.\d% R@100 \d+\.\d%"
    assert re.fullmatch(recall, mt_rows[0]) and re.fullmatch(recall, ret_rows[0]), (mt_rows, ret_rows)
    lift = r"Lift over best baseline: all@10 ×\d+\.\d\d all@100 ×\d+\.\d\d .*explore@100 ×\d+\.\d\d"
    assert re.fullmatch(lift, mt_rows[1]) and re.fullmatch(lift, ret_rows[1]), (mt_rows, ret_rows)
    assert re.fullmatch(r"Ranking: RMSE \d+\.\d{3} MAE \d+\.\d{3} Test RMSE \d+\.\d{3} Test MAE \d+\.\d{3}", mt_rows[2])

    page.goto(f"/experiments/{multitask}/")
    assert _charts_drawn(page, "#curves") == 5  # three losses, validation recall, validation errors
    assert _charts_drawn(page, "#weights") == 6  # query, candidate, rating head: trend and histogram each
    metrics = page.inner_text("#metrics").lower()
    assert "best baseline" in metrics and "new products" in metrics
    assert "test rmse" in metrics and "mean-predictor baseline" in metrics
    assert "on rating" in page.inner_text("#metrics [data-scale]")
    assert "retrieval 1.5 · ranking 0.7" in page.inner_text("#configuration")
    assert page.locator("#deploy-panel").is_visible()
    page.click("text=The full spec")
    page.click("button[data-copy=spec]")
    _wait_until(page, "document.querySelector('button[data-copy=spec]').textContent === 'Copied'")
    assert '"retrieval_weight": 1.5' in page.evaluate("navigator.clipboard.readText()")
    shot(page, "experiment-detail")
    page.goto(f"/experiments/{retrieval}/")
    _charts_drawn(page, "#curves")
    shot(page, "experiment-detail-retrieval")  # one metrics panel and two curves fill their rows

    page.goto("/experiments/")
    page.check(f"#experiment-{multitask} input[name=ids]")
    page.check(f"#experiment-{retrieval} input[name=ids]")
    page.click("text=Compare selected")
    page.wait_for_selector("#comparison")
    assert page.locator("tr[data-metric=recall_at_100] td.best").count() == 1
    assert page.locator("tr[data-metric=test_rmse] td.best").count() == 1  # only the multitask run has one
    assert _charts_drawn(page, "#compare-curves") >= 3
    shot(page, "compare")

    page.goto("/dashboard/")
    page.click("[role=tab]:has-text('Retrieval')")
    page.wait_for_selector("[data-leaderboard=retrieval]")
    assert "ret" in page.inner_text("[data-leaderboard=retrieval]")
    # The tab's address is pushed to the history; opened from there, the panel draws its chart.
    page.goto("/dashboard/?type=retrieval")
    _charts_drawn(page, "#dashboard-panel")
    shot(page, "dashboard-retrieval")
    page.click("[role=tab]:has-text('Multitask')")
    page.wait_for_selector("[data-leaderboard=multitask]")
    _charts_drawn(page, "#dashboard-panel")
    titles = page.evaluate(
        "(c) => [Chart.getChart(c).scales.y.options.title.text, Chart.getChart(c).scales.y1.options.title.text]",
        page.locator("#dashboard-panel canvas").element_handle(),
    )
    assert titles == ["recall@100", "test RMSE"]
    shot(page, "dashboard-multitask")
    _close_runs(retrieval)
    page.goto("/dashboard/?type=retrieval")
    _charts_drawn(page, "#dashboard-panel")  # values 0.05 points apart: the ticks show enough decimals to differ
    shot(page, "dashboard-close-runs")

    _configs_in_use(page, shot, dataset)
    _api_docs(page, shot)

    other = _sign_in(browser, platform.url, hooli)
    for url in ("/experiments/", "/datasets/", "/feature-configs/", "/model-configs/", "/compare/", "/dashboard/"):
        other.goto(url)
        text = other.inner_text("main")
        for name in ("orders", "ids and category", "multitask small", "retrieval small", "mt", "ret"):
            assert not re.search(rf"\b{re.escape(name)}\b", text), (url, name)
    other.goto("/experiments/")
    shot(other, "other-organisation-experiments")
    for url in (f"/experiments/{multitask}/", f"/datasets/{dataset}/", f"/compare/?ids={multitask}&ids={retrieval}"):
        assert other.goto(url).status == 404, url


def test_a_person_starts_from_the_recommended_settings(
    browser: Any, live_server: Any, synthetic_files: dict[str, Path], screenshots: Path
) -> None:
    """With a dataset and no configs, the new-experiment page offers the recommended settings; one click makes
    both configs, chooses them with the recommended time split, and the experiment passes every check."""
    acme = make_tenant("Acme")
    aggregate = json.dumps([{"name": "total_rating", "fn": "sum", "column": "rating"}])
    upload_dataset(acme, synthetic_files, name="lines", aggregate=aggregate)
    shot = Screens(screenshots / "recommended")
    shot.folder.mkdir(exist_ok=True)
    page = _sign_in(browser, live_server.url, acme)
    page.goto("/experiments/new/")
    assert "An experiment needs a dataset, a feature config and a model config" in page.inner_text("main")
    shot(page, "experiment-new-empty")
    page.click("#use-recommended")
    page.wait_for_url(re.compile(r".*/experiments/new/\?.*split_cutoff="))
    assert "(two-stage recommend), time split at" in page.inner_text("main")
    assert page.input_value("#id_split_kind") == "time" and page.input_value("#id_split_cutoff")
    chosen = [page.locator(f"#id_{f} option:checked").inner_text() for f in ("feature_config", "model_config")]
    assert chosen[0].startswith("Recommended features · lines") and chosen[1].startswith("Recommended model · lines")
    page.click("button[value=validate]")
    page.wait_for_selector("#checks-passed")
    shot(page, "experiment-new-recommended")
    page.goto("/model-configs/")
    page.click("text=Recommended model · lines")
    assert "Two-stage recommend" in page.inner_text("#meaning")
    shot(page, "model-config-recommended")
