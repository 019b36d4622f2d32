"""The health outlook page in a real browser (Debian's Chromium via Playwright, headless,
no network): the retirement chart draws, the site table and KPIs match the stored outlook."""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed (apt-get install chromium)")


def test_outlook_page_in_chromium(live_server, transactional_db, demo_instance):
    from playwright.sync_api import sync_playwright

    from battloop.health.records import SiteBackupOutlook

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo_instance(30, seed=31)
    call_command("assess")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        offsite = []
        page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(("http://localhost", "http://127.0.0.1", "data:", "blob:")) else None)
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "battloop-demo")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        page.click("nav >> text=Outlook")
        page.wait_for_selector("#chart-retire canvas", timeout=15000)
        page.screenshot(path=str(ARTIFACTS / "health-outlook.png"), full_page=True)
        from battloop.web import access
        from django.contrib.auth import get_user_model

        actor = access.actor_for_user(get_user_model().objects.get(username="demo"))
        visible = SiteBackupOutlook.objects.filter(site__in=access.sites_for(actor))
        assert page.inner_text("#kpi-short-now").strip() == str(visible.filter(meets_now=False).count())
        rows = page.locator("#site-table tr").count() - 1
        assert rows == min(visible.count(), 50)

        # a pack's SOH fan chart: drawn from the stored forecast, starting at today's band, with
        # the triage thresholds as lines
        from battloop.health.records import HealthAssessment

        h = (HealthAssessment.objects.filter(pack__site__in=access.sites_for(actor)).exclude(forecast={})
             .select_related("pack").order_by("soh_p50_pct").first())
        page.goto(f"{live_server.url}/packs/{h.pack.serial}/")
        page.wait_for_selector("#chart-forecast canvas", timeout=15000)
        option = page.evaluate("() => { const o = echarts.getInstanceByDom(document.getElementById('chart-forecast')).getOption();"
                               " return {series: o.series.map(s => ({name: s.name, data: s.data})),"
                               " lines: o.series[2].markLine.data.map(m => m.yAxis)}; }")
        p50 = next(s["data"] for s in option["series"] if s["name"] == "P50")
        assert [v for _, v in p50] == [h.soh_p50_pct] + h.forecast["soh_pct"]["p50"]
        assert p50[0][0] == h.forecast["as_of"] and p50[1][0][:4] == str(int(h.forecast["as_of"][:4]) + 1)
        width = next(s["data"] for s in option["series"] if s["name"] == "P10–P90")
        assert [round(v, 6) for _, v in width] == [round(b - a, 6) for a, b in zip([h.soh_p10_pct] + h.forecast["soh_pct"]["p10"],
                                                                                [h.soh_p90_pct] + h.forecast["soh_pct"]["p90"])]
        assert 80.0 in option["lines"] and option["lines"] == sorted(option["lines"], reverse=True)
        page.wait_for_load_state("networkidle")  # the telemetry chart's request too, before the server stops
        page.screenshot(path=str(ARTIFACTS / "pack-forecast.png"), full_page=True)
        browser.close()
        # the ORM calls above ran inside Playwright's event loop, which gives them a database connection
        # of their own; close it, or it outlives the test and blocks dropping the test database
        connections.close_all()
    assert not offsite, f"the page fetched from outside: {offsite[:5]}"
