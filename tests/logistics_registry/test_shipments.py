"""Shipments: dangerous-goods manifest, signed dispatch and receipt as custody events,
discrepancies that block closing."""

import pytest

from battloop.logistics.models import Discrepancy, Shipment
from battloop.logistics.shipments import (ShipmentError, close, create_shipment, dispatch, receive, resolve,
                                          verify_signature)
from battloop.registry.audit import verify_chains
from battloop.registry.events import transition
from battloop.registry.models import Organization, Pack, PackModel, Site


@pytest.fixture
def ready(db, tmp_path):
    ctc = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="oem", name="OEM", kind="oem")
    rec = Organization.objects.create(code="brunp", name="Brunp", kind="recycler", recycler_whitelisted=True)
    Organization.objects.create(code="grey", name="Informal workshop", kind="recycler", recycler_whitelisted=False)
    PackModel.objects.create(code="M1", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8,
                             mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    Site.objects.create(code="S1", site_type="macro_bts", owner=ctc)
    from battloop.registry.importer import import_packs

    f = tmp_path / "p.csv"
    f.write_text("serial,model,install_date,site\n" + "".join(f"R{i},M1,2015-01-01,S1\n" for i in range(5)))
    import_packs(f)
    for p in Pack.objects.all():
        for state, ev in [("removed", {"reason": "eol"}), ("in_storage", {"outlet": "GZ-1"}),
                          ("triaged", {"route": "recycle", "policy_version": "x"}), ("recycling_ready", {"packaging": "P909"})]:
            transition(p, state, "t", ctc, ev)
    return {"ctc": ctc, "rec": rec}


def test_dispatch_and_receipt_hand_over_custody(ready):
    sh = create_shipment("S-1", ready["ctc"], ready["rec"], ["R0", "R1", "R2"], "GZ-1", "Brunp Foshan", "粤A12345")
    assert {i.packaging for i in sh.items.all()} == {"P909"} and {i.un_number for i in sh.items.all()} == {"UN3480"}
    dispatch(sh, "alice", ready["ctc"])
    sh.refresh_from_db()
    assert sh.status == "dispatched" and verify_signature(ready["ctc"], sh.manifest_sha256,
                                                          Pack.objects.get(serial="R0").events.order_by("-seq").first().payload["sender_signature"])
    assert Pack.objects.get(serial="R0").state == "shipped"
    found = receive(sh, "bob", ready["rec"], {"R0": 45.2, "R1": 44.8, "R2": 45.0})
    assert found == []
    p = Pack.objects.get(serial="R1")
    assert p.state == "received_by_recycler" and p.custodian.code == "brunp"
    close(sh)
    assert Shipment.objects.get(code="S-1").status == "closed"
    assert not verify_chains().breaks


def test_discrepancies_block_closing(ready):
    a = create_shipment("S-A", ready["ctc"], ready["rec"], ["R0", "R1"], "GZ-1", "Foshan")
    b = create_shipment("S-B", ready["ctc"], ready["rec"], ["R2", "R3"], "GZ-1", "Foshan")
    dispatch(a, "alice", ready["ctc"])
    dispatch(b, "alice", ready["ctc"])
    found = receive(a, "bob", ready["rec"], {"R0": 45.0, "R2": 45.0, "ZZ9": 40.0, })
    kinds = {(d.serial, d.kind) for d in found}
    assert kinds == {("R1", "missing"), ("R2", "swapped"), ("ZZ9", "extra")}
    with pytest.raises(ShipmentError, match="3 unresolved discrepancies"):
        close(a)
    for d in Discrepancy.objects.filter(shipment=a):
        resolve(d, "investigated with the carrier")
    close(a)
    assert Shipment.objects.get(code="S-A").status == "closed"


def test_refusals(ready):
    grey = Organization.objects.get(code="grey")
    with pytest.raises(ShipmentError, match="not on the white-list"):
        create_shipment("S-X", ready["ctc"], grey, ["R0"], "GZ-1", "?")
    with pytest.raises(ShipmentError, match="unknown packs: NOPE"):
        create_shipment("S-X", ready["ctc"], ready["rec"], ["NOPE"], "GZ-1", "?")
    sh = create_shipment("S-Y", ready["ctc"], ready["rec"], ["R4"], "GZ-1", "Foshan")
    with pytest.raises(ShipmentError, match="only the sender"):
        dispatch(sh, "mallory", ready["rec"])
    dispatch(sh, "alice", ready["ctc"])
    with pytest.raises(ShipmentError, match="only the receiver"):
        receive(sh, "mallory", ready["ctc"], {"R4": 45})
    found = receive(sh, "bob", ready["rec"], {"R4": 30.0})
    assert [d.kind for d in found] == ["weight"]
