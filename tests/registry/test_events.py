import pytest
from django.db import connection

from battloop.registry.audit import verify_chains
from battloop.registry.events import transition
from battloop.registry.importer import import_packs
from battloop.registry.lifecycle import TransitionRefused
from battloop.registry.models import Pack, PackEvent

from registry_helpers import write


@pytest.fixture
def pack(registry, tmp_path):
    import_packs(write(tmp_path / "p.csv", "serial,model,install_date,site\nT1,LFP48-100,2019-03-01,GD001\nT2,LFP48-100,2019-03-01,GD001\n"))
    return Pack.objects.get(serial="T1")


def test_transitions_update_projection_and_chain(pack, registry):
    ctc = registry["ctc"]
    transition(pack, "flagged", "alice", ctc, {"reason": "SOH 78%"})
    transition(pack, "removed", "alice", ctc, {"reason": "end of life"})
    transition(pack, "in_storage", "bob", ctc, {"outlet": "GZ-OUT-1"})
    pack.refresh_from_db()
    assert (pack.state, pack.site, pack.location, pack.event_count) == ("in_storage", None, "GZ-OUT-1", 4)
    assert [e.payload["state"] for e in pack.events.order_by("seq")] == ["installed", "flagged", "removed", "in_storage"]
    assert not verify_chains().breaks


def test_refused_transition_records_nothing(pack, registry):
    with pytest.raises(TransitionRefused, match="pack T1: cannot go from 'installed' to 'shipped'"):
        transition(pack, "shipped", "alice", registry["ctc"], {"shipment_id": "S1"})
    assert pack.events.count() == 1


def test_install_needs_a_known_site(registry, tmp_path):
    import_packs(write(tmp_path / "stock.csv", "serial,model,owner\nST1,LFP48-100,ctc\n"))
    stock = Pack.objects.get(serial="ST1")
    assert stock.state == "in_stock"
    with pytest.raises(TransitionRefused, match="unknown site 'NOPE'"):
        transition(stock, "installed", "a", registry["ctc"], {"site_code": "NOPE"})
    transition(stock, "installed", "a", registry["ctc"], {"site_code": "GD002"})
    stock.refresh_from_db()
    assert stock.site.code == "GD002" and stock.state == "installed"
    assert not verify_chains().breaks


def test_events_cannot_be_edited_or_deleted_through_the_orm(pack):
    ev = pack.events.get()
    ev.actor = "mallory"
    with pytest.raises(PermissionError):
        ev.save()
    with pytest.raises(PermissionError):
        ev.delete()
    with pytest.raises(PermissionError):
        PackEvent.objects.filter(pk=ev.pk).update(actor="mallory")
    with pytest.raises(PermissionError):
        PackEvent.objects.all().delete()
    with pytest.raises(PermissionError):
        pack.delete()
    assert PackEvent.objects.get(pk=ev.pk).actor == "cli"


def test_admin_cannot_change_or_delete_events(admin_client, pack):
    ev = pack.events.get()
    assert admin_client.get(f"/admin/registry/packevent/{ev.pk}/delete/").status_code == 403
    resp = admin_client.post(f"/admin/registry/packevent/{ev.pk}/change/", {"actor": "mallory"})
    assert resp.status_code == 403
    assert PackEvent.objects.get(pk=ev.pk).actor == "cli"


def test_verify_chain_catches_direct_database_edit(pack, registry):
    transition(pack, "flagged", "alice", registry["ctc"], {"reason": "hot cabinet"})
    target = pack.events.get(seq=1)
    with connection.cursor() as cur:
        cur.execute("UPDATE registry_packevent SET actor = %s WHERE id = %s", ["mallory", target.pk])
    result = verify_chains()
    assert len(result.breaks) == 1
    brk = result.breaks[0]
    assert brk.serial == "T1" and brk.event_id == target.pk and "content altered" in brk.problem
    assert verify_chains("T2").breaks == []


def test_verify_chain_catches_projection_edit(pack):
    with connection.cursor() as cur:
        cur.execute("UPDATE registry_pack SET state = 'recycled' WHERE id = %s", [pack.pk])
    brk = verify_chains("T1").breaks[0]
    assert "projection mismatch on state" in brk.problem


def test_verify_chain_cli(pack, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("verify_chain")
    assert "0 broken" in capsys.readouterr().out
    with connection.cursor() as cur:
        cur.execute("UPDATE registry_packevent SET payload = %s WHERE pack_id = %s", ['{"state": "installed"}', pack.pk])
    with pytest.raises(CommandError, match="1 pack chain"):
        call_command("verify_chain")
    assert "BROKEN pack T1: event #" in capsys.readouterr().out
