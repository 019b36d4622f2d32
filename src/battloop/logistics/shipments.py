"""Shipments and custody hand-over: a manifest per truck, dispatch by the sender and
receipt by the receiver as two signed custody events on every pack, discrepancies that
block closing until resolved.

Dangerous-goods data per pack comes from :mod:`.hazmat` (UN 3480, class 9, packaging by
safety class). A signature is HMAC-SHA256 over the manifest's SHA-256 with the
instance's secret and the signing organization (RFC 2104), so a manifest altered after
signing no longer verifies; the events themselves are hash-chained by the registry.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from battloop.registry.events import append_event, transition
from battloop.registry.lifecycle import State
from battloop.registry.models import Organization, Pack, PackEvent

from .hazmat import PackForTransport, packaging_for
from .models import Discrepancy, Shipment, ShipmentItem

WEIGHT_TOLERANCE = 0.05  # a received weight more than 5 % off the manifest is a discrepancy


class ShipmentError(ValueError):
    pass


def sign(org: Organization, digest: str) -> str:
    key = f"{settings.SECRET_KEY}:{org.code}".encode()
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def verify_signature(org: Organization, digest: str, signature: str) -> bool:
    return hmac.compare_digest(sign(org, digest), signature)


def _safety_class(pack: Pack) -> str:
    from battloop.triage.models import TriageDecision

    d = TriageDecision.objects.filter(pack=pack, current=True).first()
    return (d.inputs.get("safety_class") if d else None) or ("C" if pack.state == State.DAMAGED else "A")


def create_shipment(code: str, sender: Organization, receiver: Organization, serials: list[str], origin: str, destination: str,
                    vehicle: str = "", carrier: Organization | None = None) -> Shipment:
    if receiver.kind != "recycler":
        raise ShipmentError(f"receiver {receiver.code} is a {receiver.kind}; shipments for recycling go to recyclers "
                            f"(second-life packs are redeployed, not shipped for recycling)")
    if not receiver.recycler_whitelisted:
        raise ShipmentError(f"recycler {receiver.code} is not on the white-list of compliant recyclers")
    packs = {p.serial: p for p in Pack.objects.filter(serial__in=serials).select_related("model", "custodian")}
    missing = [s for s in serials if s not in packs]
    if missing:
        raise ShipmentError(f"unknown packs: {', '.join(missing[:10])}")
    wrong = [s for s, p in packs.items() if p.custodian_id != sender.id]
    if wrong:
        raise ShipmentError(f"{sender.code} does not hold these packs: {', '.join(wrong[:10])}")
    not_ready = [f"{s} ({p.state})" for s, p in packs.items() if p.state != State.RECYCLING_READY]
    if not_ready:
        raise ShipmentError(f"packs must be recycling_ready before they ship: {', '.join(not_ready[:10])}")
    with transaction.atomic():
        sh = Shipment.objects.create(code=code, sender=sender, receiver=receiver, carrier=carrier, origin=origin,
                                     destination=destination, vehicle=vehicle)
        for s in serials:
            p = packs[s]
            pk = packaging_for(PackForTransport(serial=s, safety_class=_safety_class(p), mass_kg=p.model.mass_kg if p.model else 50.0,
                                                chemistry=p.model.chemistry if p.model else "LFP"))
            ShipmentItem.objects.create(shipment=sh, pack=p, un_number=pk.un_number, packaging=pk.packing_instruction,
                                        mass_kg=p.model.mass_kg if p.model else 50.0)
    return sh


def manifest_of(sh: Shipment) -> dict:
    return {"shipment": sh.code, "sender": sh.sender.code, "receiver": sh.receiver.code, "origin": sh.origin,
            "destination": sh.destination, "vehicle": sh.vehicle,
            "items": [{"serial": i.pack.serial, "un_number": i.un_number, "class": "9", "packaging": i.packaging, "mass_kg": i.mass_kg}
                      for i in sh.items.select_related("pack").order_by("pack__serial")],
            "total_mass_kg": round(sum(i.mass_kg for i in sh.items.all()), 1)}


def dispatch(sh: Shipment, actor: str, org: Organization) -> Shipment:
    """The sender signs the manifest; every pack records the hand-over (state shipped)."""
    if org.id != sh.sender_id:
        raise ShipmentError(f"only the sender {sh.sender.code} dispatches shipment {sh.code}")
    if sh.status != Shipment.Status.DRAFT:
        raise ShipmentError(f"shipment {sh.code} is {sh.status}, not a draft")
    manifest = manifest_of(sh)
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    signature = sign(org, digest)
    with transaction.atomic():
        for item in sh.items.select_related("pack"):
            transition(item.pack, State.SHIPPED, actor, org, {"shipment_id": sh.code, "manifest_sha256": digest,
                                                             "sender_signature": signature, "destination": sh.receiver.code})
        sh.manifest, sh.manifest_sha256 = manifest, digest
        sh.status, sh.dispatched_at = Shipment.Status.DISPATCHED, timezone.now()
        sh.save()
    return sh


def receive(sh: Shipment, actor: str, org: Organization, scanned: dict[str, float]) -> list[Discrepancy]:
    """The receiver scans what arrived ({serial: weighed kg}). Packs on the manifest that
    arrived change custody to the receiver (signed); anything missing, extra, swapped or
    off-weight is a discrepancy that blocks closing."""
    if org.id != sh.receiver_id:
        raise ShipmentError(f"only the receiver {sh.receiver.code} receives shipment {sh.code}")
    if sh.status != Shipment.Status.DISPATCHED:
        raise ShipmentError(f"shipment {sh.code} is {sh.status}; only a dispatched shipment can be received")
    signature = sign(org, sh.manifest_sha256)
    items = {i.pack.serial: i for i in sh.items.select_related("pack")}
    found: list[Discrepancy] = []
    with transaction.atomic():
        for serial, kg in scanned.items():
            item = items.get(serial)
            if item is None:
                other = ShipmentItem.objects.filter(pack__serial=serial).exclude(shipment=sh).select_related("shipment").first()
                kind = Discrepancy.Kind.SWAPPED if other else Discrepancy.Kind.EXTRA
                detail = f"belongs to shipment {other.shipment.code}" if other else "not on the manifest"
                found.append(Discrepancy(shipment=sh, kind=kind, serial=serial, detail=detail))
                continue
            if abs(kg - item.mass_kg) > WEIGHT_TOLERANCE * item.mass_kg:
                found.append(Discrepancy(shipment=sh, kind=Discrepancy.Kind.WEIGHT, serial=serial,
                                         detail=f"weighed {kg:.1f} kg, manifest {item.mass_kg:.1f} kg"))
            transition(item.pack, State.RECEIVED_BY_RECYCLER, actor, org,
                       {"shipment_id": sh.code, "mass_kg": kg, "manifest_sha256": sh.manifest_sha256, "receiver_signature": signature})
            append_event(Pack.objects.get(pk=item.pack_id), PackEvent.Kind.CUSTODY, actor, org,
                         {"custodian": org.code, "shipment_id": sh.code, "receiver_signature": signature})
            item.received, item.received_mass_kg = True, kg
            item.save()
        for serial, item in items.items():
            if serial not in scanned:
                found.append(Discrepancy(shipment=sh, kind=Discrepancy.Kind.MISSING, serial=serial, detail="on the manifest, not received"))
        Discrepancy.objects.bulk_create(found)
        sh.status = Shipment.Status.DISCREPANCY if found else Shipment.Status.RECEIVED
        sh.received_at = timezone.now()
        sh.save()
    return found


def resolve(d: Discrepancy, resolution: str) -> None:
    if not resolution.strip():
        raise ShipmentError("a discrepancy is resolved with a stated resolution (e.g. 'found at origin, re-shipped as S-102')")
    d.resolution, d.resolved_at = resolution[:300], timezone.now()
    d.save()
    sh = d.shipment
    if not sh.discrepancies.filter(resolved_at=None).exists():
        sh.status = Shipment.Status.RECEIVED
        sh.save()


def close(sh: Shipment) -> Shipment:
    sh.refresh_from_db()
    open_d = list(sh.discrepancies.filter(resolved_at=None))
    if open_d:
        raise ShipmentError(f"shipment {sh.code} has {len(open_d)} unresolved discrepancies "
                            f"({', '.join(f'{d.serial}: {d.kind}' for d in open_d[:5])}); resolve them before closing")
    if sh.status != Shipment.Status.RECEIVED:
        raise ShipmentError(f"shipment {sh.code} is {sh.status}; it closes after receipt")
    sh.status, sh.closed_at = Shipment.Status.CLOSED, timezone.now()
    sh.save()
    return sh
