from urllib.parse import urlparse

from django.core.management.base import BaseCommand, CommandError

from battloop.registry.models import Pack
from battloop.telemetry.mqtt_ingest import MqttIngest
from battloop.telemetry.service import lake


class Command(BaseCommand):
    help = "Run the MQTT ingest service (ThingsBoard gateway + battloop topics, QoS 1, acknowledged only once durable in the lake)."

    def add_arguments(self, parser):
        parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
        parser.add_argument("--client-id", default="battloop-ingest", help="persistent-session id: keep it stable across restarts")
        parser.add_argument("--topic-prefix", default="", help="prefix before the standard topics (e.g. 'tenant-a/')")
        parser.add_argument("--flush-ms", type=int, default=100)
        parser.add_argument("--batch-messages", type=int, default=2000)
        parser.add_argument("--seconds", type=float, help="stop after this long (default: until SIGTERM)")
        parser.add_argument("--no-registry-check", action="store_true", help="accept serials the registry does not know")

    def handle(self, *args, **o):
        url = urlparse(o["broker"])
        if url.scheme not in ("mqtt", "tcp") or not url.hostname:
            raise CommandError(f"--broker {o['broker']!r}: use mqtt://host:port")
        cache = {"serials": None, "at": 0.0}

        def known():
            import time

            if cache["serials"] is None or time.monotonic() - cache["at"] > 60:
                cache["serials"] = set(Pack.objects.values_list("serial", flat=True))
                cache["at"] = time.monotonic()
            return cache["serials"]

        service = MqttIngest(lake(), url.hostname, url.port or 1883, client_id=o["client_id"], topic_prefix=o["topic_prefix"],
                             flush_ms=o["flush_ms"], batch_messages=o["batch_messages"],
                             known_serials=None if o["no_registry_check"] else known)
        self.stderr.write(f"ingesting from {o['broker']} as {o['client_id']} into {service.lake.root} (SIGTERM stops)")
        stats = service.run(max_seconds=o["seconds"])
        import numpy as np

        lat = np.asarray(stats.latencies_ms or [np.nan])
        self.stdout.write(f"messages {stats.messages:,}, readings {stats.readings:,}, duplicates dropped {stats.duplicates:,}, "
                          f"quarantined {stats.quarantined:,}, rejected {stats.rejected:,}; latency publish→durable "
                          f"p50 {np.nanpercentile(lat, 50):.0f} ms, p99 {np.nanpercentile(lat, 99):.0f} ms")
