"""MQTT ingest throughput: a publisher process on loopback sends N readings, half as
single-device battloop messages and half as 10-device ThingsBoard gateway messages, QoS 1,
to the real Mosquitto on 127.0.0.1:1883; `battloop ingest-mqtt` makes them durable in the
lake. Prints sustained readings/s, end-to-end latency percentiles (publish → durable in
the lake), zero-loss check, and as the ceiling, `mosquitto_sub` receiving the same
messages to /dev/null.

    python benchmarks/mqtt_ingest.py --readings 1000000
Goal: ≥ 20,000 readings/s sustained with zero loss.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

BATTLOOP = str(Path(sys.executable).with_name("battloop"))


def message_count(readings: int) -> tuple[int, int]:
    """(messages, readings) the publisher will send for a target: alternating 1- and 10-reading messages."""
    sent = i = 0
    while sent < readings:
        sent += 1 if i % 2 == 0 else 10
        i += 1
    return i, sent


def publish(prefix: str, readings: int) -> float:
    """Publish; return seconds. Timestamps are publish times, so latency can be measured."""
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(2000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    t0 = time.perf_counter()
    sent = 0
    i = 0
    infos = []
    while sent < readings:
        now_ms = int(time.time() * 1000) * 1000 + (i % 1000)  # microsecond-unique ts (µs epoch)
        if i % 2 == 0:
            body = {"ts": now_ms / 1_000_000, "values": {"voltage_v": 53.1, "soc_pct": 99, "temp_max_c": 30}}
            infos.append(pub.publish(f"{prefix}battloop/v1/S{i % 97:03d}/PK{i % 5000:06d}/telemetry", json.dumps(body), qos=1))
            sent += 1
        else:
            body = {f"GW{(i * 10 + d) % 50000:06d}": [{"ts": now_ms / 1_000_000, "values": {"voltage_v": 52.0, "soc_pct": 95}}] for d in range(10)}
            infos.append(pub.publish(f"{prefix}v1/gateway/telemetry", json.dumps(body), qos=1))
            sent += 10
        i += 1
        if len(infos) >= 5000:
            for info in infos:
                info.wait_for_publish(30)
            infos = []
    for info in infos:
        info.wait_for_publish(30)
    elapsed = time.perf_counter() - t0
    pub.loop_stop()
    pub.disconnect()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="battloop-mqttbench-") as tmp:
        tmp = Path(tmp)
        prefix = f"bench{uuid.uuid4().hex[:8]}/"
        env = {k: v for k, v in os.environ.items() if k != "BATTLOOP_DATABASE_URL"}
        env.update(BATTLOOP_DATA_DIR=str(tmp / "data"), BATTLOOP_LAKE_DIR=str(tmp / "lake"))
        svc = subprocess.Popen([BATTLOOP, "ingest-mqtt", "--client-id", f"bench-{uuid.uuid4().hex[:8]}", "--topic-prefix", prefix,
                                "--flush-ms", "200", "--batch-messages", "5000", "--no-registry-check"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        svc.stderr.readline()
        time.sleep(2)
        t0 = time.perf_counter()
        pub_s = publish(prefix, args.readings)
        glob = str(tmp / "lake" / "readings" / "**" / "*.parquet")
        con = duckdb.connect()
        n_messages, expected = message_count(args.readings)
        deadline = time.time() + 600
        got = 0
        while time.time() < deadline:
            try:
                got = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
            except duckdb.Error:
                got = 0
            if got >= expected:
                break
            time.sleep(0.5)
        total_s = time.perf_counter() - t0
        svc.send_signal(signal.SIGTERM)
        out, _ = svc.communicate(timeout=60)
        unique = con.execute(f"SELECT count(DISTINCT (pack_serial, ts, source)) FROM read_parquet('{glob}')").fetchone()[0]
        print(f"published {args.readings:,} readings in {pub_s:.1f} s ({args.readings / pub_s:,.0f}/s offered)")
        print(f"battloop ingest-mqtt: {got:,} readings durable in {total_s:.1f} s → {got / total_s:,.0f} readings/s sustained; "
              f"unique {unique:,}; lost {expected - unique:,}; duplicates {got - unique:,}")
        print("service:", out.strip().splitlines()[-1] if out.strip() else "(no summary)")

        # Ceiling: the broker delivering the same messages to mosquitto_sub (QoS 1) writing to /dev/null.
        # MQTT 5, like the service: with 3.1.1 the broker's default window (20 in flight, 1,000 queued)
        # makes Mosquitto drop QoS 1 messages to a subscriber that falls behind.
        sub = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-q", "1", "-t", f"ceil{prefix}#",
                                "-C", str(n_messages)], stdout=subprocess.DEVNULL)
        time.sleep(1)
        t0 = time.perf_counter()
        publish(f"ceil{prefix}", args.readings)
        try:
            sub.wait(timeout=300)
        except subprocess.TimeoutExpired:
            sub.kill()
            print("ceiling: mosquitto_sub did not receive every message within 300 s (the broker dropped some)")
            return
        ceil_s = time.perf_counter() - t0
        print(f"ceiling: the same stream through the broker to mosquitto_sub (QoS 1, /dev/null): {expected / ceil_s:,.0f} readings/s; "
              f"battloop / ceiling = {(got / total_s) / (expected / ceil_s):.2f}")


if __name__ == "__main__":
    main()
