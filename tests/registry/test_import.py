import csv
import threading

import openpyxl
import pytest
from django.db import connection

from battloop.registry.audit import verify_chains
from battloop.registry.importer import ImportFailed, import_models, import_packs, import_sites
from battloop.registry.models import ImportBatch, Pack, PackEvent, Site

from registry_helpers import write

HEADER_ZH = "序列号,型号,生产日期,安装日期,站点编码,额定容量\n"


def quarantine_rows(report):
    with open(report.quarantine_path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_chinese_headers_with_errors_quarantine_report(registry, tmp_path):
    f = write(tmp_path / "packs.csv", HEADER_ZH +
              "SN001,LFP48-100,2019-01-05,2019-03-01,GD001,100\n"
              "SN002,LFP48-100,2019-01-05,2018-03-01,GD001,100\n"   # install before manufacture
              "SN003,LFP48-100,2019-01-05,2019-03-01,GD001,-100\n"  # negative capacity
              "SN001,LFP48-100,2019-01-05,2019-03-01,GD002,100\n"   # duplicate serial
              "SN004,NOPE,2019-01-05,2019-03-01,GD002,100\n"        # unknown model
              "SN005,LFP48-100,2019-02-30,2019-03-01,GD002,100\n"   # impossible date
              "SN006,LFP48-100,2019-01-05,2099-03-01,GD002,100\n"   # future date
              "SN007,LFP48-100,2019-01-05,2019-03-01,ZZ999,100\n"   # unknown site
              "SN008,LFP48-100,2019/01/05,2019年3月1日,GD003,100\n")
    report = import_packs(f)
    assert (report.applied, report.quarantined, report.rows_total) == (2, 7, 9)
    rows = quarantine_rows(report)
    got = {(int(r["row"]), r["field"]) for r in rows}
    assert got == {(3, "install_date"), (4, "nameplate_capacity_ah"), (5, "serial"), (6, "model"), (7, "manufacture_date"),
                   (8, "install_date"), (9, "site")}
    assert all(r["file"] == "packs.csv" for r in rows)
    by_row = {int(r["row"]): r for r in rows}
    assert "before manufacture date 2019-01-05" in by_row[3]["reason"]
    assert "first at row 2" in by_row[5]["reason"]
    assert by_row[4]["value"] == "'-100"  # formula-safe: a leading '-' is neutralised in the CSV
    p = Pack.objects.get(serial="SN008")
    assert str(p.install_date) == "2019-03-01" and p.state == "installed" and p.site.code == "GD003"
    assert p.owner.code == "ctc"  # owner defaults to the site's owner
    assert PackEvent.objects.filter(pack=p).count() == 1
    assert not verify_chains().breaks


def test_reimport_is_noop_and_corrected_file_applies_only_fixed_rows(registry, tmp_path):
    bad = write(tmp_path / "v1.csv", HEADER_ZH + "A1,LFP48-100,2019-01-05,2019-03-01,GD001,100\nA2,LFP48-100,2019-01-05,2018-03-01,GD001,100\n")
    r1 = import_packs(bad)
    assert (r1.applied, r1.quarantined) == (1, 1)
    events_before = PackEvent.objects.count()
    r2 = import_packs(bad)
    assert r2.status == "unchanged" and "already imported" in r2.message
    assert PackEvent.objects.count() == events_before
    fixed = write(tmp_path / "v2.csv", HEADER_ZH + "A1,LFP48-100,2019-01-05,2019-03-01,GD001,100\nA2,LFP48-100,2019-01-05,2019-04-01,GD001,100\n")
    r3 = import_packs(fixed)
    assert (r3.applied, r3.unchanged, r3.quarantined, r3.corrected) == (1, 1, 0, 0)
    assert Pack.objects.count() == 2 and PackEvent.objects.count() == events_before + 1


def test_corrected_attribute_becomes_event(registry, tmp_path):
    import_packs(write(tmp_path / "a.csv", HEADER_ZH + "C1,LFP48-100,2019-01-05,2019-03-01,GD001,100\n"))
    r = import_packs(write(tmp_path / "b.csv", HEADER_ZH + "C1,LFP48-100,2019-01-05,2019-03-02,GD002,100\n"))
    assert r.corrected == 1
    p = Pack.objects.get(serial="C1")
    assert p.site.code == "GD002" and str(p.install_date) == "2019-03-02" and p.event_count == 2
    ev = p.events.get(seq=2)
    assert ev.kind == "corrected" and ev.payload["changes"]["install_date"] == {"from": "2019-03-01", "to": "2019-03-02"}
    assert not verify_chains().breaks


def test_serial_collision_across_organizations(registry, tmp_path):
    import_packs(write(tmp_path / "a.csv", HEADER_ZH + "X1,LFP48-100,2019-01-05,2019-03-01,GD001,100\n"))
    r = import_packs(write(tmp_path / "b.csv", HEADER_ZH + "X1,LFP48-100,2019-01-05,2019-03-01,CM001,100\n"))
    assert r.quarantined == 1 and "serial collision" in quarantine_rows(r)[0]["reason"] and "ctc" in quarantine_rows(r)[0]["reason"]
    assert Pack.objects.get(serial="X1").owner.code == "ctc"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "gb18030"])
def test_bom_and_chinese_encodings(registry, tmp_path, encoding):
    f = write(tmp_path / "p.csv", HEADER_ZH + "E1,LFP48-100,2019-01-05,2019-03-01,GD001,100\n", encoding)
    assert import_packs(f).applied == 1


def test_mixed_encodings_line_by_line(registry, tmp_path):
    data = "序列号,型号,安装日期,站点编码,位置\n".encode("utf-8")
    data += "M1,LFP48-100,2019-03-01,GD001,一号柜\n".encode("utf-8")
    data += "M2,LFP48-100,2019-03-01,GD001,二号柜\n".encode("gbk")
    r = import_packs(write(tmp_path / "mixed.csv", data))
    assert r.applied == 2
    assert Pack.objects.get(serial="M2").location == "二号柜"


def test_semicolon_delimiter_crlf_and_ragged_rows(registry, tmp_path):
    f = write(tmp_path / "p.csv", "serial;model;install_date;site\r\nS1;LFP48-100;2019-03-01;GD001\r\nS2;LFP48-100\r\nS3;LFP48-100;2019-03-01;GD001;extra\r\nS4;LFP48-100;2019-03-01;GD001;\r\n")
    r = import_packs(f)
    assert r.applied == 2 and r.quarantined == 2
    reasons = [q["reason"] for q in quarantine_rows(r)]
    assert "row has 2 fields, the header has 4" in reasons[0] and "row has 5 fields" in reasons[1]


def test_empty_and_headerless_and_binary_files(registry, tmp_path):
    with pytest.raises(ImportFailed, match="empty"):
        import_packs(write(tmp_path / "e.csv", ""))
    with pytest.raises(ImportFailed, match="no header row"):
        import_packs(write(tmp_path / "blank.csv", "\n\n\n"))
    with pytest.raises(ImportFailed, match="binary"):
        import_packs(write(tmp_path / "b.csv", bytes(range(256)) * 10))
    with pytest.raises(ImportFailed, match="no known column"):
        import_packs(write(tmp_path / "u.csv", "foo,bar\n1,2\n"))
    failed = ImportBatch.objects.filter(status="failed")
    assert failed.count() == 4 and Pack.objects.count() == 0
    assert "empty" in failed.get(file_name="e.csv").message


def test_unknown_columns_are_reported_not_fatal(registry, tmp_path):
    r = import_packs(write(tmp_path / "p.csv", "serial,model,install_date,site,colour\nU1,LFP48-100,2019-03-01,GD001,red\n"))
    assert r.applied == 1 and r.unknown_columns == ["colour"]


def test_mapping_file(registry, tmp_path):
    m = write(tmp_path / "map.yaml", "columns:\n  serial: 'Pack ID'\n  model: 'Type'\n  site: 'Where'\n  install_date: 'Since'\ndefaults:\n  owner: ctc\n")
    f = write(tmp_path / "p.csv", "Pack ID,Type,Where,Since\nMP1,LFP48-100,GD001,2020-01-01\n")
    assert import_packs(f, mapping=m).applied == 1
    bad = write(tmp_path / "bad.yaml", "columns:\n  serial: 'Missing'\n")
    with pytest.raises(ImportFailed, match="mapping names column 'Missing'"):
        import_packs(f, mapping=bad)


def test_formula_injection_stays_inert(registry, tmp_path):
    f = write(tmp_path / "p.csv", "serial,model,install_date,site,location\n=cmd|'/c calc'!A1,LFP48-100,2019-03-01,GD001,x\nF1,LFP48-100,2019-03-01,GD001,=HYPERLINK(\"http://x\")\n")
    r = import_packs(f)
    q = quarantine_rows(r)
    assert q[0]["value"].startswith("'=")  # re-exported as text, not a formula
    assert Pack.objects.get(serial="F1").location == '=HYPERLINK("http://x")'  # stored verbatim, escaped on output
    sql = write(tmp_path / "s.csv", "serial,model,install_date,site,location\nQ1,LFP48-100,2019-03-01,GD001,'); DROP TABLE registry_pack;--\n")
    assert import_packs(sql).applied == 1 and Pack.objects.count() == 2


def test_audit_grade_records(registry, tmp_path):
    f = write(tmp_path / "audit.csv", "序列号,站点编码,安装日期\nL1,GD001,2016-05-01\nL2,GD001,\n")
    strict = import_packs(f)
    assert strict.applied == 0 and "--audit" in quarantine_rows(strict)[0]["reason"]
    r = import_packs(f, audit=True, force=True)
    assert r.applied == 1 and r.quarantined == 1
    p = Pack.objects.get(serial="L1")
    assert p.record_grade == "audit" and p.model is None and p.state == "installed"


def test_xlsx_import_with_numeric_serials_and_dates(registry, tmp_path):
    import datetime as dt

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["序列号", "型号", "生产日期", "安装日期", "站点编码"])
    ws.append([123456789, "LFP48-100", dt.datetime(2019, 1, 5), dt.datetime(2019, 3, 1), "GD001"])
    ws.append(["X2", "LFP48-100", dt.datetime(2019, 1, 5), dt.datetime(2018, 3, 1), "GD001"])
    path = tmp_path / "packs.xlsx"
    wb.save(path)
    r = import_packs(path)
    assert (r.applied, r.quarantined) == (1, 1)
    assert Pack.objects.get(serial="123456789").manufacture_date.isoformat() == "2019-01-05"


def test_repurposed_ev_needs_original_identity(registry, tmp_path):
    f = write(tmp_path / "p.csv", "serial,model,install_date,site,origin,original_code\nR1,LFP48-100,2020-01-01,GD001,梯次利用,\nR2,LFP48-100,2020-01-01,GD001,repurposed,ABCPB01TRACE011150000123\n")
    r = import_packs(f)
    assert r.applied == 1 and quarantine_rows(r)[0]["field"] == "original_identity"
    assert Pack.objects.get(serial="R2").origin == "repurposed_ev"


def test_bad_battery_code_names_position(registry, tmp_path):
    f = write(tmp_path / "p.csv", "serial,model,install_date,site,code\nK1,LFP48-100,2020-01-01,GD001,ABCXB01TRACE011150000123\n")
    r = import_packs(f)
    assert "position 4" in quarantine_rows(r)[0]["reason"]


def test_oversize_line_is_skipped_with_bounded_memory(registry, tmp_path):
    import tracemalloc

    path = tmp_path / "big.csv"
    with open(path, "wb") as out:
        out.write(b"serial,model,install_date,site\n")
        out.write(b"B0,LFP48-100,2019-03-01,GD001\n")
        out.write(b"x" * (40 << 20) + b"\n")  # a 40 MB single line
        out.write(b"B1,LFP48-100,2019-03-01,GD001\n")
    tracemalloc.start()
    r = import_packs(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.applied == 2 and r.quarantined == 1
    assert "longer than" in quarantine_rows(r)[0]["reason"]
    assert peak < 16 << 20, f"peak traced memory {peak / 1e6:.1f} MB: the long line was held in memory"


def test_many_rows_stream_in_chunks(registry, tmp_path):
    import tracemalloc

    n = 60_000
    path = tmp_path / "many.csv"
    with open(path, "w") as out:
        out.write("serial,model,install_date,site\n")
        for i in range(n):
            out.write(f"N{i:07d},LFP48-100,2019-03-01,GD00{1 + i % 3}\n")
    tracemalloc.start()
    r = import_packs(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.applied == n and Pack.objects.count() == n and PackEvent.objects.count() == n
    assert peak < 120 << 20, f"peak traced memory {peak / 1e6:.1f} MB"
    assert not verify_chains().breaks


def test_sites_import_with_chinese_types(registry, tmp_path):
    f = write(tmp_path / "s.csv", "站点编码,站点名称,站点类型,纬度,经度,省份,产权单位,备电时长\nS1,一号站,宏站,23.1,113.3,广东,ctc,4\nS2,,卫星,23.1,113.3,广东,ctc,4\nS3,,室外柜,95,113.3,广东,ctc,4\nS4,,离网,23.1,113.3,广东,nobody,4\n")
    r = import_sites(f)
    assert (r.applied, r.quarantined) == (1, 3)
    fields = [q["field"] for q in quarantine_rows(r)]
    assert fields == ["site_type", "latitude", "owner"]
    s = Site.objects.get(code="S1")
    assert s.site_type == "macro_bts" and s.required_backup_hours == 4 and s.name == "一号站"
    assert import_sites(f).status == "unchanged"


def test_models_import_checks_energy_and_configuration(registry, tmp_path):
    f = write(tmp_path / "m.csv", "code,oem,chemistry,nominal_voltage_v,rated_capacity_ah,energy_kwh,mass_kg,cell_count,cell_configuration,design_life_years\n"
              "M150,catl,磷酸铁锂,48,150,7.2,60,15,15S1P,10\nM200,catl,LFP,48,200,20,80,15,15S1P,10\nM50,catl,LFP,48,50,2.4,25,16,15S1P,10\n")
    r = import_models(f)
    assert (r.applied, r.quarantined) == (1, 2)
    assert [q["field"] for q in quarantine_rows(r)] == ["energy_kwh", "cell_configuration"]


def test_models_import_reads_the_datasheet_dc_resistance(registry, tmp_path):
    from battloop.registry.models import PackModel

    f = write(tmp_path / "m.csv", "code,oem,chemistry,nominal_voltage_v,rated_capacity_ah,mass_kg,cell_count,design_life_years,内阻\n"
              "M100,catl,LFP,48,100,45,15,10,21.5\nM150,catl,LFP,48,150,60,15,10,\nMOHM,catl,LFP,48,100,45,15,10,0.02\n")
    r = import_models(f)
    assert (r.applied, r.quarantined) == (2, 1)
    assert PackModel.objects.get(code="M100").dc_resistance_mohm == 21.5
    assert PackModel.objects.get(code="M150").dc_resistance_mohm is None  # optional: not on every datasheet
    q = quarantine_rows(r)[0]
    assert q["field"] == "dc_resistance_mohm" and "mΩ" in q["reason"]  # 0.02 was given in ohms


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_imports_lose_nothing(tmp_path):
    from battloop.registry.models import Organization, PackModel

    ctc = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="catl", name="CATL", kind="oem")
    PackModel.objects.create(code="LFP48-100", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100,
                             energy_kwh=4.8, mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    Site.objects.create(code="GD001", site_type="macro_bts", owner=ctc)
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    rows = lambda rng: "".join(f"P{i:05d},LFP48-100,2019-03-01,GD001\n" for i in rng)
    a.write_text("serial,model,install_date,site\n" + rows(range(0, 3000)))
    b.write_text("serial,model,install_date,site\n" + rows(range(2000, 5000)))
    reports, errors = [], []

    def run(path):
        try:
            reports.append(import_packs(path))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert Pack.objects.count() == 5000
    assert sum(r.applied for r in reports) == 5000
    assert sum(r.unchanged for r in reports) == 1000
    assert sum(r.quarantined for r in reports) == 0
    assert not verify_chains().breaks
