"""Telemetry: the canonical reading, readers for real sources, quality, the lake, alarms.

Pure modules (no Django): ``schema``, ``readers/*``, ``quality``, ``lake``, ``alarms``,
``ingest``. See README.md in this folder for formats, verbs and how to call them.
"""
