import io
import json

from web_helpers import bearer


def test_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    for p in ["/api/v1/packs", "/api/v1/packs/{serial}", "/api/v1/packs/{serial}/events", "/api/v1/packs/{serial}/transitions",
              "/api/v1/sites", "/api/v1/pack-models", "/api/v1/organizations", "/api/v1/imports", "/api/v1/packs/{serial}/telemetry"]:
        assert p in paths, p


def test_pagination_filter_sort(client, world):
    tok = world["tokens"][("op2", "admin")]
    r = client.get("/api/v1/packs?limit=1&offset=1&order=-serial", **bearer(tok)).json()
    assert r["count"] == 2 and r["limit"] == 1 and [p["serial"] for p in r["items"]] == ["P2A"]
    r = client.get("/api/v1/packs?state=shipped", **bearer(tok)).json()
    assert [p["serial"] for p in r["items"]] == ["P2R"]
    r = client.get("/api/v1/packs?chemistry=LFP", **bearer(tok)).json()
    assert r["count"] == 0


def test_problem_details_name_the_field(client, world):
    tok = world["tokens"][("op1", "admin")]
    r = client.get("/api/v1/packs?limit=9999&order=sideways", **bearer(tok))
    assert r.status_code == 422 and r["Content-Type"] == "application/problem+json"
    body = r.json()
    assert {e["field"] for e in body["errors"]} == {"limit", "order"} and body["status"] == 422
    r = client.post("/api/v1/packs/P1A/transitions", "{not json", content_type="application/json", **bearer(tok))
    assert r.status_code in (400, 422) and r["Content-Type"] == "application/problem+json"
    r = client.post("/api/v1/packs/P1A/transitions", json.dumps({"state": "recycled"}), content_type="application/json", **bearer(tok))
    assert r.status_code == 409
    assert "cannot go from 'installed' to 'recycled'" in r.json()["detail"] and "flagged" in r.json()["detail"]


def test_nul_byte_in_a_query_parameter_is_bad_input(client, world):
    # PostgreSQL text cannot hold U+0000: refused up front, naming the parameter, never a 500
    tok = world["tokens"][("op1", "admin")]
    r = client.get("/api/v1/packs?state=in%00stock&limit=5", **bearer(tok))
    assert r.status_code == 400 and r["Content-Type"] == "application/problem+json"
    assert r.json()["errors"] == [{"field": "state", "message": "contains a NUL byte"}]
    # without credentials the answer is 401 whatever the query holds: authentication comes first
    r = client.get("/api/v1/outlook/retirements?group=a%00b&dimension=province")
    assert r.status_code == 401
    client.force_login(world["users"][("op1", "admin")])
    r = client.get("/api/v1/packs?state=in%00stock&limit=5")  # the session's API calls are refused the same way
    assert r.status_code == 400 and r.json()["errors"] == [{"field": "state", "message": "contains a NUL byte"}]
    r = client.get("/packs/?q=P1%00")
    assert r.status_code == 400 and "NUL" in r.content.decode()


def test_transition_then_timeline(client, world):
    tok = world["tokens"][("op1", "technician")]
    r = client.post("/api/v1/packs/P1A/transitions", json.dumps({"state": "removed", "evidence": {"reason": "end of life"}}),
                    content_type="application/json", **bearer(tok))
    assert r.status_code == 201 and r.json()["payload"]["state"] == "removed"
    events = client.get("/api/v1/packs/P1A/events", **bearer(tok)).json()
    assert [e["payload"].get("state") for e in events] == ["installed", "removed"]
    assert events[1]["prev_hash"] == events[0]["hash"]
    detail = client.get("/api/v1/packs/P1A", **bearer(tok)).json()
    assert detail["state"] == "removed" and "in_storage" in detail["allowed_next_states"]


def _upload(client, tok, name, content, kind="packs"):
    f = io.BytesIO(content)
    f.name = name
    return client.post("/api/v1/imports", {"file": f, "kind": kind}, **bearer(tok))


def test_import_job_and_quarantine_download(client, world):
    tok = world["tokens"][("op1", "asset_manager")]
    r = _upload(client, tok, "packs.csv", "序列号,型号,安装日期,站点编码,产权单位\nQ1,M1,2020-01-01,S1,\nQ2,M1,2099-01-01,S1,\nQ3,M1,2020-01-01,S1,op2\n".encode())
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "done" and job["report"]["applied"] == 1 and job["report"]["quarantined"] == 2
    assert "quarantine_path" not in job["report"]  # server paths are not exposed
    csv_text = b"".join(client.get(f"/api/v1/imports/{job['id']}/quarantine", **bearer(tok)).streaming_content).decode()
    assert "2099-01-01" in csv_text and "you may import only packs owned by op1" in csv_text


def test_bench_results_upload_is_scoped_to_the_uploader(client, world):
    # P1A is op1's; P2A belongs to op2: a technician of op1 may store bench results for the first only
    from battloop.triage.models import BenchResult

    tok = world["tokens"][("op1", "technician")]
    sheet = ("serial,test_date,tested_by,capacity_ah,dcir_mohm,baseline_dcir_mohm,insulation_mohm,visual_ok,swelling,leakage\n"
             "P1A,2026-11-20,Li Wei,78,22,20,50,true,false,false\n"
             "P2A,2026-11-20,Li Wei,40,22,20,50,true,false,false\n")
    r = _upload(client, tok, "bench.csv", sheet.encode(), kind="bench")
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "done" and job["report"]["applied"] == 1 and job["report"]["quarantined"] == 1, job
    assert list(BenchResult.objects.values_list("pack__serial", flat=True)) == ["P1A"]
    csv_text = b"".join(client.get(f"/api/v1/imports/{job['id']}/quarantine", **bearer(tok)).streaming_content).decode()
    assert "P2A" in csv_text and "in your organization's scope" in csv_text
    # the same sheet again changes nothing
    again = _upload(client, tok, "bench.csv", sheet.encode(), kind="bench").json()
    assert again["status"] == "done" and BenchResult.objects.count() == 1
    # an auditor may not upload bench results; a technician may not upload packs
    assert _upload(client, world["tokens"][("aud1", "auditor")], "bench.csv", sheet.encode(), kind="bench").status_code == 403
    assert _upload(client, tok, "p.csv", b"serial,model\nX,M1\n", kind="packs").status_code == 403


def test_bad_uploads(client, world):
    tok = world["tokens"][("op1", "admin")]
    r = _upload(client, tok, "evil.exe", b"MZ\x00\x00")
    assert r.status_code == 415 and r.json()["errors"][0]["field"] == "file"
    r = _upload(client, tok, "fake.xlsx", b"not a zip")
    assert r.status_code == 415
    r = _upload(client, tok, "../../../etc/passwd.csv", b"serial,model,install_date,site\nT1,M1,2020-01-01,S1\n")
    assert r.status_code == 202 and r.json()["file_name"] == "passwd.csv"
    r = _upload(client, tok, "x.csv", b"a,b\n1,2\n", kind="nonsense")
    assert r.status_code == 422


def test_session_writes_need_csrf(world):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(world["users"][("op1", "admin")])
    r = c.post("/api/v1/packs/P1A/transitions", json.dumps({"state": "flagged", "evidence": {"reason": "x"}}), content_type="application/json")
    assert r.status_code == 403
    c.get("/packs/")  # obtains a CSRF cookie
    token = c.cookies["csrftoken"].value
    r = c.post("/api/v1/packs/P1A/transitions", json.dumps({"state": "flagged", "evidence": {"reason": "x"}}),
               content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 201


def test_telemetry_endpoint_empty_without_lake(client, world):
    tok = world["tokens"][("op1", "admin")]
    r = client.get("/api/v1/packs/P1A/telemetry", **bearer(tok)).json()
    assert r["points"] == [] and r["serial"] == "P1A"


def test_oversized_upload_is_refused(client, world, monkeypatch):
    from battloop.web import jobs

    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", 1000)
    r = _upload(client, world["tokens"][("op1", "admin")], "big.csv", b"serial,model\n" + b"X1,M1\n" * 500)
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_telemetry_endpoint_downsamples_the_lake(client, world, tmp_path, monkeypatch):
    import datetime as dt

    from battloop.telemetry.service import ingest_files

    monkeypatch.setenv("BATTLOOP_LAKE_DIR", str(tmp_path / "lake"))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    lines = ["ts,pack_serial,site_code,source,voltage_v,soc_pct,temp_max_c"]
    lines += [f"{(start + dt.timedelta(minutes=m)).isoformat()},P1A,S1,bms,{52 + (m % 10) / 10},{90 + m % 10},25" for m in range(2000)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    assert ingest_files([tmp_path / "t.csv"], "csv")[0].accepted == 2000
    r = client.get("/api/v1/packs/P1A/telemetry?points=100", **bearer(world["tokens"][("op1", "admin")])).json()
    assert 90 <= len(r["points"]) <= 101 and r["bucket_seconds"] >= 60 * 19
    first = r["points"][0]["values"]
    assert 52.0 <= first["voltage_v"] <= 52.9 and first["temp_max_c"] == 25
    assert client.get("/api/v1/packs/P2A/telemetry", **bearer(world["tokens"][("op1", "admin")])).status_code == 404
