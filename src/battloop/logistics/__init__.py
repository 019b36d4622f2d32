"""Logistics: reverse-logistics network design, collection routes, dangerous-goods rules.

Pure cores (no Django): ``instances`` (benchmark readers), ``cflp`` (capacitated
facility location), ``network`` (multi-echelon network design), ``routing`` (CVRP
and day collection routes), ``hazmat`` (UN 3480 packaging and vehicle rules),
``geo`` (distances), ``synthetic`` (China-scale test instances).
"""
