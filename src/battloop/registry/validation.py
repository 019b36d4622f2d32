"""Row validation for registry imports. Pure: no Django.

Each validator turns one raw record (canonical field → text) into a clean record or a
list of :class:`RowError` naming the field, the value and what would make it right.
Reference data (known models, organizations, sites) comes in as plain dicts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .codes import CodeError, parse_code
from .lifecycle import State
from .tabular import RowError

SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}")
EARLIEST_DATE = dt.date(1995, 1, 1)  # Li-ion telecom packs do not predate this

PACK_SYNONYMS: dict[str, list[str]] = {
    "serial": ["serial", "serial_number", "serial_no", "sn", "pack_serial", "pack_sn", "barcode", "序列号", "电池序列号", "条码", "电池条码", "电池编号", "资产编号"],
    "code": ["code", "battery_code", "gbt_code", "gbt34014", "coding", "编码", "电池编码", "追溯码", "溯源编码", "编码信息"],
    "model": ["model", "pack_model", "model_code", "型号", "电池型号", "规格型号"],
    "manufacture_date": ["manufacture_date", "mfg_date", "production_date", "manufactured", "生产日期", "出厂日期", "制造日期"],
    "install_date": ["install_date", "installation_date", "installed", "commissioning_date", "安装日期", "投运日期", "上线日期"],
    "owner": ["owner", "owner_org", "owner_code", "产权单位", "所属单位", "资产归属", "产权方"],
    "custodian": ["custodian", "custodian_org", "holder", "保管单位", "使用单位", "维护单位"],
    "site": ["site", "site_code", "station", "station_code", "站点", "站点编码", "站址编码", "站址编号", "基站编码", "站点编号"],
    "location": ["location", "slot", "position", "cabinet", "位置", "槽位", "机柜"],
    "state": ["state", "status", "lifecycle_state", "状态", "生命周期状态"],
    "origin": ["origin", "source_type", "来源", "电池来源"],
    "original_identity": ["original_identity", "original_code", "ev_code", "ev_pack_code", "原编码", "原始编码", "原电池编码"],
    "nameplate_capacity_ah": ["nameplate_capacity_ah", "capacity_ah", "rated_capacity_ah", "capacity", "容量", "额定容量", "标称容量"],
}

_ORIGIN_WORDS = {
    "new": "new", "": "new", "新": "new", "新电池": "new", "新品": "new",
    "repurposed_ev": "repurposed_ev", "repurposed": "repurposed_ev", "ev": "repurposed_ev", "echelon": "repurposed_ev",
    "梯次": "repurposed_ev", "梯次利用": "repurposed_ev", "退役动力电池": "repurposed_ev",
}
_STATE_WORDS = {s.value: s.value for s in State} | {
    "in service": "installed", "in_service": "installed", "在网": "installed", "在用": "installed", "运行": "installed",
    "库存": "in_stock", "备品": "in_stock", "退网": "removed", "拆除": "removed", "待报废": "flagged",
}
_DATE_FORMATS = ("%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def parse_date(text: str) -> dt.date | None:
    """Parse the date spellings seen in operator exports; None if it is not a date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_float(text: str) -> float | None:
    try:
        value = float(text.replace(",", "")) if text else None
    except ValueError:
        return None
    if value is not None and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


@dataclass(frozen=True)
class PackContext:
    """What a pack row is checked against."""

    models: Mapping[str, tuple[int, float]]  # model code → (id, rated capacity Ah)
    orgs: Mapping[str, int]  # organization code → id
    sites: Mapping[str, tuple[int, int]]  # site code → (id, owner id)
    org_codes: Mapping[int, str]
    model_codes: Mapping[int, str] = field(default_factory=dict)
    default_owner: str | None = None
    allowed_owner: str | None = None  # web/API uploads may only register their own organization's packs
    audit: bool = False
    today: dt.date = dt.date.max  # set by the importer; dt.date.max disables the future check


PACK_FIELDS = ("serial", "code", "code_standard", "model_id", "nameplate_capacity_ah", "manufacture_date", "install_date",
               "owner_id", "custodian_id", "site_id", "location", "state", "origin", "original_identity", "record_grade")


def row_fingerprint(values: tuple) -> str:
    return hashlib.blake2b(repr(values).encode("utf-8"), digest_size=16).hexdigest()


def validate_pack(rec: Mapping[str, str], row: int, ctx: PackContext) -> tuple[dict[str, Any] | None, list[RowError]]:
    """Validate one pack row. Returns (clean record, []) or (None, errors)."""
    errors: list[RowError] = []

    def err(field: str, value: str, reason: str) -> None:
        errors.append(RowError(row, field, value, reason))

    serial = rec.get("serial", "").strip()
    if not serial:
        err("serial", "", "serial is missing; every pack needs its serial")
    elif not SERIAL_RE.fullmatch(serial):
        err("serial", serial, "serial may contain only letters, digits and . _ / - (at most 64 characters)")

    code_text = rec.get("code", "").strip().upper()
    code = code_std = None
    if code_text:
        standard = "gbt34014" if len(code_text) in (19, 24) else "gbt45565"
        try:
            parsed = parse_code(code_text, standard)
            code, code_std = parsed.code, standard
        except CodeError as exc:
            err("code", code_text, str(exc))

    def date_field(name: str) -> dt.date | None:
        text = rec.get(name, "").strip()
        if not text:
            return None
        value = parse_date(text)
        if value is None:
            err(name, text, "not a date; use YYYY-MM-DD")
        elif value > ctx.today:
            err(name, text, f"date is in the future (today is {ctx.today.isoformat()})")
            return None
        elif value < EARLIEST_DATE:
            err(name, text, f"date before {EARLIEST_DATE.isoformat()} is not plausible for a Li-ion pack")
            return None
        return value

    mfg = date_field("manufacture_date")
    inst = date_field("install_date")
    if mfg and inst and inst < mfg:
        err("install_date", rec.get("install_date", ""), f"install date {inst} is before manufacture date {mfg}")

    model_code = rec.get("model", "").strip()
    model_id = None
    rated_ah = None
    if model_code:
        hit = ctx.models.get(model_code)
        if hit is None:
            err("model", model_code, "unknown pack model; register it first (battloop import-models)")
        else:
            model_id, rated_ah = hit

    site_code = rec.get("site", "").strip()
    site_id = site_owner = None
    if site_code:
        hit = ctx.sites.get(site_code)
        if hit is None:
            err("site", site_code, "unknown site; import it first (battloop import-sites)")
        else:
            site_id, site_owner = hit

    owner_code = rec.get("owner", "").strip() or ctx.default_owner
    owner_id = None
    if owner_code:
        owner_id = ctx.orgs.get(owner_code)
        if owner_id is None:
            err("owner", owner_code, "unknown organization")
    elif site_owner is not None:
        owner_id = site_owner
    elif not site_code:  # an unknown site is already reported; its owner is the root cause
        err("owner", "", "owner is missing: add an owner column, give --owner, or name a site")

    if ctx.allowed_owner and owner_id is not None and owner_id != ctx.orgs.get(ctx.allowed_owner):
        err("owner", owner_code or ctx.org_codes.get(owner_id, ""), f"you may import only packs owned by {ctx.allowed_owner}")

    cust_code = rec.get("custodian", "").strip()
    custodian_id = owner_id
    if cust_code:
        custodian_id = ctx.orgs.get(cust_code)
        if custodian_id is None:
            err("custodian", cust_code, "unknown organization")

    cap_text = rec.get("nameplate_capacity_ah", "").strip()
    capacity = None
    if cap_text:
        capacity = parse_float(cap_text)
        if capacity is None:
            err("nameplate_capacity_ah", cap_text, "not a number (Ah)")
        elif capacity <= 0:
            err("nameplate_capacity_ah", cap_text, "capacity must be positive (Ah)")
        elif capacity > 5000:
            err("nameplate_capacity_ah", cap_text, "capacity above 5000 Ah is not a telecom pack; check the unit (Ah, not mAh)")
        elif rated_ah and abs(capacity - rated_ah) > 0.1 * rated_ah:
            err("nameplate_capacity_ah", cap_text, f"differs from model {model_code}'s rated {rated_ah:g} Ah by more than 10%")

    origin_text = rec.get("origin", "").strip()
    origin = _ORIGIN_WORDS.get(origin_text.lower())
    if origin is None:
        err("origin", origin_text, "origin must be 'new' or 'repurposed_ev'")
    original = rec.get("original_identity", "").strip()
    if origin == "repurposed_ev" and not original:
        err("original_identity", "", "a repurposed EV pack needs the code or serial of the EV pack it came from")

    state_text = rec.get("state", "").strip()
    if state_text:
        state = _STATE_WORDS.get(state_text.lower())
        if state is None:
            err("state", state_text, f"unknown state; states are: {', '.join(s.value for s in State)}")
    else:
        state = State.INSTALLED.value if site_code else State.IN_STOCK.value
    if state in (State.INSTALLED.value, State.FLAGGED.value, State.REDEPLOYED.value) and not site_code:
        err("site", "", f"a pack in state '{state}' must name its site")

    grade = "full"
    if not model_code:
        if ctx.audit:
            grade = "audit"
            if not (serial and site_code and inst):
                err("install_date" if not inst else "site", "", "a field-audit record needs at least serial, site and install date")
        else:
            err("model", "", "model is missing (for field-audit records with serial, site and install date only, import with --audit)")

    if errors:
        return None, errors
    values = (serial, code, code_std or "", model_id, capacity, mfg, inst, owner_id, custodian_id, site_id,
              rec.get("location", "").strip(), state, origin, original, grade)
    clean = dict(zip(PACK_FIELDS, values))
    clean["row_hash"] = row_fingerprint(values)
    clean["site_code"] = site_code or None
    return clean, []


# -- sites ------------------------------------------------------------------------

SITE_SYNONYMS: dict[str, list[str]] = {
    "code": ["code", "site_code", "site", "station_code", "站点编码", "站址编码", "站址编号", "站点编号", "基站编码"],
    "name": ["name", "site_name", "站点名称", "站址名称", "名称", "基站名称"],
    "site_type": ["site_type", "type", "站点类型", "站型", "类型", "机房类型"],
    "latitude": ["latitude", "lat", "纬度"],
    "longitude": ["longitude", "lon", "lng", "long", "经度"],
    "province": ["province", "省", "省份"],
    "prefecture": ["prefecture", "city", "市", "地市", "城市"],
    "adcode": ["adcode", "admin_code", "行政区划代码", "区划代码"],
    "climate_zone": ["climate_zone", "climate", "气候区", "气候分区"],
    "annual_mean_temp_c": ["annual_mean_temp_c", "mean_temp_c", "年平均气温", "年均温度"],
    "temp_amplitude_c": ["temp_amplitude_c", "seasonal_amplitude_c", "气温年较差半幅"],
    "cabinet_offset_c": ["cabinet_offset_c", "cabinet_offset", "柜内温升"],
    "required_backup_hours": ["required_backup_hours", "backup_hours", "备电时长", "备电要求"],
    "load_w": ["load_w", "load", "负载功率", "负载"],
    "owner": ["owner", "owner_org", "产权单位", "所属单位"],
}
SITE_TYPE_WORDS = {
    "macro_bts": "macro_bts", "macro": "macro_bts", "macro bts": "macro_bts", "bts": "macro_bts", "宏站": "macro_bts", "宏基站": "macro_bts",
    "outdoor_cabinet": "outdoor_cabinet", "outdoor cabinet": "outdoor_cabinet", "outdoor": "outdoor_cabinet", "室外柜": "outdoor_cabinet", "一体化机柜": "outdoor_cabinet", "室外": "outdoor_cabinet",
    "indoor": "indoor", "室内": "indoor", "室内站": "indoor", "机房": "indoor",
    "data_centre": "data_centre", "data center": "data_centre", "data centre": "data_centre", "idc": "data_centre", "数据中心": "data_centre",
    "rural": "rural", "农村": "rural", "乡村": "rural",
    "off_grid": "off_grid", "off-grid": "off_grid", "offgrid": "off_grid", "离网": "off_grid", "离网站": "off_grid",
}
SITE_FIELDS = ("code", "name", "site_type", "latitude", "longitude", "province", "prefecture", "adcode", "climate_zone",
               "annual_mean_temp_c", "temp_amplitude_c", "cabinet_offset_c", "required_backup_hours", "load_w", "owner_id")


def validate_site(rec: Mapping[str, str], row: int, orgs: Mapping[str, int], default_owner: str | None = None,
                  allowed_owner: str | None = None) -> tuple[dict[str, Any] | None, list[RowError]]:
    errors: list[RowError] = []

    def err(field: str, value: str, reason: str) -> None:
        errors.append(RowError(row, field, value, reason))

    code = rec.get("code", "").strip()
    if not code:
        err("code", "", "site code is missing")
    elif not SERIAL_RE.fullmatch(code):
        err("code", code, "site code may contain only letters, digits and . _ / - (at most 64 characters)")
    type_text = rec.get("site_type", "").strip()
    site_type = SITE_TYPE_WORDS.get(type_text.lower())
    if site_type is None:
        err("site_type", type_text, f"unknown site type; use one of {', '.join(sorted(set(SITE_TYPE_WORDS.values())))}")

    def number(field: str, lo: float, hi: float, unit: str, required: bool = False) -> float | None:
        text = rec.get(field, "").strip()
        if not text:
            if required:
                err(field, "", f"{field} is missing")
            return None
        value = parse_float(text)
        if value is None:
            err(field, text, f"not a number ({unit})")
        elif not lo <= value <= hi:
            err(field, text, f"out of range {lo:g}…{hi:g} {unit}")
            return None
        return value

    lat = number("latitude", -90, 90, "degrees")
    lon = number("longitude", -180, 180, "degrees")
    if (lat is None) != (lon is None) and not errors:
        err("longitude" if lon is None else "latitude", "", "give both latitude and longitude, or neither")
    mean_t = number("annual_mean_temp_c", -30, 40, "°C")
    amp_t = number("temp_amplitude_c", 0, 40, "°C")
    offset = number("cabinet_offset_c", -10, 30, "°C")
    backup = number("required_backup_hours", 0.1, 72, "h")
    load = number("load_w", 0, 1_000_000, "W")
    adcode = rec.get("adcode", "").strip()
    if adcode and not re.fullmatch(r"\d{6}(\d{6})?", adcode):
        err("adcode", adcode, "adcode has 6 or 12 digits (GB/T 2260)")
    owner_code = rec.get("owner", "").strip() or default_owner
    owner_id = orgs.get(owner_code) if owner_code else None
    if not owner_code:
        err("owner", "", "owner is missing: add an owner column or give --owner")
    elif owner_id is None:
        err("owner", owner_code, "unknown organization")
    elif allowed_owner and owner_code != allowed_owner:
        err("owner", owner_code, f"you may import only sites owned by {allowed_owner}")
    if errors:
        return None, errors
    values = (code, rec.get("name", "").strip(), site_type, lat, lon, rec.get("province", "").strip(),
              rec.get("prefecture", "").strip(), adcode, rec.get("climate_zone", "").strip(), mean_t, amp_t,
              offset if offset is not None else 0.0, backup if backup is not None else 3.0, load, owner_id)
    return dict(zip(SITE_FIELDS, values)), []


# -- pack models --------------------------------------------------------------------

MODEL_SYNONYMS: dict[str, list[str]] = {
    "code": ["code", "model", "model_code", "型号", "型号编码"],
    "oem": ["oem", "manufacturer", "maker", "厂家", "生产厂家", "制造商"],
    "name": ["name", "model_name", "名称"],
    "chemistry": ["chemistry", "cell_chemistry", "化学体系", "电芯类型", "材料体系"],
    "nominal_voltage_v": ["nominal_voltage_v", "voltage_v", "nominal_voltage", "标称电压"],
    "rated_capacity_ah": ["rated_capacity_ah", "capacity_ah", "额定容量"],
    "energy_kwh": ["energy_kwh", "energy", "能量", "额定能量"],
    "mass_kg": ["mass_kg", "weight_kg", "mass", "重量", "质量"],
    "cell_count": ["cell_count", "cells", "电芯数"],
    "cell_configuration": ["cell_configuration", "configuration", "串并联", "成组方式"],
    "design_life_years": ["design_life_years", "design_life", "设计寿命"],
    "dc_resistance_mohm": ["dc_resistance_mohm", "dcir_mohm", "internal_resistance_mohm", "内阻", "直流内阻"],
    "bms_protocol": ["bms_protocol", "protocol", "通信协议"],
    "repurposed_ev": ["repurposed_ev", "echelon", "梯次"],
}
CHEMISTRY_WORDS = {"lfp": "LFP", "lifepo4": "LFP", "磷酸铁锂": "LFP", "nmc": "NMC", "ncm": "NMC", "三元": "NMC",
                   "nca": "NCA", "lmo": "LMO", "锰酸锂": "LMO", "other": "other", "其他": "other"}
MODEL_FIELDS = ("code", "oem_id", "name", "chemistry", "nominal_voltage_v", "rated_capacity_ah", "energy_kwh", "mass_kg",
                "cell_count", "cell_configuration", "design_life_years", "dc_resistance_mohm", "bms_protocol", "repurposed_ev")


def validate_model(rec: Mapping[str, str], row: int, orgs: Mapping[str, int]) -> tuple[dict[str, Any] | None, list[RowError]]:
    errors: list[RowError] = []

    def err(field: str, value: str, reason: str) -> None:
        errors.append(RowError(row, field, value, reason))

    def number(field: str, lo: float, hi: float, unit: str, required: bool = True) -> float | None:
        text = rec.get(field, "").strip()
        if not text:
            if required:
                err(field, "", f"{field} is missing ({unit})")
            return None
        value = parse_float(text)
        if value is None:
            err(field, text, f"not a number ({unit})")
        elif not lo < value <= hi:
            err(field, text, f"out of range ({lo:g}, {hi:g}] {unit}")
            return None
        return value

    code = rec.get("code", "").strip()
    if not code:
        err("code", "", "model code is missing")
    oem_code = rec.get("oem", "").strip()
    oem_id = orgs.get(oem_code)
    if oem_id is None:
        err("oem", oem_code, "unknown organization (the OEM must be registered first)")
    chem_text = rec.get("chemistry", "").strip()
    chemistry = CHEMISTRY_WORDS.get(chem_text.lower())
    if chemistry is None:
        err("chemistry", chem_text, "chemistry must be one of LFP, NMC, NCA, LMO, other")
    volts = number("nominal_voltage_v", 0, 1500, "V")
    amps = number("rated_capacity_ah", 0, 5000, "Ah")
    energy = number("energy_kwh", 0, 5000, "kWh", required=False)
    if energy is None and volts and amps:
        energy = round(volts * amps / 1000, 3)
    elif energy and volts and amps and abs(energy - volts * amps / 1000) > 0.1 * energy:
        err("energy_kwh", rec.get("energy_kwh", ""), f"differs by more than 10% from voltage × capacity = {volts * amps / 1000:.2f} kWh")
    mass = number("mass_kg", 0, 50_000, "kg")
    cells = number("cell_count", 0, 10_000, "cells")
    config = rec.get("cell_configuration", "").strip().upper()
    if config:
        m = re.fullmatch(r"(\d+)S(\d+)P", config)
        if not m:
            err("cell_configuration", config, "use the form 15S1P (series × parallel)")
        elif cells and int(m.group(1)) * int(m.group(2)) != int(cells):
            err("cell_configuration", config, f"{config} has {int(m.group(1)) * int(m.group(2))} cells, cell_count says {int(cells)}")
    life = number("design_life_years", 0, 40, "years")
    # a 48 V telecom pack has some 10-60 mΩ; a value in ohms (0.02) or micro-ohms would be off by 1000
    dcir = number("dc_resistance_mohm", 0.5, 2000, "mΩ", required=False)
    rep = rec.get("repurposed_ev", "").strip().lower() in ("1", "true", "yes", "y", "是")
    if errors:
        return None, errors
    values = (code, oem_id, rec.get("name", "").strip(), chemistry, volts, amps, energy, mass, int(cells), config, life, dcir,
              rec.get("bms_protocol", "").strip(), rep)
    return dict(zip(MODEL_FIELDS, values)), []
