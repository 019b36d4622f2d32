"""battloop assess on a demo fleet with simulated telemetry: stored SOH and end-of-life
quantiles are ordered, track the truth behind the biased BMS, and show on the dashboard."""


import numpy as np
import pytest
from django.core.management import call_command

from battloop.health.records import HealthAssessment


@pytest.fixture
def demo(demo_instance):
    return demo_instance(40, seed=21)


def test_assess_stores_ordered_quantiles(demo, capsys):
    call_command("assess")
    assert "assessed" in capsys.readouterr().out
    rows = list(HealthAssessment.objects.select_related("pack", "pack__latest_reading"))
    live = [p for p in demo.packs if p["state"] in ("installed", "flagged")]
    assert len(rows) == len(live)
    for h in rows:
        assert h.soh_p10_pct <= h.soh_p50_pct <= h.soh_p90_pct <= 100
        assert h.evidence_count > 0
        if h.eol80_p10 and h.eol80_p50 and h.eol80_p90:
            assert h.eol80_p10 <= h.eol80_p50 <= h.eol80_p90
    # The BMS reports 1-4 pp high; the assessment corrects most of that optimism.
    gap = np.mean([h.pack.latest_reading.soh_pct - h.soh_p50_pct for h in rows])
    assert 0.5 < gap < 5
    # Older packs have less health left.
    old = [h.soh_p50_pct for h in rows if h.pack.install_date.year <= 2017]
    new = [h.soh_p50_pct for h in rows if h.pack.install_date.year >= 2023]
    assert old and new and np.mean(old) < np.mean(new) - 3


def test_dashboard_shows_soh_distribution(demo, client):
    from django.contrib.auth import get_user_model

    from battloop.web.models import Membership

    call_command("assess")
    user = get_user_model().objects.get(username="demo")
    assert Membership.objects.filter(user=user).exists()
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'id="chart-soh"' in html and "data-soh" in html


def test_soh_histogram_counts_every_assessed_pack(demo):
    from battloop.registry.models import Pack
    from battloop.web.views import _soh_histogram

    call_command("assess")
    hist = _soh_histogram(Pack.objects.all())
    values = list(HealthAssessment.objects.values_list("soh_p50_pct", flat=True))
    assert sum(hist["counts"]) == len(values)
    in_top_band = sum(1 for v in values if v >= 95)
    assert hist["counts"][-1] == in_top_band
    assert hist["counts"][0] == sum(1 for v in values if v < 50)


def test_stored_soh_band_covers_the_simulated_truth(demo):
    # the demo world knows each pack's true capacity (full_ah, rated x the simulated q); the BMS
    # reports SOH biased by 1-4 pp with noise, so the stored band has to earn its coverage
    from battloop.telemetry.service import lake

    call_command("assess")
    truth = dict(lake().connect().execute(
        "SELECT pack_serial, full_ah FROM readings WHERE full_ah IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY pack_serial ORDER BY ts DESC) = 1").fetchall())
    rows = [(h, 100 * truth[h.pack.serial] / h.pack.model.rated_capacity_ah)
            for h in HealthAssessment.objects.select_related("pack__model") if h.pack.serial in truth]
    assert len(rows) > 100
    inside = np.mean([h.soh_p10_pct <= soh <= h.soh_p90_pct for h, soh in rows])
    mae = np.mean([abs(h.soh_p50_pct - soh) for h, soh in rows])
    # measured on the 2,000-site demo, whose packs start off rated by sd 1 %: 85 % inside, MAE 0.84 pp
    # (SOH without the initial-capacity offset: 74 % inside, MAE 0.90 pp)
    assert 0.65 <= inside <= 0.97, inside
    assert mae < 1.5, mae
