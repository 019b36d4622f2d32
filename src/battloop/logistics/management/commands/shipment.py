import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from battloop.logistics.models import Discrepancy, Shipment
from battloop.logistics.shipments import ShipmentError, close, create_shipment, dispatch, manifest_of, receive, resolve
from battloop.registry.lifecycle import TransitionRefused
from battloop.registry.models import Organization


def _org(code):
    org = Organization.objects.filter(code=code).first()
    if org is None:
        raise CommandError(f"unknown organization {code!r}")
    return org


def _shipment(code):
    sh = Shipment.objects.filter(code=code).first()
    if sh is None:
        raise CommandError(f"unknown shipment {code!r}")
    return sh


class Command(BaseCommand):
    help = "Ship retired packs to a white-listed recycler: manifest, signed dispatch and receipt, discrepancies, close."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        c = sub.add_parser("create", help="draft a shipment with its dangerous-goods manifest")
        c.add_argument("code")
        c.add_argument("--sender", required=True)
        c.add_argument("--receiver", required=True)
        c.add_argument("--packs", required=True, help="file with one serial per line")
        c.add_argument("--origin", required=True)
        c.add_argument("--destination", required=True)
        c.add_argument("--vehicle", default="")
        d = sub.add_parser("dispatch", help="the sender signs and dispatches")
        d.add_argument("code")
        d.add_argument("--org", required=True)
        d.add_argument("--actor", default="cli")
        r = sub.add_parser("receive", help="the receiver records what arrived and its weights")
        r.add_argument("code")
        r.add_argument("--org", required=True)
        r.add_argument("--scanned", required=True, help="CSV lines 'serial,kg'")
        r.add_argument("--actor", default="cli")
        s = sub.add_parser("resolve", help="resolve a discrepancy")
        s.add_argument("id", type=int)
        s.add_argument("--resolution", required=True)
        x = sub.add_parser("close", help="close a received shipment (refused while discrepancies are open)")
        x.add_argument("code")
        m = sub.add_parser("manifest", help="print the manifest as JSON")
        m.add_argument("code")

    def handle(self, *args, **o):
        try:
            self._do(o)
        except (ShipmentError, TransitionRefused) as exc:
            raise CommandError(str(exc)) from None

    def _do(self, o):
        act = o["action"]
        if act == "create":
            serials = [s.strip() for s in Path(o["packs"]).read_text().splitlines() if s.strip()]
            sh = create_shipment(o["code"], _org(o["sender"]), _org(o["receiver"]), serials, o["origin"], o["destination"], o["vehicle"])
            self.stdout.write(f"shipment {sh.code}: {sh.items.count()} packs, draft")
        elif act == "dispatch":
            sh = dispatch(_shipment(o["code"]), o["actor"], _org(o["org"]))
            self.stdout.write(f"shipment {sh.code} dispatched; manifest {sh.manifest_sha256[:12]}… signed by {sh.sender.code}")
        elif act == "receive":
            scanned = {}
            for line in Path(o["scanned"]).read_text().splitlines():
                if line.strip():
                    serial, _, kg = line.partition(",")
                    try:
                        scanned[serial.strip()] = float(kg)
                    except ValueError:
                        raise CommandError(f"{o['scanned']}: {line!r} is not 'serial,kg'") from None
            found = receive(_shipment(o["code"]), o["actor"], _org(o["org"]), scanned)
            self.stdout.write(f"received {len(scanned)} packs; {len(found)} discrepancies")
            for d in found:
                self.stdout.write(f"  #{d.pk} {d.kind} {d.serial}: {d.detail}")
        elif act == "resolve":
            d = Discrepancy.objects.filter(pk=o["id"]).first()
            if d is None:
                raise CommandError(f"no discrepancy #{o['id']}")
            resolve(d, o["resolution"])
            self.stdout.write(f"discrepancy #{d.pk} resolved")
        elif act == "close":
            sh = close(_shipment(o["code"]))
            self.stdout.write(f"shipment {sh.code} closed")
        elif act == "manifest":
            self.stdout.write(json.dumps(manifest_of(_shipment(o["code"])), ensure_ascii=False, indent=2))
