"""The MQTT ingest service against the real Mosquitto on 127.0.0.1:1883: killed with
SIGKILL mid-stream and restarted, it loses nothing and duplicates nothing."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from battloop.telemetry.mqtt_ingest import PayloadError, parse_message

BROKER = ("127.0.0.1", 1883)


def broker_up() -> bool:
    try:
        socket.create_connection(BROKER, timeout=1).close()
        return True
    except OSError:
        return False


def count(lake: Path) -> tuple[int, int]:
    files = list((lake / "readings").rglob("*.parquet"))
    if not files:
        return 0, 0
    con = duckdb.connect()
    glob = str(lake / "readings" / "**" / "*.parquet")
    total, unique = con.execute(f"SELECT count(*), count(DISTINCT (pack_serial, ts, source)) FROM read_parquet('{glob}')").fetchone()
    return total, unique


def start(tmp_path, client_id, prefix):
    env = {k: v for k, v in os.environ.items() if k != "BATTLOOP_DATABASE_URL"}
    env.update(BATTLOOP_DATA_DIR=str(tmp_path / "data"), BATTLOOP_LAKE_DIR=str(tmp_path / "lake"))
    exe = Path(sys.executable).with_name("battloop")
    return subprocess.Popen([str(exe), "ingest-mqtt", "--broker", "mqtt://127.0.0.1:1883", "--client-id", client_id,
                             "--topic-prefix", prefix, "--flush-ms", "50", "--no-registry-check"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(proc, timeout=30):
    t0 = time.time()
    line = proc.stderr.readline()  # the service announces itself once set up
    assert "ingesting from" in line, line
    time.sleep(1.5)  # connect + subscribe
    assert time.time() - t0 < timeout


@pytest.mark.skipif(not broker_up(), reason="no MQTT broker on 127.0.0.1:1883")
def test_kill_and_restart_loses_nothing(tmp_path):
    import paho.mqtt.client as mqtt

    prefix = f"t{uuid.uuid4().hex[:10]}/"
    client_id = f"bltest-{uuid.uuid4().hex[:10]}"
    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{client_id}")
    pub.connect(*BROKER)
    pub.loop_start()
    base_ms = int(time.time() * 1000) - 3_600_000
    expected = 0

    def publish(i):
        nonlocal expected
        if i % 2 == 0:
            body = {"ts": base_ms + i * 1000, "values": {"voltage_v": 53.1, "current_a": 0.2, "soc_pct": 99, "temp_max_c": 30}}
            info = pub.publish(f"{prefix}battloop/v1/GD001/PK{i % 7:04d}/telemetry", json.dumps(body), qos=1)
            expected += 1
        else:
            body = {f"GW{d:04d}": [{"ts": base_ms + i * 1000, "values": {"voltage_v": 52.0 + d / 10, "soc_pct": 95}}] for d in range(10)}
            info = pub.publish(f"{prefix}v1/gateway/telemetry", json.dumps(body), qos=1)
            expected += 10
        info.wait_for_publish(10)

    svc = start(tmp_path, client_id, prefix)
    try:
        wait_subscribed(svc)
        for i in range(300):
            publish(i)
        time.sleep(0.05)
        svc.send_signal(signal.SIGKILL)  # no chance to flush or acknowledge
        svc.wait(10)
        killed_at = count(tmp_path / "lake")[0]
        for i in range(300, 600):
            publish(i)  # the broker keeps them for the persistent session
        pub.publish(f"{prefix}v1/gateway/telemetry", b"{not json", qos=1).wait_for_publish(10)
        svc = start(tmp_path, client_id, prefix)
        wait_subscribed(svc)
        deadline = time.time() + 60
        while time.time() < deadline and count(tmp_path / "lake")[1] < expected:
            time.sleep(0.5)
        time.sleep(1.0)  # any redelivered duplicates would land now
        svc.send_signal(signal.SIGTERM)
        try:
            # the graceful stop flushes and acknowledges what it holds; on a CI machine running two
            # suites side by side that has taken longer than 30 s once, so it gets 90
            out, err = svc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            svc.kill()
            out, err = svc.communicate()
            pytest.fail(f"the service did not stop within 90 s of SIGTERM; its output: {out[-2000:]} {err[-2000:]}")
        assert svc.returncode == 0, err
    finally:
        if svc.poll() is None:
            svc.kill()
        pub.loop_stop()
        pub.disconnect()
    total, unique = count(tmp_path / "lake")
    assert unique == expected == 3300, (unique, expected, killed_at)
    assert total == unique, f"{total - unique} duplicate readings"
    rejects = list((tmp_path / "lake" / "_mqtt_rejects").glob("*.jsonl"))
    assert rejects and "not UTF-8 JSON" in rejects[0].read_text()


@pytest.mark.parametrize("payload,why", [
    (b"\xff\xfe garbage", "not UTF-8 JSON"),
    (json.dumps({"a": [[[[[[[[[[1]]]]]]]]]]}).encode(), "nested deeper"),
    (b"{" + b'"x": 1,' * 200_000 + b'"y": 2}', "exceeds"),
    (json.dumps({"PK1": [{"ts": "yesterday", "values": {}}]}).encode(), "not ISO 8601"),
    (json.dumps({"PK1": [{"ts": 1700000000000, "values": {"voltage_v": "high"}}]}).encode(), "voltage_v"),
    (json.dumps([1, 2]).encode(), "keyed by device name"),
])
def test_bad_payloads_are_rejected_with_a_reason(payload, why):
    with pytest.raises(PayloadError, match=why):
        parse_message("v1/gateway/telemetry", payload)


def test_payload_parsing_seconds_and_milliseconds():
    rows = parse_message("battloop/v1/GD1/PK1/telemetry", json.dumps([{"ts": 1700000000, "values": {"soc_pct": "55"}},
                                                                       {"ts": 1700000000000, "values": {"serial": "MOVED"}}]).encode())
    assert rows[0]["ts"] == rows[1]["ts"] and rows[0]["soc_pct"] == 55.0 and rows[0]["site_code"] == "GD1"
    assert rows[1]["pack_serial"] == "MOVED"  # the serial in the payload wins: packs move between sites
