import pytest

from battloop.registry.codes import CATENAX_REGEX, CodeError, parse_code, parse_gbt34014


def test_catenax_worked_example_splits_into_fields():
    code = "X12MCPM27KLPCLX2M2382320"
    assert CATENAX_REGEX.fullmatch(code)
    parsed = parse_gbt34014(code)
    assert parsed.fields == {
        "manufacturer": "X12", "product_type": "M", "battery_type": "C", "specification": "PM",
        "traceability": "27KLPCL", "year_code": "X", "month_code": "2", "day_code": "M", "serial": "2382320",
    }
    assert parsed.product_type == "module" and parsed.month == 2 and not parsed.echelon
    assert parsed.chemistry is None  # 'C' is valid but not confirmed
    assert any("year table is not known" in n for n in parsed.notes)
    assert any("day table is not known" in n for n in parsed.notes)


def test_lfp_pack_code():
    parsed = parse_code("ABCPB01TRACE01" + "1C" + "5" + "0000123")
    assert parsed.chemistry == "LFP" and parsed.product_type == "pack" and parsed.month == 12


@pytest.mark.parametrize("code,position,field", [
    ("ABCXB01TRACE011150000123", 4, "product_type"),
    ("ABCPH01TRACE011150000123", 5, "battery_type"),
    ("ABCPB01TRACE01O150000123", 15, "year_code"),
    ("ABCPB01TRACE011D50000123", 16, "month_code"),
    ("ABCPB01TRACE0111Q0000123", 17, "day_code"),
    ("ABCPB01TRACE01115000012A", 24, "serial"),
])
def test_wrong_position_is_named(code, position, field):
    with pytest.raises(CodeError) as exc:
        parse_gbt34014(code)
    assert exc.value.position == position and exc.value.field_name == field
    assert f"position {position}" in str(exc.value)


def test_lowercase_and_symbols():
    assert parse_gbt34014("abcpb01trace011150000123").code == "ABCPB01TRACE011150000123"
    with pytest.raises(CodeError, match="position 3 is '-'"):
        parse_gbt34014("AB-PB01TRACE011150000123")


def test_length_errors():
    with pytest.raises(CodeError, match="has 23 characters"):
        parse_gbt34014("ABCPB01TRACE01115000012")


def test_echelon_short_form():
    code = "ABCPB01" + "115" + "0000123" + "RP"
    assert CATENAX_REGEX.fullmatch(code)
    parsed = parse_gbt34014(code)
    assert parsed.echelon and parsed.fields["echelon_product_type"] == "P"
    with pytest.raises(CodeError, match="position 18"):
        parse_gbt34014("ABCPB01" + "115" + "0000123" + "XP")


def test_agrees_with_catenax_regex_on_random_codes():
    import random

    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for _ in range(3000):
        code = "".join(rng.choice(alphabet) for _ in range(24))
        # bias toward valid prefixes so both branches are exercised
        if rng.random() < 0.5:
            code = code[:3] + rng.choice("PMC") + rng.choice("ABCDEFGZ") + code[5:14] + rng.choice("123456789ABCX") + rng.choice("123456789ABC") + rng.choice("0123456789ABM") + "".join(rng.choice("0123456789") for _ in range(7))
        ok = bool(CATENAX_REGEX.fullmatch(code))
        try:
            parse_gbt34014(code)
            parsed_ok = True
        except CodeError:
            parsed_ok = False
        assert ok == parsed_ok, code


def test_gbt45565_charset_only():
    parsed = parse_code("H12ABCDEF0123456789", "gbt45565")
    assert parsed.standard == "GB/T 45565-2025" and "not known" in parsed.notes[0]
    with pytest.raises(CodeError, match="position 4"):
        parse_code("H12#ABCDEF0123456789", "gbt45565")
