"""Triage: bench grading and safety classes, versioned triage policies, second-life matching.

Pure cores (no Django): ``rules`` (the rule language), ``policy`` (policies, dossiers,
decisions, comparison, KPIs), ``grading`` (bench results → SOH and safety class),
``matching`` (strings and second-life assignment), ``synthetic`` (test and benchmark inputs).
"""
