"""The triage page (KPIs for a period, targets met / not met) and the pack page's bench test
and warranty, in a real browser: Debian's Chromium driven by Playwright, headless."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections

from battloop.triage.bench import import_bench
from battloop.web.models import Membership

from triage_world import bench_row, build, write_bench

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed")


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM calls of the fixtures run in Playwright's thread
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        pg = context.new_page()
        offsite = []
        pg.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(("http://localhost", "http://127.0.0.1", "data:", "blob:")) else None)
        yield pg
        context.close()
        browser.close()
        # the test body's ORM calls ran inside Playwright's event loop, which gives them a database
        # connection of their own; close it, or it outlives the test and blocks dropping the test database
        connections.close_all()
        assert not offsite, f"the pages fetched from outside: {offsite[:5]}"


def test_triage_kpis_and_warranty_in_the_browser(live_server, transactional_db, tmp_path, page):
    w = build(tmp_path)
    import_bench(write_bench(tmp_path / "b.csv", bench_row("B1", capacity_ah=72), bench_row("B2", capacity_ah=45),
                             bench_row("B3", visual_ok="false", swelling="true")))
    call_command("triage", "run")
    call_command("triage", "redeploy", "B1", "--site", "MG1", "--integrator", "sli",
                 "--warranty", "2 years or 1,000 cycles to 70%")
    u = get_user_model().objects.create_user("op-admin", password="pw-admin")
    Membership.objects.create(user=u, organization=w["org"]["op"], role="admin")

    base = live_server.url
    page.goto(f"{base}/triage/")
    page.fill("input[name=username]", "op-admin")
    page.fill("input[name=password]", "pw-admin")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/triage/$"))
    # 5 retired (B1-B4, N1); B1 and B2 routed to reuse = evaluated: 40 % ≥ 20 %
    assert page.inner_text("#kpi-retired") == "5"
    assert page.inner_text("#kpi-evaluated") == "40.0 %" and page.inner_text("#kpi-recycle") == "0.0 %"
    assert page.inner_text("#kpi-certified") == "—"  # nothing routed to recycling
    assert page.inner_text("#target-evaluated") == "met"
    assert "class_b" in page.inner_text("#triage-table")
    page.screenshot(path=str(ARTIFACTS / "triage-kpis.png"), full_page=True)
    page.fill("input[name=from]", "2020-01-01")
    page.fill("input[name=to]", "2020-12-31")
    page.click("#triage-kpis button[type=submit]")
    page.wait_for_url(re.compile(r"from=2020-01-01"))
    assert page.inner_text("#kpi-retired") == "0" and page.locator("#target-evaluated").count() == 0

    page.goto(f"{base}/packs/B1/")
    assert "active" in page.inner_text("#warranty") and "2 years or 1,000 cycles to 70%" in page.inner_text("#warranty")
    assert "72.0 %" in page.inner_text("#bench-result")
    page.screenshot(path=str(ARTIFACTS / "pack-warranty.png"), full_page=True)
