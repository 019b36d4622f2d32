from django.core.management.base import BaseCommand, CommandError

from battloop.registry.events import transition
from battloop.registry.lifecycle import TransitionRefused
from battloop.registry.models import Organization, Pack


class Command(BaseCommand):
    help = "Move a pack to a new lifecycle state (checked by the state machine), e.g. removed --evidence reason=eol."

    def add_arguments(self, parser):
        parser.add_argument("serial")
        parser.add_argument("state")
        parser.add_argument("--org", required=True, help="code of the organization performing it")
        parser.add_argument("--actor", default="cli")
        parser.add_argument("--evidence", action="append", default=[], metavar="KEY=VALUE")

    def handle(self, *args, **o):
        pack = Pack.objects.filter(serial=o["serial"]).first()
        if pack is None:
            raise CommandError(f"no pack with serial {o['serial']!r}")
        org = Organization.objects.filter(code=o["org"]).first()
        if org is None:
            raise CommandError(f"unknown organization {o['org']!r}")
        evidence = {}
        for item in o["evidence"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--evidence {item!r}: use KEY=VALUE")
            evidence[key.strip()] = value.strip()
        try:
            event = transition(pack, o["state"], o["actor"], org, evidence)
        except TransitionRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"pack {pack.serial}: {event.payload['from_state']} → {event.payload['state']} (event {event.seq}, {event.hash[:12]}…)")
