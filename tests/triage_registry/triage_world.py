"""A small registry for the triage-on-registry tests: an operator, an integrator, a
white-listed and an informal recycler, an LFP and an NMC model, a site, and packs taken
out of service into storage at an outlet."""

from __future__ import annotations

from pathlib import Path

from battloop.registry.events import transition
from battloop.registry.importer import import_packs
from battloop.registry.models import Organization, Pack, PackModel, Site

BENCH_HEAD = ("serial,test_date,tested_by,outlet,capacity_ah,test_rate_c,test_temp_c,dcir_mohm,baseline_dcir_mohm,"
              "ocv_v,insulation_mohm,cell_v_max_mv,cell_v_min_mv,visual_ok,swelling,leakage,deformation,"
              "thermal_events,fault_count,anti_theft_locked")


def bench_row(serial, date="2026-11-20", capacity_ah=72, dcir_mohm=24, ocv_v=52.8, insulation_mohm=50, vmax=3302,
              vmin=3290, visual_ok="true", swelling="false", leakage="false", deformation="false", thermal=0,
              faults=0, locked="false", temp_c=25):
    return (f"{serial},{date},Li Wei,OUT-GZ-01,{capacity_ah},0.2,{temp_c},{dcir_mohm},20,{ocv_v},{insulation_mohm},"
            f"{vmax},{vmin},{visual_ok},{swelling},{leakage},{deformation},{thermal},{faults},{locked}")


def write_bench(path: Path, *rows: str) -> Path:
    path.write_text(BENCH_HEAD + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def build(tmp_path: Path, serials=("B1", "B2", "B3", "B4"), nmc=("N1",)) -> dict:
    org = {}
    for code, kind, white in [("op", "operator", False), ("oem", "oem", False), ("sli", "second_life_integrator", False),
                              ("rec", "recycler", True), ("trader", "recycler", False)]:
        org[code] = Organization.objects.create(code=code, name=f"Org {code}", kind=kind, recycler_whitelisted=white)
    PackModel.objects.create(code="LFP100", oem=org["oem"], chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100,
                             energy_kwh=4.8, mass_kg=45, cell_count=16, cell_configuration="16S1P", design_life_years=10)
    PackModel.objects.create(code="NMC50", oem=org["oem"], chemistry="NMC", nominal_voltage_v=48, rated_capacity_ah=50,
                             energy_kwh=2.4, mass_kg=20, cell_count=13, cell_configuration="13S1P", design_life_years=8)
    Site.objects.create(code="S1", name="Site one", site_type="macro_bts", owner=org["op"], latitude=23.1, longitude=113.3)
    Site.objects.create(code="MG1", name="Micro-grid one", site_type="off_grid", owner=org["op"], latitude=24.0,
                        longitude=113.0)
    f = tmp_path / "packs.csv"
    lines = ["serial,model,manufacture_date,install_date,site"]
    lines += [f"{s},LFP100,2017-06-01,2017-09-01,S1" for s in serials]
    lines += [f"{s},NMC50,2018-06-01,2018-09-01,S1" for s in nmc]
    f.write_text("\n".join(lines) + "\n")
    report = import_packs(f, owner="op")
    assert report.applied == len(serials) + len(nmc), report.first_errors
    for s in [*serials, *nmc]:
        retire(s, org["op"])
    return {"org": org}


def retire(serial: str, op: Organization) -> Pack:
    """Take an installed pack out of service and store it at an outlet."""
    p = Pack.objects.get(serial=serial)
    transition(p, "removed", "tech", op, {"reason": "end of first life"})
    transition(p, "in_storage", "tech", op, {"outlet": "OUT-GZ-01"})
    return Pack.objects.get(serial=serial)
