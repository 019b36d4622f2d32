"""Battery codes: GB/T 34014-2017 (automotive traction batteries, incl. echelon use)
and GB/T 45565-2025 (non-automotive Li-ion, incl. energy storage). Pure: no Django.

GB/T 34014-2017, 24 characters (DOMAIN.md §9; position table and character sets as
encoded by the Catena-X ``io.catenax.traction_battery_code`` 2.0.0 regular expression):

====== ====== ==================================== ==================
 pos    len    field                                characters
====== ====== ==================================== ==================
 1–3    3      manufacturer code (厂商代码)           A–Z 0–9
 4      1      product type: P pack, M module, C cell P M C
 5      1      battery type (电池类型代码)             A–G, Z
 6–7    2      specification code (规格代码)           A–Z 0–9
 8–14   7      traceability code (追溯信息代码)        A–Z 0–9
 15     1      production year code                 1–9 A–N P R–Y
 16     1      production month code                1–9 A–C
 17     1      production day code                  0–9 A–N P R–Y
 18–24  7      serial number (序列号)                 0–9
====== ====== ==================================== ==================

Echelon-use (梯级利用) products are re-coded without the traceability code, with a
trailing ``R`` + product type: 19 characters (design 7 + date 3 + serial 7 + R + P/M/C).

The year and day code tables of the standard are not public in a form we could verify,
so year and day codes are validated against their character sets and reported as raw
codes with ``table_known = False`` — never guessed. Month codes follow the 12-symbol set
1–9, A–C; their mapping to months (A = October …) is the reading the character set
implies and is reported with that caveat. Battery type letters: only B (LiFePO₄) and
E (ternary NCM) are confirmed; other letters are valid but reported as not confirmed.

GB/T 45565-2025's position table is not public either; such codes are checked for their
character set and length only and flagged ``table_known = False``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ALNUM = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_YEAR = set("123456789ABCDEFGHIJKLMNPRSTUVWXY")  # [1-9A-GH-NPR-Y]
_MONTH = set("123456789ABC")
_DAY = set("0123456789ABCDEFGHIJKLMNPRSTUVWXY")  # [0-9A-GH-NPR-Y]
_DIGITS = set("0123456789")

PRODUCT_TYPES = {"P": "pack", "M": "module", "C": "cell"}
BATTERY_TYPES_CONFIRMED = {"B": "LFP", "E": "NCM"}
BATTERY_TYPE_LETTERS = set("ABCDEFGZ")


@dataclass(frozen=True)
class _Slot:
    name: str
    start: int  # 1-based
    length: int
    charset: frozenset
    describe: str


_SLOTS_24 = (
    _Slot("manufacturer", 1, 3, frozenset(_ALNUM), "A–Z or 0–9"),
    _Slot("product_type", 4, 1, frozenset("PMC"), "P (pack), M (module) or C (cell)"),
    _Slot("battery_type", 5, 1, frozenset(BATTERY_TYPE_LETTERS), "A–G or Z"),
    _Slot("specification", 6, 2, frozenset(_ALNUM), "A–Z or 0–9"),
    _Slot("traceability", 8, 7, frozenset(_ALNUM), "A–Z or 0–9"),
    _Slot("year_code", 15, 1, frozenset(_YEAR), "1–9 or A–Y except O and Q"),
    _Slot("month_code", 16, 1, frozenset(_MONTH), "1–9 or A–C"),
    _Slot("day_code", 17, 1, frozenset(_DAY), "0–9 or A–Y except O and Q"),
    _Slot("serial", 18, 7, frozenset(_DIGITS), "0–9"),
)

_SLOTS_19 = (
    _Slot("manufacturer", 1, 3, frozenset(_ALNUM), "A–Z or 0–9"),
    _Slot("product_type", 4, 1, frozenset("PMC"), "P (pack), M (module) or C (cell)"),
    _Slot("battery_type", 5, 1, frozenset(BATTERY_TYPE_LETTERS), "A–G or Z"),
    _Slot("specification", 6, 2, frozenset(_ALNUM), "A–Z or 0–9"),
    _Slot("year_code", 8, 1, frozenset(_YEAR), "1–9 or A–Y except O and Q"),
    _Slot("month_code", 9, 1, frozenset(_MONTH), "1–9 or A–C"),
    _Slot("day_code", 10, 1, frozenset(_DAY), "0–9 or A–Y except O and Q"),
    _Slot("serial", 11, 7, frozenset(_DIGITS), "0–9"),
    _Slot("echelon_marker", 18, 1, frozenset("R"), "R (echelon-use marker)"),
    _Slot("echelon_product_type", 19, 1, frozenset("PMC"), "P (pack), M (module) or C (cell)"),
)


class CodeError(ValueError):
    """An invalid battery code. ``position`` is 1-based (None for length errors)."""

    def __init__(self, code: str, message: str, position: int | None = None, field_name: str | None = None):
        self.code = code
        self.position = position
        self.field_name = field_name
        super().__init__(message)


@dataclass(frozen=True)
class BatteryCode:
    code: str
    standard: str  # "GB/T 34014-2017" or "GB/T 45565-2025"
    echelon: bool
    fields: dict[str, str]
    notes: tuple[str, ...] = field(default=())

    @property
    def product_type(self) -> str | None:
        return PRODUCT_TYPES.get(self.fields.get("product_type", ""))

    @property
    def chemistry(self) -> str | None:
        """Chemistry implied by the battery-type letter, where the letter is confirmed."""
        return BATTERY_TYPES_CONFIRMED.get(self.fields.get("battery_type", ""))

    @property
    def month(self) -> int | None:
        m = self.fields.get("month_code")
        return None if m is None else "123456789ABC".index(m) + 1


def _check_slots(code: str, slots) -> dict[str, str]:
    out: dict[str, str] = {}
    for slot in slots:
        chunk = code[slot.start - 1 : slot.start - 1 + slot.length]
        for offset, ch in enumerate(chunk):
            if ch not in slot.charset:
                pos = slot.start + offset
                raise CodeError(
                    code,
                    f"code {code!r}: position {pos} ({slot.name.replace('_', ' ')}, positions "
                    f"{slot.start}–{slot.start + slot.length - 1}) is {ch!r}; expected {slot.describe}",
                    position=pos,
                    field_name=slot.name,
                )
        out[slot.name] = chunk
    return out


def parse_gbt34014(code: str) -> BatteryCode:
    """Split and validate a GB/T 34014-2017 code (24 characters, or 19 for echelon use)."""
    raw = code
    code = code.strip().upper()
    if not code:
        raise CodeError(raw, "empty battery code")
    bad = [(i + 1, ch) for i, ch in enumerate(code) if ch not in _ALNUM]
    if bad:
        pos, ch = bad[0]
        raise CodeError(raw, f"code {raw!r}: position {pos} is {ch!r}; codes use only A–Z and 0–9", position=pos)
    if len(code) == 24:
        fields = _check_slots(code, _SLOTS_24)
        echelon = False
    elif len(code) == 19:
        fields = _check_slots(code, _SLOTS_19)
        echelon = True
    else:
        raise CodeError(
            raw,
            f"code {raw!r} has {len(code)} characters; GB/T 34014-2017 codes have 24 "
            f"(or 19 for re-coded echelon-use products)",
        )
    notes = [
        f"year code {fields['year_code']!r}: the standard's year table is not known here; reported raw",
        f"day code {fields['day_code']!r}: the standard's day table is not known here; reported raw",
    ]
    if fields["battery_type"] not in BATTERY_TYPES_CONFIRMED:
        notes.append(f"battery type {fields['battery_type']!r} is valid but its chemistry is not confirmed")
    return BatteryCode(code=code, standard="GB/T 34014-2017", echelon=echelon, fields=fields, notes=tuple(notes))


def parse_gbt45565(code: str) -> BatteryCode:
    """Check a GB/T 45565-2025 code for its character set; positions are not public."""
    raw = code
    code = code.strip().upper()
    if not code:
        raise CodeError(raw, "empty battery code")
    for i, ch in enumerate(code):
        if ch not in _ALNUM:
            raise CodeError(raw, f"code {raw!r}: position {i + 1} is {ch!r}; codes use only A–Z and 0–9", position=i + 1)
    if not 16 <= len(code) <= 40:
        raise CodeError(raw, f"code {raw!r} has {len(code)} characters; expected 16–40 for a GB/T 45565-2025 code")
    return BatteryCode(
        code=code,
        standard="GB/T 45565-2025",
        echelon=False,
        fields={"code": code},
        notes=("GB/T 45565-2025 position table is not known here; only the character set was checked",),
    )


_CODE_SCHEMES = {"gbt34014": parse_gbt34014, "gbt45565": parse_gbt45565}


def parse_code(code: str, standard: str = "gbt34014") -> BatteryCode:
    """Parse ``code`` under ``standard`` (``gbt34014`` or ``gbt45565``)."""
    try:
        parser = _CODE_SCHEMES[standard]
    except KeyError:
        raise ValueError(f"unknown code standard {standard!r}; use one of {', '.join(_CODE_SCHEMES)}") from None
    return parser(code)


CATENAX_REGEX = re.compile(
    r"(^[A-Z0-9]{3}[PMC]{1}[A-GZ]{1}[A-Z0-9]{2}[A-Z0-9]{7}[1-9A-GH-NPR-Y]{1}[1-9A-C]{1}[0-9A-GH-NPR-Y]{1}[0-9]{7}$)"
    r"|(^[A-Z0-9]{3}[PMC]{1}[A-GZ]{1}[A-Z0-9]{2}[1-9A-GH-NPR-Y]{1}[1-9A-C]{1}[0-9A-GH-NPR-Y]{1}[0-9]{7}[R]{1}[PMC]{1}$)"
)
