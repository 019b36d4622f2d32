import collections

from battloop.demo.fleet import PACK_MODELS, generate
from battloop.demo.geography import PROVINCES, prefectures
from battloop.registry.codes import parse_gbt34014


def test_prefectures_are_real_mainland_units():
    prefs = prefectures()
    assert 330 <= len(prefs) <= 345
    by_code = {p.adcode: p for p in prefs}
    gz = by_code["440100"]
    assert gz.name == "广州市" and gz.is_capital and abs(gz.latitude - 23.13) < 0.1 and abs(gz.longitude - 113.26) < 0.1
    assert {p.province_code for p in prefs} == set(PROVINCES)


def test_deterministic_under_seed_and_sized_by_arguments():
    a, b, c = generate(200, 3, seed=1), generate(200, 3, seed=1), generate(200, 3, seed=2)
    assert a.packs == b.packs and a.sites == b.sites
    assert a.packs != c.packs
    assert len(a.sites) == 200 and 400 < len(a.packs) < 900
    assert len({p["serial"] for p in a.packs}) == len(a.packs)


def test_fleet_is_realistic():
    fleet = generate(2000, 4, seed=3)
    chem = {m[0]: m[3] for m in PACK_MODELS}
    counts = collections.Counter(chem[p["model"]] for p in fleet.packs)
    assert counts["LFP"] / len(fleet.packs) > 0.8  # LFP dominates telecom backup
    prov = collections.Counter(s["province"] for s in fleet.sites)
    assert prov["广东省"] > prov["青海省"] * 5  # weighted by population
    years = [int(p["install_date"][:4]) for p in fleet.packs]
    assert min(years) >= 2014 and max(years) <= 2026
    assert all(p["manufacture_date"] < p["install_date"] for p in fleet.packs)
    hot = [s["annual_mean_temp_c"] for s in fleet.sites if s["province"] == "海南省"]
    cold = [s["annual_mean_temp_c"] for s in fleet.sites if s["province"] == "黑龙江省"]
    assert min(hot) > max(cold)
    repurposed = [p for p in fleet.packs if p["origin"] == "repurposed_ev"]
    assert repurposed and all(int(p["install_date"][:4]) >= 2018 for p in repurposed)
    for p in repurposed[:50]:
        parsed = parse_gbt34014(p["original_identity"])
        assert parsed.product_type == "pack"
    outdoor = [s["cabinet_offset_c"] for s in fleet.sites if s["site_type"] == "outdoor_cabinet"]
    indoor = [s["cabinet_offset_c"] for s in fleet.sites if s["site_type"] == "indoor"]
    assert sum(outdoor) / len(outdoor) > sum(indoor) / len(indoor) + 3
