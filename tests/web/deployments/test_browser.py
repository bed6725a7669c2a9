"""Deploy and Try it in a real browser (Chromium via Playwright) against a live server: the htmx buttons swap the
panel, the form's pressed button picks the request, and the rows arrive under the form. A screenshot is saved
under test-output/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest

from tandem.web.deployments.models import Deployment
from tests.web.conftest import Tenant
from tests.web.deployments.conftest import Servers
from tests.web.pages.test_browser import _sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_a_person_deploys_an_experiment_and_tries_it(
    browser: Any, live_server: Any, screenshots: Any, acme: Tenant, completed: Any, servers: Servers
) -> None:
    experiment = completed(acme)
    page = _sign_in(browser, live_server.url, acme)
    page.goto(f"/experiments/{experiment.pk}/")
    page.click("#deploy-panel button:has-text('Deploy')")
    page.wait_for_selector("#deploy-panel[data-deployment=running] #try-form")
    servers.add(Deployment.objects.get(experiment=experiment).pid)

    # The buyer id comes first and offers the ids the model learnt.
    assert page.locator("#try-form .field label").first.inner_text() == "buyer"
    assert page.locator("#known-buyer_0 option[value=b1]").count() == 1
    page.fill("#try-form [name=buyer_0]", "b1")
    page.fill("#try-form [name=k]", "5")
    page.click("#try-form button[value=recommend]")
    page.wait_for_selector("#try-answer[data-action=recommend] #try-rows")
    assert page.locator("#try-rows tbody tr").count() == 5
    assert page.locator("#try-rows th", has_text="category").count() == 1  # products with their attributes
    assert page.locator("#try-rows tbody tr").first.inner_text().count("group") == 1
    page.fill("#try-form [name=product_ids]", "p1, p2, nope")
    page.click("#try-form button[value=rank]")
    page.wait_for_selector("#try-answer[data-action=rank] .form-errors")
    assert "unknown product id(s) in product_ids: 'nope'" in page.inner_text("#try-answer")
    page.fill("#try-form [name=product_ids]", "p1, p2, p3")
    page.click("#try-form button[value=rank]")
    page.wait_for_selector("#try-answer[data-action=rank] #try-rows")
    assert page.locator("#try-rows tbody tr").count() == 3
    page.click("#try-form button[value=retrieve]")
    page.wait_for_selector("#try-answer[data-action=retrieve] #try-rows")
    page.locator("#deploy-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "deploy-try-it.png"), full_page=True)
    # A buyer the model never saw gets the most popular products: their counts are not shown as the model's score.
    page.fill("#try-form [name=buyer_0]", "someone new")
    page.click("#try-form button[value=retrieve]")
    page.wait_for_selector("#try-fallback")
    assert set(page.locator("#try-rows td.score").all_inner_texts()) == {"—"}
    assert page.locator("#try-rows td[data-bought]").count() == 5
    page.screenshot(path=str(screenshots / "deploy-try-it-fallback.png"), full_page=True)

    page.click("#deploy-panel button:has-text('Stop')")
    page.wait_for_selector("#deploy-panel[data-deployment=stopped] button:has-text('Deploy')")
    page.screenshot(path=str(screenshots / "deploy-stopped.png"), full_page=True)
