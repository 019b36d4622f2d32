"""Loss-free MQTT ingest: broker → parse → quality → lake, acknowledged only when durable.

Topics (QoS 1, persistent session):

* ThingsBoard gateway: ``v1/gateway/telemetry`` with payload
  ``{"<device>": [{"ts": <ms>, "values": {...}}, ...], ...}``; the device name is the
  pack serial unless the values carry ``serial`` (packs move between sites, so the
  serial travels in the payload).
* battloop scheme: ``battloop/v1/<site_code>/<pack_serial>/telemetry`` with payload
  ``{"ts": <ms or ISO 8601>, "values": {...}}`` or a list of such objects.

``values`` use the canonical column names (``voltage_v``, ``current_a`` (+ = charging),
``soc_pct``, ``soh_pct``, ``temp_max_c`` …, see :mod:`.schema`).

Guarantees: a message is acknowledged (PUBACK) only after its readings are fsynced
into the lake (or, if it cannot be parsed, into the dead-letter file with the reason).
Killing the process at any moment loses nothing — the broker redelivers what was not
acknowledged — and redelivered messages add nothing: readings are deduplicated on
(pack_serial, ts, source) against the batch and the lake. SIGTERM flushes and exits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from . import quality
from .lake import Lake
from .schema import READING_SCHEMA, readings_from_rows

MAX_PAYLOAD_BYTES = 1 << 20
RECEIVE_MAXIMUM = 20_000  # unacknowledged messages the broker may send before we flush
MAX_DEPTH = 8
_NUMERIC = {f.name for f in READING_SCHEMA if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)} - {"quality"}


class PayloadError(ValueError):
    pass


def _depth(obj, limit: int) -> int:
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        cur, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur)
    return deepest


def _ts(value) -> dt.datetime:
    if isinstance(value, bool):
        raise PayloadError("ts must be a number (epoch ms/s) or ISO 8601 text")
    if isinstance(value, (int, float)):
        # epoch seconds vs milliseconds by magnitude (ThingsBoard sends ms)
        seconds = value / 1000.0 if value > 1e11 else float(value)
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"ts {value[:40]!r} is not ISO 8601") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    raise PayloadError("ts is missing or of the wrong type")


def _row(serial: str | None, site: str | None, entry: Any, source: str) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("values", {}), dict):
        raise PayloadError("each entry must be an object {ts, values}")
    values = entry.get("values", {})
    row: dict[str, Any] = {"ts": _ts(entry.get("ts")), "source": source}
    serial = values.get("serial") or values.get("pack_serial") or serial
    if not serial or not isinstance(serial, str):
        raise PayloadError("no pack serial (device name or values.serial)")
    row["pack_serial"] = serial[:64]
    row["site_code"] = (values.get("site_code") or site or None)
    for key, value in values.items():
        if key in _NUMERIC:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise PayloadError(f"{key}: {str(value)[:30]!r} is not a number") from None
            row[key] = value
        elif key == "alarm_codes" and isinstance(value, list):
            row[key] = [str(v) for v in value][:64]
    return row


def parse_message(topic: str, payload: bytes, topic_prefix: str = "") -> list[dict]:
    """Turn one MQTT message into canonical reading rows; raise PayloadError if it cannot be."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload):,} bytes exceeds {MAX_PAYLOAD_BYTES:,}")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"not UTF-8 JSON: {exc.__class__.__name__}") from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
    rel = topic[len(topic_prefix):] if topic.startswith(topic_prefix) else topic
    if rel == "v1/gateway/telemetry":
        if not isinstance(doc, dict):
            raise PayloadError("gateway payload must be an object keyed by device name")
        rows = []
        for device, entries in doc.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                rows.append(_row(str(device), None, entry, "mqtt-gateway"))
        return rows
    parts = rel.split("/")
    if len(parts) == 5 and parts[:2] == ["battloop", "v1"] and parts[4] == "telemetry":
        entries = doc if isinstance(doc, list) else [doc]
        return [_row(parts[3], parts[2], e, "mqtt") for e in entries]
    raise PayloadError(f"topic {rel!r} is not one battloop subscribes to")


@dataclass
class Pending:
    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    quarantined: int = 0
    rejected: int = 0
    flushes: int = 0
    latencies_ms: list = field(default_factory=list)


class MqttIngest:
    """The service. ``known_serials`` (a callable returning a set, or None) checks serials
    against the registry; ``on_flush`` receives each accepted table (projection hooks)."""

    def __init__(self, lake: Lake, host: str = "127.0.0.1", port: int = 1883, client_id: str = "battloop-ingest",
                 topic_prefix: str = "", flush_ms: int = 100, batch_messages: int = 2000,
                 known_serials: Callable[[], set] | None = None, on_flush: Callable[[pa.Table], None] | None = None):
        import paho.mqtt.client as mqtt

        self.lake = lake
        self.prefix = topic_prefix
        self.flush_s = flush_ms / 1000
        self.batch_messages = batch_messages
        self.known_serials = known_serials
        self.on_flush = on_flush
        self.stats = Stats()
        self._pending: list[Pending] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.dead_letter = Path(lake.root) / "_mqtt_rejects"
        # MQTT 5 with a persistent session (clean start off, session kept after disconnect)
        # and a large Receive Maximum: the broker may then have many unacknowledged
        # messages in flight to us while a batch is being made durable (MQTT 3.1.1 leaves
        # that window to the broker's own setting, 20 by default in Mosquitto).
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a, **k: self._connected.clear()
        self.client.on_connect_fail = lambda *a, **k: self._connected.clear()
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    # -- broker callbacks (network thread) --------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if getattr(reason_code, "is_failure", False):
            return
        client.subscribe([(self.prefix + "v1/gateway/telemetry", 1), (self.prefix + "battloop/v1/+/+/telemetry", 1)])
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self._pending.append(Pending(msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    # -- processing (main thread) ------------------------------------------------------
    def _reject(self, items: list[tuple[Pending, str]]) -> None:
        """Unparseable messages are kept with their reason before they are acknowledged."""
        self.dead_letter.mkdir(parents=True, exist_ok=True)
        path = self.dead_letter / f"{dt.date.today().isoformat()}.jsonl"
        with open(path, "a", encoding="utf-8") as f:
            for p, why in items:
                f.write(json.dumps({"received_at": dt.datetime.now(dt.timezone.utc).isoformat(), "topic": p.topic,
                                    "reason": why, "payload": p.payload[:4096].decode("utf-8", "replace")}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.stats.rejected += len(items)

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        rows, rejects = [], []
        for p in batch:
            try:
                rows.extend(parse_message(p.topic, p.payload, self.prefix))
            except PayloadError as exc:
                rejects.append((p, str(exc)))
        if rows:
            table = readings_from_rows(rows)
            known = self.known_serials() if self.known_serials else None
            accepted, quarantined, report = quality.check(table, known_serials=known, seen_keys=self.lake.existing_keys(table),
                                                          origin="mqtt")
            dup = sum(v for k, v in report.by_reason.items() if "duplicate" in k)
            self.lake.write(accepted)  # fsynced and renamed into place when this returns
            if quarantined.num_rows:
                self.lake.write(quarantined, "quarantine")
            self.stats.readings += accepted.num_rows
            self.stats.duplicates += dup
            self.stats.quarantined += quarantined.num_rows - dup
            if self.on_flush and accepted.num_rows:
                self.on_flush(accepted)
            if accepted.num_rows:
                now = time.time()
                ts = accepted.column("ts").cast(pa.int64()).to_numpy() / 1e6
                self.stats.latencies_ms.extend(((now - ts[-min(len(ts), 100):]) * 1000).tolist())
        if rejects:
            self._reject(rejects)
        for p in batch:  # durable now: acknowledge
            if p.qos > 0:
                self.client.ack(p.mid, p.qos)
        self.stats.messages += len(batch)
        self.stats.flushes += 1
        return len(batch)

    def run(self, max_seconds: float | None = None, install_signals: bool = True) -> Stats:
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *a: self._stop.set())
            signal.signal(signal.SIGINT, lambda *a: self._stop.set())
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600  # keep the session (and unacknowledged messages) for a week
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                with self._lock:
                    n = len(self._pending)
                if n >= self.batch_messages:
                    self.flush()
                else:
                    self._stop.wait(self.flush_s)
                    self.flush()
        finally:
            self.flush()  # graceful: everything received is durable and acknowledged
            time.sleep(0.2)  # let the network thread send the last acknowledgements
            self.client.disconnect()
            self.client.loop_stop()
        return self.stats

    def stop(self) -> None:
        self._stop.set()
