"""The logistics page in a real browser (Debian's Chromium via Playwright, headless, no network):
log in, open Logistics from the nav, switch scenario, open a shipment."""

import os
import re
import shutil
from pathlib import Path

import pytest

from logistics_registry_helpers import build_logistics_world

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def logistics_page(live_server, transactional_db, tmp_path):
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    world = build_logistics_world(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        offsite = []
        page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(("http://localhost", "http://127.0.0.1", "data:", "blob:")) else None)
        yield page, live_server.url, world
        context.close()
        browser.close()
        assert not offsite, f"the pages fetched from outside: {offsite[:5]}"


def test_logistics_page_in_chromium(logistics_page):
    page, base, world = logistics_page
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "ctc-u")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    page.click("nav >> text=Logistics")
    page.wait_for_selector("#hub-table")
    assert page.inner_text("#plan-status").strip() == "optimal"
    hub = world["base"].opened_hubs[0]["hub_id"]
    assert hub in page.inner_text("#hub-table")
    page.screenshot(path=str(ARTIFACTS / "logistics-plan.png"), full_page=True)
    page.select_option("#scenario-select", "cheap-hubs")  # submits the form on change
    page.wait_for_url(re.compile(r"scenario=cheap-hubs"))
    assert f"{world['cheap'].cost_breakdown['fixed']:,.0f}" in page.inner_text("#cost-table")
    page.click("#shipment-table >> text=S-CTC-1")
    page.wait_for_selector("#manifest-table")
    assert "UN3480" in page.inner_text("#manifest-table") and "SH2" in page.inner_text("#discrepancy-table")
