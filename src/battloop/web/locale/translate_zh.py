"""Writes the Simplified Chinese catalogue (django.po) for the web app.

Run from this directory after `django-admin makemessages -l zh_Hans`; then compile with
`django-admin compilemessages`. Dynamic values shown through {% translate var %}
(states, event kinds, roles, site types, job statuses) are listed here too.
"""
ZH = {
    "Forecast": "预测", "years ahead": "未来年数", "below SOH": "SOH 低于",
    "P10 is the pessimistic case: the lower SOH and the earlier date. — means not within 15 years.":
        "P10 为悲观情形：SOH 更低、日期更早。— 表示 15 年内不会发生。",
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
    # health outlook
    "Health outlook": "健康展望", "Outlook": "健康展望",
    "No outlook yet: run the health assessment (battloop assess) after telemetry is ingested.": "尚无展望：导入遥测数据后运行健康评估（battloop assess）。",
    "Computed %(when)s; a pack retires when its SOH falls below %(soh)s; replacement priced at %(price)s CNY/kWh.":
        "计算于 %(when)s；SOH 低于 %(soh)s 即退役；更换价格按 %(price)s 元/kWh 计。",
    "sites assessed": "已评估站点", "short of required backup now": "当前备电时长不足", "sites without a known load": "负载未知的站点",
    "packs retiring by %(q)s (P50)": "截至 %(q)s 退役电池包（P50）", "replacement cost, CNY (P50)": "更换成本，元（P50）",
    "Retirements per quarter": "每季度退役数量",
    "Bars: P50 packs retiring in the quarter; whiskers: P10–P90; line: cumulative P50.": "柱：当季退役电池包 P50；须线：P10–P90；折线：累计 P50。",
    "No retirements within the horizon.": "预测期内无退役。", "table": "表格", "quarter": "季度", "cost CNY P50": "成本（元，P50）",
    "cumulative P50": "累计 P50", "packs / quarter": "电池包 / 季度", "cumulative": "累计", "Five-year retirements by": "五年退役数量，按", "province": "省份",
    "Sites by when they lose their required backup time": "站点（按备电时长不足的时间排序）", "hours now (P10–P90)": "当前时长（P10–P90）",
    "in 1 / 3 / 5 years (P50)": "1 / 3 / 5 年后（P50）", "short from (P10 / P50)": "不足起始（P10 / P50）",
    "earliest failing pack": "最早失效电池包", "load unknown": "负载未知", "now": "当前", "No sites.": "无站点。",
    "page %(n)s of %(total)s": "第 %(n)s / %(total)s 页", "Packs aging faster than their cohort": "老化快于同批次的电池包",
    "evidence": "依据", "No pack ages credibly faster than its cohort.": "没有电池包可信地老化快于同批次。",
    # pack page health block
    "Health": "健康", "Not assessed yet.": "尚未评估。", "Open alarms": "未关闭告警", "aging rate": "老化速率",
    "below 70 %%": "低于 70 %%", "below 80 %%": "低于 80 %%", "initial": "初始", "resistance": "内阻", "since": "自",
    "none_served": "无法服务", "long-haul consignment": "长途危险品托运", "bench results": "台架检测结果", "bench": "台架检测", "packaging": "包装",
    # dynamic values
    "manufactured ": "已生产", "in_stock": "库存", "installed ": "在网", "flagged ": "预警", "removed": "已拆除", "in_storage": "入库存储",
    "triaged": "已分拣", "second_life_ready": "待梯次利用", "redeployed": "梯次再利用", "recycling_ready": "待回收", "shipped": "已发运",
    "received_by_recycler": "回收商已接收", "recycled": "已回收", "lost": "丢失", "damaged": "损坏", "quarantined": "安全隔离",
    "registered": "登记", "transition": "状态变更", "custody": "保管交接", "ownership": "产权变更", "corrected": "更正", "decision": "决策",
    "admin": "管理员", "asset_manager": "资产管理员", "technician": "技术员", "recycler_operator": "回收操作员", "auditor": "审计员",
    "new": "新电池", "repurposed_ev": "退役动力电池梯次利用", "full": "完整记录", "audit": "普查级",
    "queued": "排队中", "running": "进行中", "done": "完成", "failed": "失败", "sites ": "站点", "models": "型号",
    "macro BTS": "宏基站", "outdoor cabinet": "室外柜", "indoor": "室内站", "data centre": "数据中心", "rural": "农村站", "off-grid": "离网站",
    # logistics pages
    "Logistics": "物流", "Reverse-logistics plan": "逆向物流规划", "No plan yet: run battloop plan after triage.": "尚无规划：分拣后运行 battloop plan。",
    "scenario": "情景", "Scenario": "情景", "run": "运行", "optimality gap": "最优性差距", "total cost (CNY)": "总成本（元）",
    "hubs opened": "启用集中贮存点", "transport CO2 (kg)": "运输 CO2（kg）", "tonnes to move": "待转运吨数", "settings changed": "已调整参数",
    "cost": "成本", "Opened hubs": "启用的集中贮存点", "hub": "集中贮存点", "prefecture": "地级市", "throughput (t)": "吞吐量（吨）",
    "capacity (t)": "容量（吨）", "capacity use": "容量利用率", "binding constraints": "紧约束", "Flows to destinations": "去向流量",
    "destination": "去向", "white-listed": "白名单", "chemistry": "化学体系", "route": "路线", "tonnes": "吨", "yes": "是", "no": "否",
    "No flows to your organization in this plan.": "本规划中没有流向贵单位的流量。", "Collection routes": "收集路线", "vehicle": "车辆",
    "stops": "停靠点", "another organization's site": "其他单位的站点", "not collected": "未收集",
    "No routes yet: run battloop plan routes --hub HUB.": "尚无路线：运行 battloop plan routes --hub HUB。",
    "Scenarios side by side": "情景对比", "Shipments": "运单", "code": "编号", "sender": "发货方", "receiver": "收货方",
    "open discrepancies": "未解决差异", "No shipments.": "无运单。", "Shipment": "运单", "carrier": "承运方", "dispatched": "已发运",
    "received": "已接收", "manifest SHA-256": "清单 SHA-256", "Manifest": "危险货物清单", "UN number": "联合国编号", "class": "类别",
    "packaging": "包装", "mass (kg)": "质量（kg）", "received (kg)": "实收（kg）", "total": "合计", "Discrepancies": "差异", "open": "未解决",
    "kind": "类型", "resolution": "处理结果", "No discrepancies.": "无差异。", "optimal": "最优", "infeasible": "不可行",
    "input_error": "输入错误", "time_limit": "达到时限", "time_limit_no_incumbent": "达到时限（无可行解）", "draft": "草稿",
    "discrepancy": "存在差异", "closed": "已关闭", "missing": "缺失", "extra": "多出", "swapped": "错装", "weight": "重量不符",
    "fixed": "固定成本", "handling": "装卸", "transport_inbound": "集货运输", "transport_outbound": "干线运输", "gate_fees_net": "回收处理费（净）",
    "carbon": "碳成本", "recycle": "再生利用", "reuse": "梯次利用", "feasible": "可行", "partial": "部分完成",
    # triage pages
    "Triage": "分拣", "Triage queue": "分拣队列", "packs with a decision": "已有决策的电池包", "routed to reuse": "转梯次利用",
    "rules that decided": "决定规则", "policy": "策略", "No decisions yet: run battloop triage run.": "尚无决策：运行 battloop triage run。",
    "Triage decision": "分拣决策", "Not triaged.": "未分拣。", "continue_first_life": "继续首次使用", "reuse_ess": "梯次利用（储能）",
    "reuse_backup": "梯次利用（备电）", "reuse_low_speed": "梯次利用（低速车）", "hold": "暂扣待检", "inspection": "检测",
    "Second-life KPIs": "梯次利用指标", "from": "自", "to": "至", "target": "目标", "met": "已达成", "not met": "未达成",
    "packs retired from first life": "退出首次使用的电池包", "not triaged yet": "尚未分拣", "evaluated for second life": "已做梯次利用评估",
    "routed to recycling": "转再生利用", "of recycling received by certified recyclers": "再生利用中由白名单企业接收的比例",
    "Retired: packs whose first removal from service falls in the period. Evaluated: their current decision routes them to reuse, or to recycling as intact (class A) packs. Certified: received by a white-listed recycler.":
        "退役：首次退出服务发生在本期间的电池包。已评估：当前决策将其转梯次利用，或作为完好（A 类）电池包转再生利用。白名单：由白名单回收企业接收。",
    "Current decisions": "当前决策", "triggered by": "触发原因", "Bench test": "检测台测试", "safety class": "安全等级",
    "not judged": "未判定", "cell spread": "单体压差", "visual findings": "外观检查发现", "tested": "检测",
    "Second-life warranty": "梯次利用质保", "terms": "条款", "at start": "起始时", "left": "剩余", "years": "年", "cycles": "次循环",
    "active": "质保中", "expired_years": "已到期（年限）", "expired_cycles": "已到期（循环次数）", "claim": "可索赔", "no_terms": "无质保条款",
    "The period starts after it ends; showing the 365 days up to its end.": "起始日期晚于结束日期；显示截至结束日期的 365 天。",
    # measured health evidence on the pack page
    "aging model": "老化模型", "measured resistance": "实测内阻", "at 25 °C": "（折算至 25 °C）", "SOH forecast: P50 with the P10–P90 band": "SOH 预测：P50 及 P10–P90 区间", "new-pack value, both at 25 °C": "新包值，均折算至 25 °C", "measurements": "测量次数", "latest": "最近",
    "not measured": "未测量", "BMS months": "BMS 月度读数", "capacity tests": "容量测试", "outage discharges": "停电放电",
    "BMS months left out": "未采用的 BMS 月度读数",
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
