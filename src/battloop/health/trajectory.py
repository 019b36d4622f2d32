"""Capacity-trajectory calibration with a cohort prior, used by forecasts and backtests.

Pure NumPy/SciPy; no Django.

A capacity series ``y(t)`` (capacity relative to the series' first capacity;
``t`` in days for calendar aging, in cycles or equivalent full cycles for cycle
aging) is described by a small set of semi-empirical trend forms:

``power``
    ``y = y0 - a (t/tau)^b`` -- the calendar/cycle law of NREL BLAST-Lite
    (Smith et al. 2017, "Life prediction model for grid-connected Li-ion battery
    energy storage system", ACC 2017) and Naumann et al. 2018 (J. Energy
    Storage 17:153, ``t^0.5`` calendar fade of LFP). ``a`` is the per-cell rate
    multiplier and ``b`` the time exponent, with a log-normal prior on ``b``
    centred on the cohort value (hierarchical / empirical-Bayes calibration,
    Gelman et al., *Bayesian Data Analysis*, ch. 5).
``linear``
    ``y = c + m t`` over the whole window -- the classical fade line (adequate
    for nearly linear cycle fade with capacity-regeneration noise, e.g. the NASA
    PCoE 18650 cells, Saha & Goebel 2007).
``exp_recent``
    ``y = c - a exp(k t/tau)`` over the recent half of the window (at least its last five points) -- the
    exponential-knee form of He et al. 2011 (J. Power Sources 196:10314), which
    follows accelerating fade (lithium plating, loss of active material) and,
    with ``k < 0``, saturating fade.

Which form to trust is measured, not assumed: every series of the cohort is
refitted on the first 60 % and 80 % of its own fit window and scored on the
rest (rolling-origin evaluation, Tashman 2000, Int. J. Forecasting 16:437).
The cohort's errors give inverse-MSE weights to the forms (Bates & Granger
1969; squared, so a clearly worse form drops out) and the forecast is the
weighted mixture. Calendar series use the power law only: storage/float fade
is diffusion-limited and decelerating (Naumann 2018), and short calendar
windows would otherwise reward forms that fail far ahead.

The predictive variance adds measurement noise, parameter uncertainty
(Gauss-Newton covariance), the spread between forms and a model-form term
``(kappa * |forecast change beyond the data|)^2`` (for calendar series the change is
measured from the centroid of the fitted times, see :func:`fit_cohort`). ``kappa`` is set on the same
rolling-origin splits so that 80 % of the held-out inner points fall inside
P10-P90 (quantile matching, which a few series with large errors cannot
inflate the way variance matching would), with a floor per kind
(:data:`KIND_KAPPA_MIN`): inner splits of the early life cannot show a later
change of the fade shape. Short or flat series borrow the
cohort shape through the prior on ``b``; a single series falls back to a weak
prior by kind (``b`` = 0.5 calendar, 1.0 cycle).

The knee form's growth is pooled across the cohort as far as the same
rolling-origin splits say it helps (:data:`KNEE_POOL_GRID`): each series' growth
over its own window is moved towards the cohort median by a share chosen on
the splits, because how much of the coming acceleration a window already shows
varies between cells far more than the fit's own uncertainty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

#: z-scores of the quantiles reported everywhere in the health package.
Z_P10, Z_P50, Z_P90 = (float(z) for z in stats.norm.ppf([0.1, 0.5, 0.9]))

B_MIN, B_MAX = 0.2, 4.0
KNEE_K_MAX = 8.0  # bound on the exp_recent growth rate per unit of t/tau
KNEE_MIN_POINTS = 5  # points the exp_recent form is fitted on at least: three parameters and two to spare
KIND_PRIOR_B = {"calendar": 0.5, "cycle": 1.0}
KIND_PRIOR_LOG_SD = {"calendar": 0.35, "cycle": 0.6}
KIND_PRIOR_WEIGHT = {"calendar": 10.0, "cycle": 1.0}  # pseudo-series behind the kind prior
#: widest per-series prior sd on log b. Calendar fade of one cell type follows one time exponent
#: (Naumann et al. 2018 and BLAST-Lite fit a single exponent over all 17 storage conditions); what a
#: short window shows beyond it is mostly the onset after formation. Over every Naumann check-up from
#: day 30 to 346 as split point, the mean capacity error at day 376 fell from 0.69 to 0.58 pp when this
#: was tightened from 0.15 to 0.08 (the 885-day check: 0.48 -> 0.40 pp), with the same mean coverage.
KIND_B_SD_MAX = {"calendar": 0.08, "cycle": 0.8}
FORMS = ("power", "linear", "exp_recent")
#: Smallest model-form term ``kappa`` (sd of the model-form error per unit of forecast change).
#: The inner rolling-origin splits see only the early part of the fit window, so they can show
#: at most the shape changes that already happened there: a cycle series whose fade later slows
#: (Oxford 8-cell set) or bends into the knee (HUST LFP) looks like a straight line to them, and
#: the kappa they give is then a lower bound, not an estimate. For cycle series the floor is the
#: cross-dataset value: on the public cycle sets the kappa that puts 80 % of the points held out
#: beyond the split inside P10-P90 lies between about 0.12 and 0.3 (HUST at 50 % and 70 % of life,
#: Oxford at 50 %, NASA at cycle 80), median near 0.2. (Since the knee growth is pooled, HUST
#: needs less: at 50 % of life the band covers 0.90 with kappa at 0.15 or below and 0.90 at the
#: floor; Oxford at 50 % still needs 0.2, 0.62 at 0.15.) Calendar fade of one chemistry keeps its
#: shape (diffusion-limited, Naumann et al. 2018), and there the inner splits are trusted.
KIND_KAPPA_MIN = {"calendar": 0.05, "cycle": 0.2}
# inverse-MSE weights are squared so a clearly worse form drops out (plain Bates-Granger weights
# kept too much of a form that fails far ahead in the rolling-origin checks)
WEIGHT_POWER = 2.0
#: a form whose weight falls below this drops out and the rest are renormalised. A form with 5 %
#: weight scored about 4.4 times the squared error of the best one on the splits; kept, it adds
#: little to the mean but its distance from the others enters the band as between-form spread
#: (HUST LFP at half of life: the straight line at 4 % weight was a third of the band's variance).
#: At 0.02 instead of 0.05 HUST's RUL error relative to the remaining life was 0.100 against 0.094
#: at half of life, 0.25 against 0.20 with a fixed split at cycle 800, P10-P90 coverage 0.93 against 0.90.
FORM_WEIGHT_MIN = 0.05


class TrajectoryError(ValueError):
    """A series cannot be fitted; the message names the series and the fix."""


def robust_scale(r) -> float:
    """Normal-consistent median absolute deviation."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def noise_scale(y) -> float:
    """Measurement noise from first differences (von Neumann 1941), robust and trend-free.

    Floored at 2e-4 (0.02 % of capacity) so that noiseless data keeps a finite likelihood.
    """
    y = np.asarray(y, dtype=float)
    if y.size < 3:
        return 2e-3
    d = np.diff(y)
    return float(max(robust_scale(d - np.median(d)) / np.sqrt(2.0), 2e-4))


@dataclass
class Curve:
    """One fitted trend form; ``mean`` and ``par_var`` take times in the series' unit."""

    form: str
    params: np.ndarray
    cov: np.ndarray = field(repr=False)
    tau: float = 1.0

    def _f(self, p, x):
        if self.form == "power":
            y0, la, lb = p
            return y0 - np.exp(la) * np.maximum(x, 0.0) ** np.exp(lb)
        if self.form == "linear":
            c, m = p
            return c + m * x
        c, la, k = p
        return c - np.exp(la) * np.exp(np.clip(k * x, -50, 50))

    def mean(self, t):
        # capacity cannot fall below zero: an accelerating form run far past its window would
        # otherwise forecast negative capacity (the fit itself never sees the bound)
        return np.maximum(self._f(self.params, np.asarray(t, dtype=float) / self.tau), 0.0)

    def par_var(self, t):
        x = np.atleast_1d(np.asarray(t, dtype=float) / self.tau)
        p = self.params
        eps = 1e-6 * np.maximum(np.abs(p), 1.0)
        J = np.stack([(self._f(p + e, x) - self._f(p - e, x)) / (2 * e[i]) for i, e in enumerate(np.diag(eps))], axis=-1)
        v = np.einsum("ni,ij,nj->n", J, self.cov, J)
        return np.maximum(np.nan_to_num(v, nan=0.0, posinf=1.0), 0.0)


def _nls(form, x, y, sigma, p0, lo, hi, extra=None, f_scale=2.5, expand=None):
    """Robust least squares of one form; ``expand`` maps the fitted parameters to the form's full
    parameter vector when some are held fixed."""
    expand = expand or (lambda p: p)

    def resid(p):
        full = expand(p)
        r = (y - Curve(form, full, np.zeros((full.size, full.size)))._f(full, x)) / sigma
        return r if extra is None else np.append(r, extra(p))

    p0 = np.clip(np.asarray(p0, float), np.asarray(lo) + 1e-9, np.asarray(hi) - 1e-9)
    res = optimize.least_squares(resid, p0, bounds=(lo, hi), loss="soft_l1", f_scale=f_scale, x_scale="jac", max_nfev=400)
    J = res.jac
    cov = np.linalg.pinv(J.T @ J)
    return res.x, np.nan_to_num(cov, nan=0.0, posinf=0.0), J


def fit_form(form, t, y, tau, sigma, b_prior=1.0, b_log_sd=0.6, knee_growth=None):
    """Fit one trend form to (t, y); returns a :class:`Curve` or None when the window is too short.

    ``knee_growth`` fixes the ``exp_recent`` growth over the whole window, ``k * t[-1] / tau``
    (see :func:`knee_growth`), and leaves the level and amplitude free.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    x = t / tau
    n = t.size
    if form == "power":
        y_init = float(np.max(y[: min(3, n)]))
        drop = max(y_init - float(np.median(y[-min(3, n):])), 1e-4)
        a0 = drop / max(x.max(), 1e-9) ** b_prior

        def prior(p):
            # cohort prior on the exponent; weak prior keeping y0 near the first points
            return np.array([(p[2] - np.log(b_prior)) / b_log_sd, (p[0] - y_init) / max(5 * sigma, 0.01)])

        p, cov, J = _nls(form, x, y, 1.0, [y_init, np.log(a0), np.log(b_prior)],
                         [-np.inf, np.log(1e-9), np.log(B_MIN)], [np.inf, np.log(10.0), np.log(B_MAX)],
                         extra=lambda p: prior(p) * sigma, f_scale=2.5 * sigma)
        # Laplace posterior covariance: the data rows carry the residual variance s2, the priors
        # keep their own precision. Scaling the whole J'J by s2 would weaken the cohort prior
        # whenever the residuals exceed the noise estimate. (The prior's precision is written
        # out: the solver's Jacobian rows are down-weighted by the robust loss, which is meant
        # for outlying data, not for the prior.)
        r = y - Curve(form, p, cov)._f(p, x)
        s2 = max(np.mean(r**2), sigma**2)
        prior_precision = np.diag([1.0 / max(5 * sigma, 0.01) ** 2, 0.0, 1.0 / b_log_sd**2])
        cov = np.nan_to_num(np.linalg.pinv(J[:n].T @ J[:n] / s2 + prior_precision), nan=0.0, posinf=0.0)
        return Curve(form, p, cov, tau)
    if form == "linear":
        if n < 2:
            return None
        X = np.column_stack([np.ones(n), x])
        w = np.ones(n)
        for _ in range(5):  # Huber IRLS: capacity-regeneration spikes get down-weighted
            beta, *_ = np.linalg.lstsq(X * w[:, None] ** 0.5, y * w**0.5, rcond=None)
            r = y - X @ beta
            s = max(robust_scale(r), sigma)
            w = np.minimum(1.0, 1.5 * s / np.maximum(np.abs(r), 1e-12))
        dof = max(n - 2, 1)
        s2 = max(float(np.sum(w * r**2) / dof), sigma**2) if n > 2 else sigma**2
        cov = np.linalg.pinv((X * w[:, None]).T @ X) * s2
        return Curve(form, beta, cov, tau)
    # exp_recent: the recent half of the window
    t0 = t[0] + 0.5 * (t[-1] - t[0])
    m = t >= t0
    if m.sum() < KNEE_MIN_POINTS:
        if n < KNEE_MIN_POINTS:
            return None
        # sparse check-ups (every 100 cycles, say): the last few points, even where they reach back
        # further than half the window, rather than no knee form at all. HUST LFP thinned to every
        # 100th cycle, fit on half of life: the knee form was left out of every cell whose window
        # held fewer than ten points, and the mean relative end-of-life error was 0.51-0.72 over
        # the offsets 0, 25, 50, 75 cycles (every 150th: 0.71); with it 0.09-0.33 (0.19)
        m = np.arange(n) >= n - KNEE_MIN_POINTS
    xr, yr = x[m], y[m]
    slope = np.polyfit(xr, yr, 1)[0]
    k0 = 1.0 if knee_growth is None else float(np.clip(knee_growth / x[-1], -KNEE_K_MAX, KNEE_K_MAX))
    a0 = max(-slope / k0 / np.exp(k0 * xr[-1]), 1e-6) if k0 > 1e-9 else 1e-3
    c0 = yr[-1] + a0 * np.exp(k0 * xr[-1])
    if knee_growth is None:
        p, cov, _ = _nls(form, xr, yr, 1.0, [c0, np.log(a0), k0], [-np.inf, np.log(1e-9), -KNEE_K_MAX], [np.inf, np.log(50.0), KNEE_K_MAX],
                         f_scale=2.5 * sigma)
        n_par = 3
    else:
        # growth fixed: level and amplitude only; the growth gets no parameter variance (the
        # model-form term, calibrated on fits made the same way, carries that uncertainty)
        q, cov_q, _ = _nls(form, xr, yr, 1.0, [c0, np.log(a0)], [-np.inf, np.log(1e-9)], [np.inf, np.log(50.0)],
                           f_scale=2.5 * sigma, expand=lambda q: np.append(q, k0))
        p, cov = np.append(q, k0), np.zeros((3, 3))
        cov[:2, :2] = cov_q
        n_par = 2
    r = yr - Curve(form, p, cov)._f(p, xr)
    s2 = max(float(np.sum(r**2) / max(m.sum() - n_par, 1)), sigma**2)
    return Curve(form, p, cov * s2, tau)


@dataclass
class SeriesFit:
    """Calibrated forecast of one series: a weighted mixture of trend forms."""

    key: str
    curves: dict
    weights: dict
    tau: float
    t_end: float
    noise_sd: float
    kappa: float
    n_points: int = 0
    var_scale: float = 1.0
    #: where the model-form term starts from: the end of the data, or (calendar) the centroid of its times
    t_anchor: float | None = None

    @property
    def power(self) -> Curve | None:
        return self.curves.get("power")

    @property
    def b(self) -> float:
        return float(np.exp(self.power.params[2])) if self.power is not None else float("nan")

    @property
    def rate_multiplier(self) -> float:
        return float(np.exp(self.power.params[1])) if self.power is not None else float("nan")

    def _weighted(self):
        keys = [k for k in self.curves if self.weights.get(k, 0) > 0]
        w = np.array([self.weights[k] for k in keys])
        return keys, w / w.sum()

    def _mix(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        keys, w = self._weighted()
        mus = np.stack([self.curves[k].mean(t) for k in keys])
        pvs = np.stack([self.curves[k].par_var(t) for k in keys])
        mu = w @ mus
        between = w @ (mus - mu) ** 2
        return t, mu, w @ pvs + between

    def mean(self, t):
        # the weighted mean alone: the parameter variances of _mix are not needed for it
        t = np.atleast_1d(np.asarray(t, dtype=float))
        keys, w = self._weighted()
        return w @ np.stack([self.curves[k].mean(t) for k in keys])

    def _sd(self, t, mu, var):
        mu_end = self.mean(np.array([self.t_end if self.t_anchor is None else self.t_anchor]))[0]
        change = np.where(t > self.t_end, np.abs(mu_end - mu), 0.0)
        return np.sqrt(self.noise_sd**2 + self.var_scale * var + (self.kappa * change) ** 2)

    def sd(self, t):
        return self._sd(*self._mix(t))

    def quantiles(self, t, z=(Z_P10, Z_P50, Z_P90)):
        t, mu, var = self._mix(t)
        sd = self._sd(t, mu, var)
        return np.maximum(np.array([mu + zi * sd for zi in z]), 0.0)

    def crossing_times(self, threshold, z=(Z_P10, Z_P50, Z_P90), t_max=None):
        """First times the z-quantile curves fall below ``threshold`` (``inf`` if not before ``t_max``).

        The P10 curve crosses first, so z=P10 gives the early (P10) date.
        """
        t_max = t_max if t_max is not None else 50.0 * max(self.t_end, 1.0)
        grid = crossing_grid(max(self.t_end, 1e-6), t_max)
        return first_crossing(grid, self.quantiles(grid, z), threshold)


def crossing_grid(t_start, t_max, n=3000):
    """Times from ``t_start`` to ``t_max`` on which crossings are searched: even and geometric spacing
    together, so both near crossings and crossings decades ahead are resolved."""
    return np.unique(np.concatenate([np.linspace(t_start, t_max, n), np.geomspace(max(t_start, 1e-6), t_max, n)]))


def first_crossing(grid, rows, threshold):
    """Interpolated first time each row of ``rows`` (k x n) drops below ``threshold``; ``inf`` if never."""
    rows = np.atleast_2d(rows)
    out = np.full(rows.shape[0], np.inf)
    for j, row in enumerate(rows):
        idx = np.nonzero(row < threshold)[0]
        if idx.size == 0:
            continue
        i = idx[0]
        if i == 0:
            out[j] = grid[0]
        else:
            out[j] = grid[i - 1] + (threshold - row[i - 1]) * (grid[i] - grid[i - 1]) / (row[i] - row[i - 1])
    return out


@dataclass
class CohortFit:
    """Result of :func:`fit_cohort`."""

    b_cohort: float
    b_log_sd: float
    weights: dict
    kappa: float
    fits: dict
    var_scale: float = 1.0
    #: share of the cohort median in each series' knee growth (0: every series its own; see KNEE_POOL_GRID)
    knee_pool: float = 0.0

    def quantiles(self, key, t, z=(Z_P10, Z_P50, Z_P90)):
        return self.fits[key].quantiles(t, z)

    def crossing_times(self, key, threshold, z=(Z_P10, Z_P50, Z_P90), t_max=None):
        return self.fits[key].crossing_times(threshold, z, t_max)


def _weighted_median(values, weights) -> float:
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights)[order]
    c = np.cumsum(w)
    return float(v[np.searchsorted(c, 0.5 * c[-1])])


def cohort_exponent(series, tau, kind):
    """Cohort time exponent: signal-weighted median of per-series exponents, shrunk to the kind prior.

    The prior weighs as ``KIND_PRIOR_WEIGHT`` pseudo-series: calendar fade has a
    strong physical prior (diffusion-limited SEI growth, t^0.5; Naumann et al.
    2018) and early calendar data are dominated by the post-formation drop that
    biases short-window exponents; cycle fade has no such prior.
    """
    kb, ks = KIND_PRIOR_B[kind], KIND_PRIOR_LOG_SD[kind]
    w0, sd_max = KIND_PRIOR_WEIGHT[kind], KIND_B_SD_MAX[kind]
    lbs, ws = [], []
    for k, (t, y) in series.items():
        s = noise_scale(y)
        c = fit_form("power", t, y, tau, s, kb, 2 * ks)
        drop = float(np.exp(c.params[1]) * (np.max(t) / tau) ** np.exp(c.params[2]))
        snr = drop / s
        if snr > 5:
            lbs.append(c.params[2])
            ws.append(min(snr, 200.0) * min(len(t), 50))
    if not lbs:
        return kb, min(ks, sd_max)
    n = len(lbs)
    lb = (n * _weighted_median(lbs, ws) + w0 * np.log(kb)) / (n + w0)
    spread = robust_scale(lbs) if n >= 3 else ks
    return float(np.exp(lb)), float(np.clip(spread, 0.05, sd_max))


def _fit_all_forms(t, y, tau, sigma, b_c, b_sd, forms=FORMS):
    out = {}
    for form in forms:
        try:
            c = fit_form(form, t, y, tau, sigma, b_c, b_sd)
        except (ValueError, np.linalg.LinAlgError):
            c = None
        if c is not None:
            out[form] = c
    return out


@dataclass
class _Split:
    """One rolling-origin split of one series: the forms fitted on the early part, the rest held out."""

    key: str
    cut: float
    frac: float
    curves: dict
    t_fit: np.ndarray
    y_fit: np.ndarray
    t_test: np.ndarray
    y_test: np.ndarray
    scale: float


def _form_weights(inner, forms) -> dict:
    """Inverse-MSE weights of the forms from their rolling-origin errors (see the module docstring)."""
    sq = {f: [] for f in forms}
    for sp in inner:
        for f in forms:
            c = sp.curves.get(f)
            sq[f].append(float(np.mean(((sp.y_test - c.mean(sp.t_test)) / sp.scale) ** 2)) if c is not None else np.nan)
    scores = {}
    for f in forms:
        v = np.asarray(sq[f], float)
        if v.size and np.isfinite(v).mean() >= 0.5:
            # a split on which a form could not be fitted does not score it: there the mixture falls
            # back to the other forms, as the forecast does for a series too short for that form
            scores[f] = float(np.nanmean(v))
    if not scores:
        return {"power": 1.0}
    raw = {f: 1.0 / max(sc, 1e-12) ** WEIGHT_POWER for f, sc in scores.items()}
    tot = sum(raw.values())
    weights = {f: r / tot for f, r in raw.items() if r / tot >= FORM_WEIGHT_MIN}
    tot = sum(weights.values())
    return {f: w / tot for f, w in weights.items()}


#: Pooling strengths tried for the knee growth of ``exp_recent``: the share of the cohort median
#: in each series' growth over its own window (0 = every series its own, 1 = all the median).
#: In a cohort of one cell type the knee comes as the same kind of acceleration, but how much of
#: it a window already shows varies from cell to cell far more than the growth's standard error
#: says (HUST LFP at half of life: growth 1.16 +- 0.33 between cells, +- 0.01 within a fit), and
#: the cells whose window shows the least growth are the ones whose end of life comes earliest
#: against the forecast. How far to pool is measured, not assumed: the strength is chosen on the
#: rolling-origin splits by the error of the weighted forecast as used (form weights held at their
#: unpooled values, so pooling cannot promote a form that carries no weight: NASA's four cells
#: keep their own fits; once a strength is chosen the weights are scored again on the pooled fits). Empirical-Bayes shrinkage to a group mean (Efron & Morris 1975, JASA
#: 70:311), its strength set by cross-validation instead of a variance formula.
KNEE_POOL_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: a pooled fit must beat the unpooled one on the splits by this share to be used
KNEE_POOL_MIN_GAIN = 0.02


def knee_growth(curve: Curve, t_end: float) -> float:
    """Growth of an ``exp_recent`` curve over its window, ``k * t_end / tau``: the log of how much
    its fade rate multiplies from t = 0 to the window's end, a number that does not depend on the
    unit of ``t``."""
    return float(curve.params[2] * t_end / curve.tau)


def _knee_centre(curves_and_ends) -> float | None:
    """Cohort median of the knee growth over ``(curve, window end)`` pairs; None below 3 curves."""
    g = [knee_growth(c, t_end) for c, t_end in curves_and_ends if c is not None]
    return float(np.median(g)) if len(g) >= 3 else None


def _pooled_knee_fit(curve, t, y, tau, sigma, pool, centre):
    growth = (1.0 - pool) * knee_growth(curve, t[-1]) + pool * centre
    pooled = fit_form("exp_recent", t, y, tau, sigma, knee_growth=growth)
    return pooled if pooled is not None else curve


def _mixture_score(inner, weights, tau) -> float:
    """Mean normalised squared error of the weighted forecast over the rolling-origin splits."""
    err = []
    for sp in inner:
        w = {f: weights[f] for f in weights if f in sp.curves}
        if w:
            mu = SeriesFit(sp.key, sp.curves, w, tau, sp.cut, 0.0, 0.0).mean(sp.t_test)
            err.append(float(np.mean(((sp.y_test - mu) / sp.scale) ** 2)))
    return float(np.mean(err)) if err else np.inf


def _choose_knee_pooling(inner, weights, tau, noise):
    """Pooling strength of the knee growth (see :data:`KNEE_POOL_GRID`) and the splits refitted with it."""
    if len(KNEE_POOL_GRID) < 2:  # a one-point grid (0,) turns pooling off
        return 0.0, inner
    centres = {}
    for frac in {sp.frac for sp in inner}:
        centres[frac] = _knee_centre((sp.curves.get("exp_recent"), sp.t_fit[-1]) for sp in inner if sp.frac == frac)
    if any(c is None for c in centres.values()):
        return 0.0, inner

    def refit(pool):
        trial = []
        for sp in inner:
            c = sp.curves.get("exp_recent")
            if c is not None:
                curves = dict(sp.curves)
                curves["exp_recent"] = _pooled_knee_fit(c, sp.t_fit, sp.y_fit, tau, noise[sp.key], pool, centres[sp.frac])
                sp = dataclasses.replace(sp, curves=curves)
            trial.append(sp)
        return trial

    base = _mixture_score(inner, weights, tau)
    best = (base, 0.0, inner)  # (score, pool, splits)

    def consider(pool):
        nonlocal best
        trial = refit(pool)
        best = min(best, (_mixture_score(trial, weights, tau), pool, trial), key=lambda b: b[0])

    # the grid, then half a step either side of its best point
    for pool in KNEE_POOL_GRID[1:]:
        consider(pool)
    half_step = (KNEE_POOL_GRID[1] - KNEE_POOL_GRID[0]) / 2
    for pool in (best[1] - half_step, best[1] + half_step):
        if 0.0 < pool <= 1.0:
            consider(pool)
    score, pool, splits = best
    if score > (1.0 - KNEE_POOL_MIN_GAIN) * base:
        return 0.0, inner
    return pool, splits


#: Trend forms considered per kind. Calendar fade of stored or float-charged
#: cells is diffusion-limited SEI growth and decelerates (Naumann et al. 2018;
#: BLAST-Lite calendar terms, t^0.5..0.6), so only the power law is used;
#: cycle fade can be linear, decelerating or accelerating (knee), so all forms
#: compete and the rolling-origin scores decide.
KIND_FORMS = {"calendar": ("power",), "cycle": FORMS}


def fit_cohort(series: dict, kind: str = "cycle", inner_cuts=(0.6, 0.8), forms=None) -> CohortFit:
    """Calibrate every series of a cohort; see the module docstring for the method.

    ``series`` maps a key (cell or pack id) to ``(t, y)``: ``t`` >= 0 strictly
    increasing, ``y`` capacity relative to the series' first capacity.
    """
    if kind not in KIND_PRIOR_B:
        raise TrajectoryError(f"unknown kind {kind!r}: use 'calendar' or 'cycle'")
    if not series:
        raise TrajectoryError("no series to fit: every series was empty after cleaning")
    forms = tuple(forms) if forms is not None else KIND_FORMS[kind]
    series = {k: (np.asarray(t, float), np.asarray(y, float)) for k, (t, y) in series.items()}
    for k, (t, y) in series.items():
        if t.size < 2:
            raise TrajectoryError(f"series {k}: needs at least two points")
        if np.any(np.diff(t) <= 0):
            raise TrajectoryError(f"series {k}: t must be strictly increasing")
    tau = float(np.median([t.max() for t, _ in series.values()])) or 1.0
    b_c, b_sd = cohort_exponent(series, tau, kind)
    noise = {}
    for k, (t, y) in series.items():
        # differences overstate the noise of sparse, curved series (check-ups every
        # few weeks); the residual scale of the cohort-prior power fit does not
        s_diff = noise_scale(y)
        c = fit_form("power", t, y, tau, s_diff, b_c, b_sd)
        r = y - c.mean(t)
        s_fit = robust_scale(r) * np.sqrt(t.size / max(t.size - 3, 1)) if t.size > 4 else s_diff
        noise[k] = float(max(min(s_diff, s_fit), 2e-4))

    # rolling-origin splits of every series; errors are normalised per series so every series counts once
    inner = []
    for k, (t, y) in series.items():
        span = t[-1] - t[0]
        for frac in inner_cuts:
            cut = t[0] + frac * span
            m = t <= cut
            if m.sum() < 4 or (~m).sum() < 2:
                continue
            curves = _fit_all_forms(t[m], y[m], tau, noise[k], b_c, b_sd, forms)
            inner.append(_Split(k, cut, frac, curves, t[m], y[m], t[~m], y[~m], max(abs(y[-1] - y[0]), 3 * noise[k])))
    weights = _form_weights(inner, forms)
    knee_pool = 0.0
    if weights.get("exp_recent", 0.0) > 0.0:
        knee_pool, inner = _choose_knee_pooling(inner, weights, tau, noise)
        if knee_pool > 0.0:
            weights = _form_weights(inner, forms)

    # Calendar fade is one power law: an error in its exponent grows from the centroid of the
    # fitted times, where a least-squares fit is best determined (the prediction variance of a
    # regression is smallest at the mean of the design points), not from the last point -- so
    # the model-form term is measured from there. Anchored at the end, the short inner splits
    # overstate the error per unit of forecast change and the long-horizon band came out too
    # wide at 180 days of data and too narrow at 365 (Naumann 2018 check-ups). Cycle series mix
    # forms fitted on different windows and keep the end anchor, which measured better there.
    anchor_centroid = kind == "calendar"
    # Band calibration on the same rolling-origin splits: the model-form term
    # kappa (and, if the raw band is already too wide, a shrink factor on the
    # parameter/between-form variance) is set so that 80 % of held-out inner
    # points fall inside P10-P90 -- quantile matching, which heavy-tailed
    # errors of a few series cannot inflate the way variance matching would.
    rows = []
    for sp in inner:
        k, cut, curves, tt, yy = sp.key, sp.cut, sp.curves, sp.t_test, sp.y_test
        w = {f: weights[f] for f in weights if f in curves}
        if not w:
            continue
        sf = SeriesFit(k, curves, w, tau, cut, noise[k], 0.0)
        _, mu, var = sf._mix(tt)
        if anchor_centroid:
            tf = series[k][0]
            sf.t_anchor = float(np.mean(tf[tf <= cut]))
        mu_end = sf.mean(np.array([cut if sf.t_anchor is None else sf.t_anchor]))[0]
        change = np.abs(mu_end - mu)
        # points whose forecast change is within the noise say nothing about the model-form error
        ok = change > 2.0 * noise[k]
        # weight by relative horizon: the far points resemble the use of a forecast beyond the data
        hz = (tt - cut) / max(cut, 1e-9)
        if not ok.any():
            continue
        rows.append(np.column_stack([(yy - mu)[ok], np.full(ok.sum(), noise[k] ** 2), var[ok], change[ok], hz[ok] / hz[ok].sum()]))
    kappa, var_scale = 0.5, 1.0
    if rows:
        e, n2, v, c, wt = np.concatenate(rows).T

        def coverage(lam, kap):
            return float(np.sum(wt * (np.abs(e) <= Z_P90 * np.sqrt(n2 + lam * v + (kap * c) ** 2))) / np.sum(wt))

        target = 0.8
        if coverage(1.0, 0.0) >= target:
            kappa = 0.0
            lo, hi = 0.02, 1.0
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if coverage(mid, 0.0) >= target else (mid, hi)
            var_scale = hi
        else:
            lo, hi = 0.0, 3.0
            if coverage(1.0, hi) < target:
                kappa = hi
            else:
                for _ in range(40):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (lo, mid) if coverage(1.0, mid) >= target else (mid, hi)
                kappa = hi
    # a floor keeps the band growing with the horizon beyond the inner splits (see KIND_KAPPA_MIN)
    kappa = max(kappa, KIND_KAPPA_MIN[kind])

    all_curves = {k: _fit_all_forms(t, y, tau, noise[k], b_c, b_sd, forms) for k, (t, y) in series.items()}
    knee_centre = _knee_centre((all_curves[k].get("exp_recent"), t[-1]) for k, (t, _) in series.items())
    fits = {}
    for k, (t, y) in series.items():
        curves = all_curves[k]
        if knee_pool > 0.0 and knee_centre is not None and "exp_recent" in curves:
            curves["exp_recent"] = _pooled_knee_fit(curves["exp_recent"], t, y, tau, noise[k], knee_pool, knee_centre)
        w = {f: weights[f] for f in weights if f in curves} or {f: 1.0 for f in curves}
        fits[k] = SeriesFit(k, curves, w, tau, float(t[-1]), noise[k], kappa, n_points=int(t.size), var_scale=var_scale,
                            t_anchor=float(np.mean(t)) if anchor_centroid else None)
    return CohortFit(b_cohort=b_c, b_log_sd=b_sd, weights=weights, kappa=kappa, fits=fits, var_scale=var_scale, knee_pool=knee_pool)
