"""Distances between places.

Road distance is estimated as great-circle distance (haversine on a sphere of
radius 6371.0088 km, the IUGG mean Earth radius) times a circuity factor.  The
default factor 1.3 is a planning choice within the 1.2–1.4 range reported for
road networks (Newell 1980; O'Sullivan 1996; Ballou, Rahardja & Sakai 2002) and
should be calibrated against real route distances.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088
DEFAULT_CIRCUITY = 1.3


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km; inputs broadcast (degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def road_km_matrix(lat_a, lon_a, lat_b, lon_b, circuity: float = DEFAULT_CIRCUITY) -> np.ndarray:
    """Estimated road distance (km) from every point of set a to every point of set b."""
    if not circuity >= 1.0:
        raise ValueError(f"circuity factor is {circuity}; road distance cannot be shorter than great-circle (use >= 1)")
    la = np.asarray(lat_a, float)[:, None]
    oa = np.asarray(lon_a, float)[:, None]
    lb = np.asarray(lat_b, float)[None, :]
    ob = np.asarray(lon_b, float)[None, :]
    return haversine_km(la, oa, lb, ob) * circuity
