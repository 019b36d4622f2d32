"""Readers for public facility-location and vehicle-routing benchmark instances.

Formats (see ``netopt/README.md`` of the benchmark data):

* OR-Library capacitated warehouse location, Beasley (1988) ``capinfo``:
  ``m n``; ``m`` lines ``capacity fixed_cost``; then for each customer ``demand``
  followed by ``m`` costs of serving *all* of that customer's demand from each
  warehouse.  In capa/capb/capc the capacity field is the literal word
  ``capacity``, substituted by a value given by the caller.
* Holmberg, Rönnqvist & Yuan (1999) single-source CFLP originals: ``m n``; ``m``
  lines ``capacity fixed_cost``; ``n`` demands; an ``m x n`` cost matrix stored
  facility-major.  Many distributed copies carry NUL padding and CRLF line ends.
* TSPLIB / CVRPLIB ``.vrp`` files (Augerat et al. 1998), ``EUC_2D`` distances
  rounded to the nearest integer (TSPLIB ``nint``).

Every reader raises :class:`InstanceFormatError` naming the file, the line and
what was expected, so a user can fix the file instead of reading a traceback.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class InstanceFormatError(ValueError):
    """A benchmark file could not be read; the message names file, line and expectation."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class CflpInstance:
    """Capacitated facility-location instance.

    ``cost[i, j]`` is the cost of serving *all* of customer ``j``'s demand from
    facility ``i``; with a fractional assignment ``x_ij`` the cost is
    ``cost[i, j] * x_ij`` (Beasley 1988 convention, also used by Holmberg).
    """

    name: str
    capacity: np.ndarray  # (m,) demand units
    fixed_cost: np.ndarray  # (m,)
    demand: np.ndarray  # (n,)
    cost: np.ndarray  # (m, n)
    source: str = ""

    @property
    def n_facilities(self) -> int:
        return int(self.capacity.shape[0])

    @property
    def n_customers(self) -> int:
        return int(self.demand.shape[0])


@dataclass(frozen=True)
class CvrpInstance:
    """Capacitated vehicle-routing instance in TSPLIB node numbering.

    ``node_ids[k]`` is the TSPLIB id of row/column ``k`` of ``distance``; the depot
    is at index 0 after reading.  ``distance`` is the rounded EUC_2D matrix.
    """

    name: str
    capacity: int
    node_ids: list[int]
    coords: np.ndarray  # (N, 2)
    demand: np.ndarray  # (N,) int, depot 0
    distance: np.ndarray  # (N, N) int64
    comment: str = ""
    source: str = ""
    trucks_in_name: int | None = None
    best_known: float | None = field(default=None)

    @property
    def n_customers(self) -> int:
        return len(self.node_ids) - 1


_NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _tokens(path: Path) -> list[tuple[str, int]]:
    """Whitespace tokens with their 1-based line numbers (NUL bytes and CR dropped)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InstanceFormatError(path, None, "file not found; give the path of an existing instance file") from None
    except OSError as exc:
        raise InstanceFormatError(path, None, f"cannot be read ({exc.strerror})") from None
    # Some distributed Holmberg files are padded with NUL bytes and use CRLF.
    text = raw.replace(b"\x00", b"").decode("utf-8", errors="replace").replace("\r", "")
    out: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        for tok in line.split():
            out.append((tok, lineno))
    return out


class _Cursor:
    def __init__(self, path: Path, toks: list[tuple[str, int]]):
        self.path, self.toks, self.i = path, toks, 0

    def _last_line(self) -> int | None:
        return self.toks[-1][1] if self.toks else None

    def number(self, what: str, *, word_value: float | None = None, word: str | None = None) -> float:
        if self.i >= len(self.toks):
            raise InstanceFormatError(
                self.path, self._last_line(),
                f"file ends early: expected {what} (token {self.i + 1}); the file is truncated or its header counts are wrong",
            )
        tok, line = self.toks[self.i]
        self.i += 1
        if word is not None and tok.lower() == word:
            if word_value is None:
                raise InstanceFormatError(
                    self.path, line,
                    f"{what} is the word '{tok}'; pass the capacity to substitute (e.g. --capacity 8000)",
                )
            return float(word_value)
        if not _NUM_RE.match(tok):
            raise InstanceFormatError(self.path, line, f"expected {what} as a number, found '{tok}'")
        return float(tok)

    def integer(self, what: str) -> int:
        line = self.toks[self.i][1] if self.i < len(self.toks) else self._last_line()
        v = self.number(what)
        if v != int(v) or v <= 0:
            raise InstanceFormatError(self.path, line, f"expected {what} as a positive integer, found {v:g}")
        return int(v)

    def at_end(self) -> None:
        if self.i < len(self.toks):
            tok, line = self.toks[self.i]
            raise InstanceFormatError(
                self.path, line,
                f"unexpected extra data '{tok}' after the last expected value; check the header counts",
            )


def _check_positive(path: Path, arr: np.ndarray, lines: list[int], what: str) -> None:
    bad = np.flatnonzero(~(arr > 0))
    if bad.size:
        k = int(bad[0])
        raise InstanceFormatError(
            path, lines[k], f"{what} {k + 1} is {arr[k]:g}; it must be positive (remove the candidate instead of giving it no capacity)",
        )


def _read_facilities(cur: "_Cursor", noun: str, capacity: float | None):
    """The shared head of OR-Library and Holmberg files: ``m n`` then m lines ``capacity fixed_cost``."""
    m = cur.integer(f"number of {noun}s m (first header value)" if noun != "facility" else "number of facilities m (first header value)")
    n = cur.integer("number of customers n (second header value)")
    cap = np.empty(m)
    fixed = np.empty(m)
    cap_lines: list[int] = []
    for i in range(m):
        cap_lines.append(cur.toks[cur.i][1] if cur.i < len(cur.toks) else 0)
        c = cur.number(f"capacity of {noun} {i + 1}", word="capacity", word_value=capacity)
        cap[i] = capacity if capacity is not None else c
        fixed[i] = cur.number(f"fixed cost of {noun} {i + 1}")
    return m, n, cap, fixed, cap_lines


def read_orlib_cap(path: str | Path, capacity: float | None = None) -> CflpInstance:
    """Read a Beasley OR-Library ``cap*`` file (``capinfo`` format).

    ``capacity`` replaces the literal word ``capacity`` used by capa/capb/capc; if
    given, it also overrides numeric capacities so one file can be run at the
    several capacity levels of Beasley's Table 1.
    """
    path = Path(path)
    cur = _Cursor(path, _tokens(path))
    m, n, cap, fixed, cap_lines = _read_facilities(cur, "warehouse", capacity)
    demand = np.empty(n)
    cost = np.empty((m, n))
    dem_lines: list[int] = []
    for j in range(n):
        dem_lines.append(cur.toks[cur.i][1] if cur.i < len(cur.toks) else 0)
        demand[j] = cur.number(f"demand of customer {j + 1}")
        for i in range(m):
            cost[i, j] = cur.number(f"cost of serving customer {j + 1} from warehouse {i + 1}")
    cur.at_end()
    _check_positive(path, cap, cap_lines, "capacity of warehouse")
    if np.any(demand < 0):
        k = int(np.flatnonzero(demand < 0)[0])
        raise InstanceFormatError(path, dem_lines[k], f"demand of customer {k + 1} is negative ({demand[k]:g})")
    if np.any(fixed < 0) or np.any(cost < 0):
        raise InstanceFormatError(path, None, "negative fixed or assignment cost; costs must be >= 0")
    return CflpInstance(path.stem, cap, fixed, demand, cost, source=str(path))


def read_holmberg(path: str | Path, capacity: float | None = None) -> CflpInstance:
    """Read a Holmberg, Rönnqvist & Yuan (1999) SSCFLP original file.

    The cost matrix is facility-major (row ``i`` = cost of assigning each customer
    to facility ``i``); this orientation reproduces p1 = 8848.  ``capacity``, if
    given, overrides every facility capacity.
    """
    path = Path(path)
    cur = _Cursor(path, _tokens(path))
    m, n, cap, fixed, cap_lines = _read_facilities(cur, "facility", capacity)
    demand = np.array([cur.number(f"demand of customer {j + 1}") for j in range(n)])
    cost = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            cost[i, j] = cur.number(f"cost of assigning customer {j + 1} to facility {i + 1}")
    cur.at_end()
    _check_positive(path, cap, cap_lines, "capacity of facility")
    if np.any(demand < 0) or np.any(fixed < 0) or np.any(cost < 0):
        raise InstanceFormatError(path, None, "negative demand or cost; demands and costs must be >= 0")
    return CflpInstance(path.stem, cap, fixed, demand, cost, source=str(path))


_VRP_KEYS = {"NAME", "COMMENT", "TYPE", "DIMENSION", "EDGE_WEIGHT_TYPE", "CAPACITY"}


def euc_2d_matrix(coords: np.ndarray) -> np.ndarray:
    """TSPLIB EUC_2D distances: Euclidean distance rounded to the nearest integer (nint)."""
    diff = coords[:, None, :] - coords[None, :, :]
    return np.floor(np.sqrt((diff**2).sum(axis=2)) + 0.5).astype(np.int64)


def read_cvrplib(path: str | Path) -> CvrpInstance:
    """Read a CVRPLIB / TSPLIB ``.vrp`` file with ``EDGE_WEIGHT_TYPE: EUC_2D``."""
    path = Path(path)
    try:
        text = path.read_bytes().replace(b"\x00", b"").decode("utf-8", errors="replace").replace("\r", "")
    except FileNotFoundError:
        raise InstanceFormatError(path, None, "file not found; give the path of an existing .vrp file") from None
    header: dict[str, str] = {}
    header_line: dict[str, int] = {}
    section = None
    coords: dict[int, tuple[float, float]] = {}
    demands: dict[int, int] = {}
    depots: list[int] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        s = line.strip()
        if not s:
            continue
        up = s.upper()
        if up == "EOF":
            break
        if up.endswith("_SECTION"):
            section = up
            if section not in {"NODE_COORD_SECTION", "DEMAND_SECTION", "DEPOT_SECTION"}:
                raise InstanceFormatError(
                    path, lineno, f"unsupported section '{s}'; expected NODE_COORD_SECTION, DEMAND_SECTION or DEPOT_SECTION",
                )
            continue
        if ":" in s and section is None or (":" in s and s.split(":", 1)[0].strip().upper() in _VRP_KEYS):
            key, val = s.split(":", 1)
            header[key.strip().upper()] = val.strip()
            header_line[key.strip().upper()] = lineno
            section = None
            continue
        parts = s.split()
        try:
            if section == "NODE_COORD_SECTION":
                if len(parts) != 3:
                    raise ValueError
                coords[int(parts[0])] = (float(parts[1]), float(parts[2]))
            elif section == "DEMAND_SECTION":
                if len(parts) != 2:
                    raise ValueError
                demands[int(parts[0])] = int(parts[1])
            elif section == "DEPOT_SECTION":
                v = int(parts[0])
                if v == -1:
                    section = None
                else:
                    depots.append(v)
            else:
                raise InstanceFormatError(path, lineno, f"unexpected line '{s}' outside any section; expected 'KEY : value'")
        except ValueError:
            expect = {
                "NODE_COORD_SECTION": "'id x y'",
                "DEMAND_SECTION": "'id demand' with integer demand",
                "DEPOT_SECTION": "a node id or -1",
            }[section]
            raise InstanceFormatError(path, lineno, f"malformed line '{s}' in {section}; expected {expect}") from None
    for key in ("DIMENSION", "CAPACITY"):
        if key not in header:
            raise InstanceFormatError(path, None, f"header '{key} :' is missing")
    ewt = header.get("EDGE_WEIGHT_TYPE", "EUC_2D").upper()
    if ewt != "EUC_2D":
        raise InstanceFormatError(path, header_line.get("EDGE_WEIGHT_TYPE"), f"EDGE_WEIGHT_TYPE {ewt} is not supported; expected EUC_2D")
    try:
        dim = int(header["DIMENSION"])
        cap = int(float(header["CAPACITY"]))
    except ValueError:
        raise InstanceFormatError(path, header_line["DIMENSION"], "DIMENSION and CAPACITY must be integers") from None
    if cap <= 0:
        raise InstanceFormatError(path, header_line["CAPACITY"], f"CAPACITY is {cap}; it must be positive")
    if len(coords) != dim:
        raise InstanceFormatError(path, None, f"NODE_COORD_SECTION has {len(coords)} nodes but DIMENSION is {dim}")
    missing = sorted(set(coords) - set(demands))
    if missing:
        raise InstanceFormatError(path, None, f"DEMAND_SECTION has no demand for node(s) {missing[:5]}")
    depot = depots[0] if depots else min(coords)
    if depot not in coords:
        raise InstanceFormatError(path, None, f"depot {depot} in DEPOT_SECTION is not a node of NODE_COORD_SECTION")
    order = [depot] + sorted(k for k in coords if k != depot)
    xy = np.array([coords[k] for k in order], dtype=float)
    dem = np.array([demands[k] for k in order], dtype=np.int64)
    dem[0] = 0
    too_big = [order[k] for k in np.flatnonzero(dem > cap)]
    if too_big:
        raise InstanceFormatError(path, None, f"node(s) {too_big[:5]} demand more than the vehicle CAPACITY {cap}; no route can serve them")
    if np.any(dem < 0):
        raise InstanceFormatError(path, None, "negative demand in DEMAND_SECTION")
    name = header.get("NAME", path.stem)
    m = re.search(r"-k(\d+)", name)
    comment = header.get("COMMENT", "")
    bk = re.search(r"(?:Optimal|Best)\s+value:\s*([0-9.]+)", comment, re.IGNORECASE)
    return CvrpInstance(
        name=name, capacity=cap, node_ids=order, coords=xy, demand=dem, distance=euc_2d_matrix(xy),
        comment=comment, source=str(path), trucks_in_name=int(m.group(1)) if m else None,
        best_known=float(bk.group(1)) if bk else None,
    )


def read_capopt(path: str | Path) -> dict[str, float]:
    """OR-Library ``capopt`` / Holmberg-style 'name value' optimum tables."""
    path = Path(path)
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and _NUM_RE.match(parts[1]) and not math.isnan(float(parts[1])):
            out[parts[0]] = float(parts[1])
    return out
