import pytest

from battloop.logistics.hazmat import (
    HazmatRulesError,
    PackForTransport,
    VehicleSpec,
    check_load,
    load_rules,
    packaging_for,
)


def _pack(cls, soc=None, route="recycle", serial=None, mass=48.0):
    return PackForTransport(serial or f"S-{cls}", cls, mass, 4.8, soc, "LFP", route)


@pytest.mark.parametrize("cls, pi, sp_", [("A", "P909", "SP 377"), ("B", "P908", "SP 376"), ("C", "P911", "SP 376")])
def test_packaging_instruction_by_safety_class(cls, pi, sp_):
    pk = packaging_for(_pack(cls))
    assert pk.un_number == "UN3480" and pk.hazard_class == "9"
    assert pk.packing_instruction == pi and pk.special_provision == sp_
    assert pk.requires_p911_vehicle == (cls == "C")
    assert "9A" in pk.labels


def test_marks_differ_for_intact_and_damaged():
    assert packaging_for(_pack("A")).marks == ("LITHIUM BATTERIES FOR RECYCLING",)
    assert packaging_for(_pack("B")).marks == ("DAMAGED/DEFECTIVE LITHIUM ION BATTERIES",)


def test_reuse_of_intact_pack_is_not_a_waste_consignment():
    pk = packaging_for(_pack("A", route="reuse"))
    assert pk.packing_instruction == "P903" and pk.special_provision is None


def test_soc_policy_applies_only_to_long_haul_and_is_company_policy():
    truck = VehicleSpec("T1", 5000, dg_approved=True, p911_equipped=True)
    packs = [_pack("A", soc=55, serial="hi"), _pack("A", soc=25, serial="lo")]
    short = check_load(packs, truck, distance_km=50)
    assert short.ok
    long = check_load(packs, truck, distance_km=800)
    assert [v.subject for v in long.violations] == ["hi"]
    v = long.violations[0]
    assert v.rule == "soc_limit" and v.legal is False and "30%" in v.message


def test_soc_limit_is_a_setting():
    rules = load_rules(soc_limit_long_haul_pct=60)
    truck = VehicleSpec("T1", 5000)
    assert check_load([_pack("A", soc=55)], truck, distance_km=800, rules=rules).ok
    with pytest.raises(HazmatRulesError):
        load_rules(soc_limit_long_haul_pct=130)


def test_vehicle_rules():
    plain = VehicleSpec("T2", 100, dg_approved=False, p911_equipped=False, max_packs=1)
    res = check_load([_pack("C", serial="c1"), _pack("A", serial="a1", mass=60)], plain)
    rules = {(v.subject, v.rule) for v in res.violations}
    assert ("c1", "p911_vehicle") in rules
    assert ("T2", "dg_vehicle") in rules
    assert ("T2", "payload") in rules and ("T2", "pack_count") in rules
    assert res.total_mass_kg == 108
    payload = next(v for v in res.violations if v.rule == "payload")
    assert "by 8 kg" in payload.message


def test_damaged_pack_to_reuse_and_unknown_class_are_violations():
    res = check_load([_pack("B", route="reuse", serial="b"), _pack("X", serial="x")], VehicleSpec("T", 1000))
    assert {(v.subject, v.rule) for v in res.violations} == {("b", "reuse_forbidden"), ("x", "unknown_class")}
    with pytest.raises(ValueError, match="safety class 'X' unknown"):
        packaging_for(_pack("X"))


def test_broken_rules_file_is_reported(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("entry: {un_number: UN3480}\n")
    with pytest.raises(HazmatRulesError, match="r.yaml"):
        load_rules(f)
