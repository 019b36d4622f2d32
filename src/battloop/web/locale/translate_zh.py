"""Writes the Simplified Chinese catalogue (django.po) for the web app.

Run from this directory after `django-admin makemessages -l zh_Hans`; then compile with
`django-admin compilemessages`. Dynamic values shown through {% translate var %}
(states, event kinds, roles, site types, job statuses) are listed here too.
"""
ZH = {
    "Too many failed attempts. Try again in 15 minutes.": "失败次数过多，请 15 分钟后再试。",
    "Status": "状态", "Ignored columns": "已忽略的列", "row": "行", "field": "字段", "value": "值", "reason": "原因",
    "Download quarantine report (CSV)": "下载隔离报告（CSV）", "Lifecycle": "生命周期",
    "Every event hash and the pack projection were recomputed and match.": "所有事件哈希与电池包状态投影均已重新计算且一致。",
    "chain verified": "链已验证", "chain broken": "链已损坏", "Move to": "转为", "site code (install)": "站点编码（安装）",
    "outlet (storage)": "网点（存储）", "report no.": "报告编号", "Record transition": "记录状态变更", "Audit log": "审计日志",
    "any action": "任意操作", "user": "用户", "Filter": "筛选", "when": "时间", "action": "操作", "object": "对象", "detail": "详情",
    "via": "途径", "Dashboard": "仪表盘", "Map": "地图", "Packs": "电池包", "Imports": "导入", "API tokens": "API 令牌",
    "Reference data": "参考数据", "Language": "语言", "Log out": "退出", "Fleet": "电池资产", "packs": "电池包", "in service": "在网",
    "flagged": "预警", "sites": "站点", "MWh in service": "在网 MWh", "audit-grade records": "普查级记录",
    "Packs by state": "按状态统计", "Packs by chemistry": "按化学体系统计", "SOH distribution": "SOH 分布",
    "No health estimates yet: run the health assessment (battloop assess) after telemetry is ingested.":
        "尚无健康评估：导入遥测数据后运行健康评估（battloop assess）。",
    "Recent alarms": "最近告警", "time": "时间", "pack": "电池包", "alarm": "告警", "No alarms.": "无告警。", "Import": "导入",
    "What": "类型", "pack models": "电池型号", "File (CSV or XLSX)": "文件（CSV 或 XLSX）",
    "field-audit records (serial, site, install date only)": "现场普查记录（仅序列号、站点、安装日期）", "Recent imports": "最近导入",
    "file": "文件", "what": "类型", "status": "状态", "No imports yet.": "尚无导入。", "Log in": "登录", "User name": "用户名",
    "Password": "密码", "Sites by their worst pack": "站点（按最差电池包着色）",
    "Sites are aggregated on the server into grid cells; zoom to refine. Colour: worst pack state in the cell; size: number of packs.":
        "站点在服务器端按网格聚合；缩放可细化。颜色：网格内最差电池包状态；大小：电池包数量。",
    "No organization": "无所属组织",
    "Your account is not a member of any organization yet. Ask an administrator to add you.": "您的账号尚未加入任何组织，请联系管理员。",
    "Pack": "电池包", "Identity": "身份信息", "model": "型号", "battery code": "电池编码", "origin": "来源", "manufactured": "生产日期",
    "installed": "在网", "site": "站点", "location": "位置", "owner": "产权单位", "custodian": "保管单位", "record": "记录等级",
    "Telemetry": "遥测", "No telemetry for this pack yet.": "该电池包暂无遥测数据。", "serial starts with": "序列号前缀",
    "any state": "任意状态", "serial": "序列号", "state": "状态", "No packs.": "无电池包。",
    "page %(n)s of %(total)s (%(count)s packs)": "第 %(n)s / %(total)s 页（共 %(count)s 个电池包）", "Site": "站点", "type": "类型",
    "place": "位置", "climate": "气候", "annual mean": "年均", "cabinet": "机柜", "required backup": "备电要求",
    "Copy this token now; it is not shown again:": "请立即复制此令牌，之后不再显示：", "Name": "名称", "Role": "角色",
    "Valid for (days)": "有效期（天）", "Issue token": "签发令牌", "name": "名称", "role": "角色", "starts with": "开头", "expires": "到期",
    "last used": "最近使用", "revoked": "已吊销", "Revoke": "吊销", "unknown": "未知", "No such pack.": "无此电池包。",
    "Your role may not change pack states.": "您的角色无权变更电池包状态。", "No such site.": "无此站点。",
    "Your role may not import.": "您的角色无权导入。", "Choose a file to import.": "请选择要导入的文件。", "No such import.": "无此导入。",
    "No quarantine report.": "无隔离报告。", "Only admins read the audit log.": "仅管理员可查看审计日志。",
    "Only admins manage API tokens.": "仅管理员可管理 API 令牌。",
    "%(t)s rows: %(a)s applied, %(c)s corrected, %(u)s unchanged, %(q)s quarantined": "共 %(t)s 行：应用 %(a)s，更正 %(c)s，未变 %(u)s，隔离 %(q)s",
    # dynamic values
    "manufactured ": "已生产", "in_stock": "库存", "installed ": "在网", "flagged ": "预警", "removed": "已拆除", "in_storage": "入库存储",
    "triaged": "已分拣", "second_life_ready": "待梯次利用", "redeployed": "梯次再利用", "recycling_ready": "待回收", "shipped": "已发运",
    "received_by_recycler": "回收商已接收", "recycled": "已回收", "lost": "丢失", "damaged": "损坏", "quarantined": "安全隔离",
    "registered": "登记", "transition": "状态变更", "custody": "保管交接", "ownership": "产权变更", "corrected": "更正", "decision": "决策",
    "admin": "管理员", "asset_manager": "资产管理员", "technician": "技术员", "recycler_operator": "回收操作员", "auditor": "审计员",
    "new": "新电池", "repurposed_ev": "退役动力电池梯次利用", "full": "完整记录", "audit": "普查级",
    "queued": "排队中", "running": "进行中", "done": "完成", "failed": "失败", "sites ": "站点", "models": "型号",
    "macro BTS": "宏基站", "outdoor cabinet": "室外柜", "indoor": "室内站", "data centre": "数据中心", "rural": "农村站", "off-grid": "离网站",
}


def esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def main() -> None:
    lines = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', '"Language: zh_Hans\\n"',
             '"Plural-Forms: nplurals=1; plural=0;\\n"', ""]
    seen = set()
    for k, v in ZH.items():
        k = k.strip() if k.endswith(" ") else k
        if k in seen:
            continue
        seen.add(k)
        lines += [f'msgid "{esc(k)}"', f'msgstr "{esc(v)}"', ""]
    with open("zh_Hans/LC_MESSAGES/django.po", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
