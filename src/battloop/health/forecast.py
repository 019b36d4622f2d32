"""Hierarchical calibration and probabilistic SOH/resistance forecasts for packs.

Pure NumPy; no Django.

Model (the aging laws of :mod:`battloop.health.models` with one multiplier
per pack, like BLAST-Lite's ``degradation_scalar``)::

    soh_j = q0 - m * L_j + e_j                    a measured capacity (against rated)
    soh_j = 1 + (q0 - mu_q0) + d - m * L_j + e_j  a BMS reading,       e_j ~ N(0, sd_j^2)
    q0 ~ N(mu_q0, sd_q0^2),    d ~ N(0, BMS_BIAS_SD^2),    log m ~ N(mu_cohort, tau_cohort^2)

A BMS reads 100 % for a new pack of its cohort's typical start (it counts fade, and most cap
SOH at 100 %): a pack that started above its cohort's typical capacity reads above that, by
its own offset, but the cohort's start above rated does not show in its readings.

``L_j`` is the nominal (m = 1) loss the model gives for the pack's own
temperature/SOC/throughput history up to the evidence time ``t_j``; ``soh_j``
and ``sd_j`` come from :mod:`battloop.health.estimate` (capacity tests, outage
discharges, BMS readings). The cohort (pack model, OEM, climate) prior is
estimated from all its packs by empirical Bayes (moment matching of the pack
posteriors, iterated; Efron & Morris 1975), each pack's posterior of ``log m``
is computed exactly on a grid (the initial-capacity offset ``q0`` and the pack's
BMS bias ``d`` are integrated out in closed form), and packs without evidence get
the cohort prior. Given m the offset ``q0 - 1`` is Gaussian with a mean linear in
m, and SOH carries it: a pack just measured low is partly a pack that started low,
so its SOH now stays at the measurement instead of at the rate's prediction.
``mu_q0``, what the cohort's new packs deliver against rated (often 102-105 %), is
estimated from the packs whose own tests pin their starting capacity: a test when
the pack was commissioned and another after years of aging (:func:`estimate_cohort_q0`).
Without it a cohort that started at 104 % would read, from a later test alone, as
aging more slowly than it does.

Forecasts continue every pack's aging state through a future climate
(seasonal monthly temperatures plus a scenario offset, e.g. -5 C for a cooling
retrofit) and usage (outages per year x DOD, with a scenario multiplier).
Because capacity falls monotonically in ``m`` and ``t``, the P10/P50/P90 of
SOH and resistance and the P10/P50/P90 dates of crossing each threshold are
exact transforms of the quantiles of ``m`` (with the offset's own sd added in
quadrature, :meth:`PackPosterior.soh_quantiles`): no Monte Carlo is needed, which is
what lets a 2-million-pack fleet be forecast monthly for 15 years in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .models import AgingState, simulate_aging
from .trajectory import Z_P10, Z_P50, Z_P90

#: Thresholds triage uses (DOMAIN.md section 4: 80 / 60-80 / 20-60 / < 20 %; 70 % telecom EOL).
TRIAGE_THRESHOLDS = (0.8, 0.7, 0.6, 0.2)
QUANTILE_Z = np.array([Z_P10, Z_P50, Z_P90])
DAYS_PER_MONTH = 365.25 / 12.0


class ForecastInputError(ValueError):
    """Bad input to calibration or forecast; names the pack/field and the fix."""


@dataclass
class CohortPrior:
    """Prior of the log rate multiplier of a cohort.

    Default: centred on the published parameter set (m = 1) with sd 0.3 in log
    space -- wider than BLAST-Lite's default fleet spread (degradation_scalar
    sd 0.15) because a cohort's cells may not be the ones the parameters were
    fitted to (reference notes: an off-the-shelf LFP model was 2-3x off).
    """

    log_m_mean: float = 0.0
    log_m_sd: float = 0.3


@dataclass
class PackPosterior:
    """Posterior of log m per pack (Gaussian summary of the exact grid posterior)."""

    log_m_mean: np.ndarray
    log_m_sd: np.ndarray
    n_evidence: np.ndarray
    cohort: CohortPrior
    #: the prior each pack was calibrated with: its sub-cohort's (e.g. climate zone within the pack
    #: model), or the cohort's when there are no sub-cohorts (then equal to ``cohort``)
    prior_mean: np.ndarray | None = None
    prior_sd: np.ndarray | None = None
    #: the pack's initial-capacity offset ``q0 - 1`` given m: mean ``offset_alpha + offset_beta * m``,
    #: sd ``offset_sd`` (exact: the offset is Gaussian given m, see :func:`_offset_posterior`).
    #: None: no offset (q0 = 1), as for a fleet forecast without evidence.
    offset_alpha: np.ndarray | None = None
    offset_beta: np.ndarray | None = None
    offset_sd: np.ndarray | None = None
    #: sd of the log m that the pack's prior is centred on (its cohort's or climate zone's mean, as far
    #: as the packs with evidence have not pinned it down), and the label of that prior: what the packs
    #: of one label do not know of their common mean they get wrong together (see
    #: :func:`crossing_samples_from_loss`). None: the hyper-prior's share (:func:`cohort_mean_sd`), one label.
    prior_mean_sd: np.ndarray | None = None
    prior_group: np.ndarray | None = None
    #: the cohort's mean initial capacity as a fraction of rated (``mu_q0``) and the number of packs it
    #: was estimated from (0: the hyper-prior's 1.0, no pack's own tests pinned a starting capacity)
    q0_mean: float = 1.0
    q0_packs: int = 0

    def multiplier_quantiles(self, z=QUANTILE_Z) -> np.ndarray:
        """Quantiles of m, shape (len(z), npacks)."""
        return np.exp(self.log_m_mean[None, :] + np.asarray(z)[:, None] * self.log_m_sd[None, :])

    def _offset(self, dtype=np.float64):
        n = self.log_m_mean.shape[0]
        if self.offset_alpha is None:
            return np.zeros(n, dtype), np.zeros(n, dtype), np.zeros(n, dtype)
        return (np.asarray(self.offset_alpha, dtype), np.asarray(self.offset_beta, dtype), np.asarray(self.offset_sd, dtype))

    def soh_quantiles(self, loss_nominal, dtype=np.float64) -> np.ndarray:
        """P10, P50, P90 of SOH for each pack's nominal (m = 1) loss path ``loss_nominal`` (npacks, n).

        SOH = q0 - m * L. Given m the offset is Gaussian, so SOH at m is ``1 + alpha - m (L - beta)``
        plus the offset's own sd: the m part is an exact quantile transform (SOH falls with m
        wherever ``L >= beta``, i.e. at and after the evidence), and the offset's sd is added in
        quadrature on each side of the median, which keeps the skew of the m part. The offset
        moves with m (a faster-aging pack explains a low measurement with less initial shortfall),
        so at the time of a precise capacity test the band narrows to that test's own uncertainty,
        and far ahead it is the spread of m that counts.
        """
        L = np.asarray(loss_nominal, dtype=dtype)
        alpha, beta, sd = self._offset(dtype)
        mq = self.multiplier_quantiles(QUANTILE_Z[::-1]).astype(dtype)  # high m first -> P10 of SOH
        a = 1.0 + alpha[None, :, None] - mq[:, :, None] * (L - beta[:, None])[None]
        c = (Z_P90 * sd)[:, None]
        mid = a[1]
        lo = mid - np.sqrt((mid - a[0]) ** 2 + c**2)
        hi = mid + np.sqrt((a[2] - mid) ** 2 + c**2)
        return np.maximum(np.stack([lo, mid, hi]), 0.0)

    def subset(self, which) -> "PackPosterior":
        """The posterior of some packs only (boolean mask or indices)."""
        pick = (lambda a: None if a is None else a[which])
        return PackPosterior(self.log_m_mean[which], self.log_m_sd[which], self.n_evidence[which], self.cohort,
                             pick(self.prior_mean), pick(self.prior_sd), pick(self.offset_alpha), pick(self.offset_beta),
                             pick(self.offset_sd), pick(self.prior_mean_sd), pick(self.prior_group), self.q0_mean, self.q0_packs)

    def shared_share(self) -> np.ndarray:
        """Per pack, the correlation of its log m with the unknown part of its prior's mean.

        The posterior mean of log m moves with the prior mean by ``sd^2 / prior_sd^2`` (the prior's
        share of the posterior precision), so the part of the pack's uncertainty that it shares with
        every pack of the same prior has sd ``prior_mean_sd * sd^2 / prior_sd^2``; as a share of ``sd``
        that is ``prior_mean_sd * sd / prior_sd^2`` (1 for a pack without evidence whose prior is all
        unknown mean, near 0 for one pinned down by its own measurements or in a well-measured cohort).
        """
        n = self.log_m_mean.shape[0]
        prior_sd = np.broadcast_to(self.prior_sd if self.prior_sd is not None else self.cohort.log_m_sd, (n,))
        mean_sd = np.broadcast_to(self.prior_mean_sd if self.prior_mean_sd is not None else cohort_mean_sd(self.cohort), (n,))
        return np.clip(mean_sd * self.log_m_sd / np.maximum(prior_sd, 1e-9) ** 2, 0.0, 1.0)


GRID = np.linspace(-3.0, 3.0, 301)  # log m

#: Pack-to-pack spread of log m within one cohort: BLAST-Lite's default spread of
#: ``degradation_scalar`` between cells of one type (sd 0.15). The default cohort prior (sd 0.3) is
#: wider because the cohort's own mean is unknown too; the rest of its variance is that unknown mean.
PACK_SPREAD_LOG_SD = 0.15


def cohort_mean_sd(prior: CohortPrior) -> float:
    """The sd of a cohort's mean log m that a prior of no measured pack carries: the part of its
    variance that is not the pack-to-pack spread (:data:`PACK_SPREAD_LOG_SD`)."""
    return float(np.sqrt(max(prior.log_m_sd**2 - PACK_SPREAD_LOG_SD**2, 0.0)))


def _evidence_stats(soh, loss, sd, mask, shared):
    """Per-pack sufficient statistics of the Gaussian evidence model ``soh = q0 + d*[BMS] - m * loss + noise``.

    The residual for q0 = 1, d = 0 is ``e + m L`` (e = soh - 1, L = loss), so every weighted sum
    the likelihood needs is a quadratic in m with these coefficients (over all rows, and the
    sums of ``e``, ``L`` and the weights over the BMS rows ``shared``): the grid posterior then
    costs O(packs x grid) instead of O(packs x grid x observations).
    """
    w = np.where(mask, 1.0 / sd**2, 0.0)
    e = np.where(mask, soh - 1.0, 0.0)
    L = np.where(mask, loss, 0.0)
    we, wL = w * e, w * L
    wb = np.where(shared, w, 0.0)
    return (np.sum(we * e, axis=1), np.sum(we * L, axis=1), np.sum(wL * L, axis=1), np.sum(we, axis=1), np.sum(wL, axis=1),
            np.sum(w, axis=1), np.sum(wb * e, axis=1), np.sum(wb * L, axis=1), np.sum(wb, axis=1))


def _grid_log_posterior(stats, prior: CohortPrior, sd_q0: float, bms_bias_sd: float):
    """Unnormalised log posterior of log m on :data:`GRID` per pack (npacks, grid), from :func:`_evidence_stats`.

    Up to terms that depend neither on m nor on the evidence's reference level, so the sum over the
    grid also compares reference levels (:func:`estimate_cohort_q0`).
    """
    s_ee, s_el, s_ll, s_e, s_l, s_w, sb_e, sb_l, sb_w = (x[:, None] for x in stats)
    m = np.exp(GRID)[None, :]  # 1, G
    a = s_ee + 2.0 * m * s_el + m * m * s_ll  # sum w r^2
    b1 = s_e + m * s_l  # sum w r, all rows
    b2 = sb_e + m * sb_l  # sum w r, BMS rows
    # the offsets (q0 of every row, the BMS's own bias d of its rows) integrated out: with their
    # 2x2 posterior precision [[c1, sb_w], [sb_w, c2]], the m-dependent part of the marginal log
    # likelihood is -(a - b' C^-1 b) / 2 (Gaussian marginalisation; one offset: Sherman-Morrison)
    c1 = 1.0 / sd_q0**2 + s_w
    c2 = 1.0 / bms_bias_sd**2 + sb_w
    quad = (c2 * b1 * b1 - 2.0 * sb_w * b1 * b2 + c1 * b2 * b2) / (c1 * c2 - sb_w * sb_w)
    loglik = -0.5 * (a - quad)
    sd = np.asarray(prior.log_m_sd, dtype=float)
    logprior = -0.5 * ((GRID[None, :] - prior.log_m_mean) / sd) ** 2 - np.log(sd)
    return loglik + logprior


def _grid_posterior(stats, prior: CohortPrior, sd_q0: float, bms_bias_sd: float):
    """Exact grid posterior of log m per pack from :func:`_evidence_stats`: its mean and sd."""
    lp = _grid_log_posterior(stats, prior, sd_q0, bms_bias_sd)
    lp -= lp.max(axis=1, keepdims=True)
    p = np.exp(lp)
    p /= p.sum(axis=1, keepdims=True)
    mean = p @ GRID
    sdv = np.sqrt(np.maximum(p @ GRID**2 - mean**2, 1e-8))
    return mean, sdv


def _shift_stats(stats, shift: float):
    """:func:`_evidence_stats` of the same evidence with the cohort's typical start at ``1 + shift``
    of rated instead of 1, without going back to the observations.

    Measured SOH is read against rated, so its ``e`` moves by ``-shift``. A BMS reads 100 % at its
    cohort's typical start (see the module docstring): its rows keep their ``e``; both kinds of
    row share the pack's own offset from that start.
    """
    s_ee, s_el, s_ll, s_e, s_l, s_w, sb_e, sb_l, sb_w = stats
    n_e, n_l, n_w = s_e - sb_e, s_l - sb_l, s_w - sb_w  # the measured rows' sums
    return (s_ee - 2.0 * shift * n_e + shift * shift * n_w, s_el - shift * n_l, s_ll, s_e - shift * n_w, s_l, s_w, sb_e, sb_l, sb_w)


def _offset_posterior(stats, sd_q0: float, bms_bias_sd: float):
    """The initial-capacity offset ``q0 - 1`` given m, per pack: ``(alpha, beta, sd)`` with
    E[offset | m] = alpha + beta * m and sd[offset | m] = sd.

    Given m the model is linear-Gaussian in the two offsets (the pack's own offset from its cohort's
    typical start, in every row; the BMS bias d of its rows; with the cohort's start shifted in by
    :func:`calibrate_packs`), so their conditional posterior is exact: precision
    ``C = [[1/sd_q0^2 + sum w, sum_bms w], [sum_bms w, 1/bms_bias_sd^2 + sum_bms w]]`` and mean
    ``C^-1 [sum w r, sum_bms w r]`` with ``r = soh - 1 + m L`` linear in m. A pack without
    evidence gets alpha = beta = 0 and sd = sd_q0 (the manufacturing spread).
    """
    _, _, _, s_e, s_l, s_w, sb_e, sb_l, sb_w = stats
    c1 = 1.0 / sd_q0**2 + s_w
    c2 = 1.0 / bms_bias_sd**2 + sb_w
    det = c1 * c2 - sb_w * sb_w
    return (c2 * s_e - sb_w * sb_e) / det, (c2 * s_l - sb_w * sb_l) / det, np.sqrt(c2 / det)


#: Pack-to-pack spread of a BMS's SOH bias. A BMS's SOH comes from its own coulomb counting and
#: model, so its error is largely the same in every reading of one pack (it does not average out
#: over months of readings); only the per-reading part does.
BMS_BIAS_SD = 0.015

#: Spread of the initial capacity of new packs, as a fraction of rated. Measured on the public cell
#: data: first capacities vary by 1.2 % (sd/mean) over 38 A123 LFP cells of the HUST set and by
#: 0.5 % over the 8 Oxford cells; a pack's capacity is that of its weakest series string, which
#: varies less than single cells do, so 1 % is a generous value.
SD_Q0 = 0.01


#: Hyper-prior sd of a cohort's mean initial capacity, as a fraction of rated. Cells and packs are
#: rated at a guaranteed minimum and deliver a little more when new (datasheets quote a "typical"
#: capacity 2-5 % above the rated one); 3 % lets that show and keeps a handful of tests from moving
#: the cohort far.
Q0_MEAN_SD = 0.03
#: a pack pins its own starting capacity when its measured (non-BMS) tests include one taken at no
#: more than this share of the nominal loss of its latest one: a commissioning test and one after years
#: of aging (under the calendar law's t^0.44 a test at one month has a fifth of the loss of a
#: test at three years). Tests all taken late lie on the ridge where a higher start and faster
#: aging explain them equally well, and would move the estimate along it.
Q0_PIN_LOSS_SHARE = 0.5
#: packs that pin their own starting capacity needed before the cohort's is estimated
Q0_MIN_PACKS = 3
#: the estimate stays within 1 +- this: a cohort measured beyond it more likely has a wrong rated capacity
Q0_MEAN_LIMIT = 5 * Q0_MEAN_SD
#: at most this many of them enter the estimate (evenly spaced through the fleet): one number for
#: the cohort, whose sd is already below 0.1 pp at a few hundred packs
Q0_MAX_PACKS = 20_000


def estimate_cohort_q0(stats, pins, sd_q0: float = SD_Q0, bms_bias_sd: float | None = None, hyper: CohortPrior | None = None):
    """The cohort's mean initial capacity ``mu_q0`` (fraction of rated): maximum marginal likelihood
    over the packs in ``pins`` (empirical Bayes, Morris 1983; each pack's m integrated out on the grid
    under the rate prior ``hyper``, its own offset in closed form), with a N(1, :data:`Q0_MEAN_SD`^2)
    hyper-prior. ``stats`` are of measured capacities only: a BMS's level is not the cohort's start.

    Returns ``(mu_q0, n)`` with ``n`` the packs that pin theirs; ``(1.0, 0)`` when fewer than
    :data:`Q0_MIN_PACKS` do.
    """
    bms_bias_sd = BMS_BIAS_SD if bms_bias_sd is None else bms_bias_sd
    idx = np.flatnonzero(np.asarray(pins, dtype=bool))
    n = int(idx.size)
    if n < Q0_MIN_PACKS:
        return 1.0, 0
    if n > Q0_MAX_PACKS:
        idx = idx[np.linspace(0, n - 1, Q0_MAX_PACKS).astype(np.int64)]
    sub = tuple(np.asarray(x)[idx] for x in stats)
    hyper = hyper or CohortPrior()

    def neg_log_marginal(shift):
        lp = _grid_log_posterior(_shift_stats(sub, shift), hyper, sd_q0, bms_bias_sd)
        return -(float(np.sum(special.logsumexp(lp, axis=1))) - 0.5 * (shift / Q0_MEAN_SD) ** 2)

    res = optimize.minimize_scalar(neg_log_marginal, bounds=(-Q0_MEAN_LIMIT, Q0_MEAN_LIMIT), method="bounded",
                                   options={"xatol": 1e-5})
    return 1.0 + float(res.x), n


def _evidence_arrays(soh, nominal_loss, soh_sd, mask=None):
    """Evidence arrays as :func:`calibrate_packs` takes them, checked, with missing rows neutral:
    ``(soh, loss, sd, mask)``, mask True where an observation exists."""
    soh = np.atleast_2d(np.asarray(soh, dtype=float))
    loss = np.broadcast_to(np.atleast_2d(np.asarray(nominal_loss, dtype=float)), soh.shape)
    sd = np.broadcast_to(np.atleast_2d(np.asarray(soh_sd, dtype=float)), soh.shape)
    msk = np.isfinite(soh) & np.isfinite(loss) & np.isfinite(sd)
    if mask is not None:
        msk &= np.asarray(mask, dtype=bool)
    if np.any(sd[msk] <= 0):
        raise ForecastInputError("soh_sd must be positive for every observation (an estimate without uncertainty cannot be weighed)")
    if np.any(loss[msk] < 0):
        raise ForecastInputError("nominal_loss must be non-negative")
    return np.where(msk, soh, 1.0), np.where(msk, loss, 0.0), np.where(msk, sd, 1.0), msk


def _cohort_start(soh, loss, sd, msk, shared, sd_q0: float, bms_bias_sd: float, hyper: CohortPrior):
    """``(mu_q0, packs that pin it, their measured rows' evidence stats or None)`` (:func:`estimate_cohort_q0`).

    The cohort's start rests on the pinning packs' measured capacities only: a BMS's level is its own (its bias).
    """
    pins = _pins_q0(soh, loss, msk, shared)
    if pins.sum() < Q0_MIN_PACKS:
        return 1.0, 0, None
    own = (msk & ~shared)[pins]
    stats = _evidence_stats(soh[pins], loss[pins], sd[pins], own, np.zeros_like(own))
    mu, n = estimate_cohort_q0(stats, np.ones(own.shape[0], dtype=bool), sd_q0, bms_bias_sd, hyper)
    return mu, n, stats


def cohort_initial_capacity(soh, nominal_loss, soh_sd, mask=None, cohort: CohortPrior | None = None,
                            sd_q0: float = SD_Q0) -> tuple[float, int]:
    """The cohort's mean initial capacity from measured capacities alone (arrays as for
    :func:`calibrate_packs`, without BMS rows): ``(fraction of rated, packs that pin theirs)``.

    Needed before the BMS rows are built, whose reported fade is compared with the measured fade
    from the pack's start (:func:`battloop.health.assess` rescales a BMS to it).
    """
    soh, loss, sd, msk = _evidence_arrays(soh, nominal_loss, soh_sd, mask)
    mu, n, _ = _cohort_start(soh, loss, sd, msk, np.zeros_like(msk), sd_q0, BMS_BIAS_SD, cohort or CohortPrior())
    return mu, n


def _pins_q0(soh, loss, mask, shared) -> np.ndarray:
    """Packs whose own measured tests pin their starting capacity (see :data:`Q0_PIN_LOSS_SHARE`)."""
    own = mask & ~shared
    if not own.any():
        return np.zeros(soh.shape[0], dtype=bool)
    latest = np.max(np.where(own, loss, -np.inf), axis=1)
    earliest = np.min(np.where(own, loss, np.inf), axis=1)
    return (own.sum(axis=1) >= 2) & (earliest <= Q0_PIN_LOSS_SHARE * latest)


def calibrate_packs(soh, nominal_loss, soh_sd, mask=None, cohort: CohortPrior | None = None,
                    estimate_cohort: bool = True, sd_q0: float = SD_Q0, iterations: int = 5, bms=None,
                    bms_bias_sd: float = BMS_BIAS_SD, groups=None, estimate_q0: bool = True) -> PackPosterior:
    """Per-pack posterior of the rate multiplier with an empirical-Bayes cohort prior.

    Parameters
    ----------
    soh, nominal_loss, soh_sd : arrays (npacks, nobs): SOH evidence (fraction of
        initial capacity), the model's nominal loss at the same times for each
        pack's own history (m = 1), and the evidence standard deviation.
    mask : bool (npacks, nobs), True where an observation exists (NaN soh also counts as missing).
    cohort : hyper-prior; its mean and sd are re-estimated from the packs when
        ``estimate_cohort`` (shrunk towards the hyper-prior when packs are few).
    sd_q0 : spread of initial capacity between new packs (manufacturing tolerance, :data:`SD_Q0`).
    estimate_q0 : estimate the cohort's mean initial capacity from the packs that pin their own
        (:func:`estimate_cohort_q0`); else it is 1.0 (rated).
    bms : bool (npacks, nobs), True for BMS readings: they share one pack-specific bias with sd
        ``bms_bias_sd`` (a random effect, integrated out), so many readings of one BMS pin the
        pack's fade trend but not its level; a measured capacity pins both. A BMS row is SOH as the BMS
        reports it, 1.0 at its cohort's typical start; a measured row is against rated (see :func:`_shift_stats`).
    groups : one label per pack (e.g. the site's climate zone): sub-cohorts nested in the cohort,
        each with its own empirical-Bayes prior (:func:`_sub_cohort_priors`), so a pack without
        evidence in a zone whose packs age faster than the law says inherits that zone's rate.
    """
    soh, loss, sd, msk = _evidence_arrays(soh, nominal_loss, soh_sd, mask)
    hyper = cohort or CohortPrior()
    prior = CohortPrior(hyper.log_m_mean, hyper.log_m_sd)
    n_ev = msk.sum(axis=1)
    shared = msk & (np.broadcast_to(np.asarray(bms, dtype=bool), soh.shape) if bms is not None else False)
    if not (bms_bias_sd > 0 and sd_q0 > 0):  # also refuses NaN
        raise ForecastInputError(f"bms_bias_sd ({bms_bias_sd}) and sd_q0 ({sd_q0}) must be positive")
    stats = _evidence_stats(soh, loss, sd, msk, shared)
    q0_mean, q0_packs, measured_stats = 1.0, 0, None
    if estimate_q0:
        q0_mean, q0_packs, measured_stats = _cohort_start(soh, loss, sd, msk, shared, sd_q0, bms_bias_sd, hyper)
    evidence_stats = stats
    # every pack's evidence is read against the cohort's start, so its rate counts the loss from there
    stats = _shift_stats(evidence_stats, q0_mean - 1.0)
    mean, sdv = _grid_posterior(stats, prior, sd_q0, bms_bias_sd)
    informative = n_ev > 0
    mean_sd = cohort_mean_sd(hyper)  # what is unknown of the cohort's mean
    if estimate_cohort and informative.sum() >= 2:
        for _ in range(iterations):
            mu_i, sd_i = mean[informative], sdv[informative]
            n = mu_i.size
            # moment matching: between-pack variance = var(post means) + mean(post var)
            mu = float(np.mean(mu_i))
            tau2 = float(np.var(mu_i) + np.mean(sd_i**2))
            # shrink the cohort towards the hyper-prior with weight 2 pseudo-packs
            k = 2.0
            mu = (n * mu + k * hyper.log_m_mean) / (n + k)
            tau = float(np.sqrt((n * tau2 + k * hyper.log_m_sd**2) / (n + k)))
            prior = CohortPrior(mu, max(tau, 0.03))
            if q0_packs:
                # the start again, now with the cohort's own rate prior for the pinning packs' m
                q0_mean, q0_packs = estimate_cohort_q0(measured_stats, np.ones(q0_packs, dtype=bool), sd_q0, bms_bias_sd, prior)
                stats = _shift_stats(evidence_stats, q0_mean - 1.0)
            mean, sdv = _grid_posterior(stats, prior, sd_q0, bms_bias_sd)
            # the mean of n packs that spread by tau2, shrunk with k pseudo-packs at the hyper-prior's mean
            mean_sd = float(np.sqrt(n * tau2 + (k * cohort_mean_sd(hyper)) ** 2) / (n + k))
    npk = soh.shape[0]
    prior_mean, prior_sd = np.full(npk, prior.log_m_mean), np.full(npk, prior.log_m_sd)
    prior_mean_sd, prior_group = np.full(npk, mean_sd), np.zeros(npk, dtype=np.int64)
    if groups is not None:
        gi = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)
        if gi.size != npk:
            raise ForecastInputError(f"groups has {gi.size} labels for {npk} packs")
        if gi.max() > 0 and informative.sum() >= 2:
            # each pack's own estimate, hardly shrunk (prior sd 3 in log m), for the sub-cohort means
            own_mean, own_sd = _grid_posterior(stats, CohortPrior(prior.log_m_mean, 3.0), sd_q0, bms_bias_sd)
            g_mean, g_sd, g_unknown = _sub_cohort_priors(own_mean[informative], own_sd[informative], gi[informative],
                                                         int(gi.max()) + 1, prior)
            prior_mean, prior_sd = g_mean[gi], g_sd[gi]
            # a zone's mean: the cohort's unknown mean plus what the zone's packs leave unknown of its effect
            prior_mean_sd, prior_group = np.sqrt(mean_sd**2 + g_unknown[gi]), gi
            mean, sdv = _grid_posterior(stats, CohortPrior(prior_mean[:, None], prior_sd[:, None]), sd_q0, bms_bias_sd)
    alpha, beta, offset_sd = _offset_posterior(stats, sd_q0, bms_bias_sd)
    return PackPosterior(mean, sdv, n_ev, prior, prior_mean, prior_sd, alpha + (q0_mean - 1.0), beta, offset_sd, prior_mean_sd,
                         prior_group, q0_mean, q0_packs)


def _sub_cohort_priors(own_mean, own_sd, gi, n_groups: int, cohort: CohortPrior):
    """Empirical-Bayes priors of sub-cohorts (e.g. climate zones) nested in a cohort.

    log m of a pack = cohort mean + zone effect (sd omega) + pack effect (sd tau_w), with
    ``tau_w^2 + omega^2`` the cohort's variance. omega^2 is the between-zone variance from
    Cochran's Q of the zone means (method of moments, DerSimonian & Laird 1986); each
    zone's mean is shrunk to the cohort's by ``B = v / (v + omega^2)`` (Efron & Morris 1975), so a
    zone of few packs or no real difference keeps the cohort prior exactly. A zone's prior sd is
    ``sqrt(tau_w^2 + B omega^2)``: the pack spread plus what is still unknown of the zone
    (``B omega^2``, returned third: the packs of a zone share it). Zones without informative packs
    get the cohort prior.
    """
    tau2 = cohort.log_m_sd**2
    omega2 = 0.0
    for _ in range(10):
        tw2 = max(tau2 - omega2, 0.03**2)
        w = 1.0 / (tw2 + own_sd**2)
        sw = np.bincount(gi, weights=w, minlength=n_groups)
        has = sw > 0
        ybar = np.where(has, np.bincount(gi, weights=w * own_mean, minlength=n_groups) / np.where(has, sw, 1.0), cohort.log_m_mean)
        v = np.where(has, 1.0 / np.where(has, sw, 1.0), np.inf)
        if has.sum() < 2:
            omega2 = 0.0
            break
        # DerSimonian-Laird: Cochran's Q of the zone means against their precision-weighted mean;
        # a small zone's noisy mean weighs as little as its precision says
        wz = sw[has]
        y_all = float(np.sum(wz * ybar[has]) / np.sum(wz))
        q = float(np.sum(wz * (ybar[has] - y_all) ** 2))
        new = max(0.0, (q - (has.sum() - 1)) / float(np.sum(wz) - np.sum(wz**2) / np.sum(wz)))
        new = min(new, 0.9 * tau2)  # zones cannot explain more than the cohort's own spread
        if abs(new - omega2) < 1e-8:
            omega2 = new
            break
        omega2 = new
    tw2 = max(tau2 - omega2, 0.03**2)
    b = np.ones(n_groups)
    if omega2 > 0:
        fin = np.isfinite(v)
        b[fin] = v[fin] / (v[fin] + omega2)
    g_mean = b * cohort.log_m_mean + (1.0 - b) * ybar
    g_sd = np.sqrt(tw2 + b * omega2)
    return g_mean, g_sd, b * omega2


# ---------------------------------------------------------------- climate and usage


def seasonal_temperature_c(mean_c, amplitude_c, n_months: int, start_month: int = 1, warmest_month: int = 7, offset_c=0.0):
    """Monthly mean temperatures from a site's climate normal (annual mean and half-range).

    ``T(month) = mean + amplitude * cos(2 pi (month - warmest) / 12) + offset``;
    inputs broadcast over packs (shape (npacks,) -> (npacks, n_months)).
    ``offset_c`` is the scenario knob (cabinet heating +, cooling retrofit -5).
    """
    mean_c = np.asarray(mean_c, dtype=float)
    amp = np.asarray(amplitude_c, dtype=float)
    months = (start_month - 1 + np.arange(n_months)) % 12 + 1
    cyc = np.cos(2 * np.pi * (months - warmest_month) / 12.0)
    return mean_c[..., None] + amp[..., None] * cyc + np.asarray(offset_c, dtype=float)[..., None] if mean_c.ndim else mean_c + amp * cyc + offset_c


@dataclass
class Scenario:
    """Scenario knobs applied on top of the site's climate and recent usage."""

    temp_offset_c: float = 0.0
    outage_multiplier: float = 1.0
    soc_float: float | None = None  # override the float SOC (e.g. 0.9 float-voltage derating)


@dataclass
class PackForecast:
    """Forecast for npacks at n future months."""

    months: np.ndarray  # months ahead, 1..n
    soh: np.ndarray  # (3, npacks, n): P10, P50, P90
    resistance: np.ndarray  # (3, npacks, n): P10, P50, P90 relative resistance
    #: threshold -> (3, npacks): P10 (early), P50, P90 (late) months ahead; 0 = below already (with
    #: loss_now); inf = not within horizon
    crossing_months: dict
    loss_nominal: np.ndarray | None = None  # (npacks, n): cumulative capacity loss at rate multiplier 1


def forecast_packs(chemistry, posterior: PackPosterior, monthly_temp_c, soc_float=1.0, outages_per_year=0.0, outage_dod=0.5,
                   state: AgingState | None = None, scenario: Scenario | None = None, thresholds=TRIAGE_THRESHOLDS,
                   pack_factor: float = 1.0, dtype=np.float64, loss_now=None) -> PackForecast:
    """SOH/resistance quantiles per month ahead and threshold-crossing months.

    ``monthly_temp_c`` is (npacks, n_months) (e.g. from :func:`seasonal_temperature_c`);
    ``state`` is the aging state of each pack's history (``simulate_aging(...).final_state``);
    without it the packs are taken as new. ``loss_now`` (each pack's nominal loss today, as
    evidence is read against) lets a quantile that is below a threshold already say so:
    crossing month 0, where otherwise it would read as crossing in the first month ahead. NaN
    temperatures are refused by the model: fill them first with
    :func:`battloop.health.models.fill_temperature_gaps`.
    """
    sc = scenario or Scenario()
    temp = np.asarray(monthly_temp_c, dtype=dtype) + sc.temp_offset_c
    if temp.ndim != 2:
        raise ForecastInputError(f"monthly_temp_c must be (npacks, n_months), got shape {temp.shape}")
    npacks, n = temp.shape
    if posterior.log_m_mean.shape[0] != npacks:
        raise ForecastInputError(f"posterior has {posterior.log_m_mean.shape[0]} packs but the climate has {npacks}")
    efc = np.asarray(outages_per_year, dtype=dtype) * np.asarray(outage_dod, dtype=dtype) / 12.0
    efc = np.broadcast_to(efc[..., None] if np.ndim(efc) else efc, temp.shape)
    dod = outage_dod if np.ndim(outage_dod) == 0 else np.asarray(outage_dod)[:, None]
    nominal, loss = _nominal_run(chemistry, temp, sc, soc_float, efc, dod, pack_factor, state)
    rgrow = nominal.r - 1.0
    soh = posterior.soh_quantiles(loss, dtype)
    res = 1.0 + posterior.multiplier_quantiles(QUANTILE_Z).astype(dtype)[:, :, None] * rgrow[None]
    soh_now = None if loss_now is None else posterior.soh_quantiles(np.asarray(loss_now, dtype=dtype).reshape(npacks, 1), dtype)[:, :, 0]
    crossings = {}
    for thr in thresholds:
        # every quantile path is non-increasing in time (loss is non-decreasing), so the crossing
        # index is a count; the P10 path crosses first
        idx = np.sum(soh > thr, axis=-1)
        months = np.where(idx >= n, np.inf, idx + 1.0)
        crossings[thr] = months if soh_now is None else np.where(soh_now <= thr, 0.0, months)
    return PackForecast(np.arange(1, n + 1), soh, res, crossings, loss)


def crossing_month_samples(chemistry, posterior: PackPosterior, monthly_temp_c, threshold=0.8, n_samples: int = 21, *,
                           soc_float=1.0, efc_per_month=0.0, outage_dod=0.5, pack_factor: float = 1.0,
                           state: AgingState | None = None, scenario: Scenario | None = None, seed: int = 0):
    """Samples of the month of crossing ``threshold`` per pack, shape (npacks, n_samples): the
    aging law run through ``monthly_temp_c`` (npacks, n_months) and the usage given, then
    :func:`crossing_samples_from_loss`. ``scenario`` adds its temperature offset, scales
    ``efc_per_month`` by its outage multiplier and may override the float SOC. ``inf`` = beyond horizon.
    """
    sc = scenario or Scenario()
    temp = np.asarray(monthly_temp_c, dtype=float) + sc.temp_offset_c
    _, loss = _nominal_run(chemistry, temp, sc, soc_float, np.asarray(efc_per_month, dtype=float), outage_dod, pack_factor, state)
    return crossing_samples_from_loss(loss, posterior, threshold, n_samples, seed=seed)


def _nominal_run(chemistry, temp, sc: Scenario, soc_float, efc, dod, pack_factor, state):
    """The aging law at m = 1 through ``temp`` (scenario offset already in it) with the scenario's
    float SOC and outage multiplier applied: the run and its capacity loss, unclipped so quantiles
    of m stay exact transforms."""
    soc = sc.soc_float if sc.soc_float is not None else soc_float
    nominal = simulate_aging(chemistry, temp, soc, efc * sc.outage_multiplier, dod, DAYS_PER_MONTH, 1.0, pack_factor, state=state)
    return nominal, (nominal.loss_calendar + nominal.loss_cycle) * pack_factor


def crossing_samples_from_loss(loss_nominal, posterior: PackPosterior, threshold=0.8, n_samples: int = 21, loss_now=None,
                               seed: int = 0):
    """Samples of each pack's crossing month from a nominal loss path already simulated
    (e.g. :attr:`PackForecast.loss_nominal`), shape (npacks, n_samples). Loss is non-decreasing,
    so the month is a count: 1 = the first month ahead; with ``loss_now`` (each pack's nominal
    loss today) 0 = below ``threshold`` already. ``inf`` = beyond the horizon.

    Sample j of all packs together is one joint scenario of the fleet (retirements per quarter
    are counted per sample, :func:`battloop.health.outlook.retirements_per_quarter`), so the
    packs' draws must be as dependent as the packs are. A pack's uncertainty in log m is mostly
    its own -- how it differs from the others of its cohort -- and those parts are drawn
    independently: each pack takes the strata of its posterior in its own random order
    (Latin-hypercube columns, McKay et al. 1979), and so does its initial-capacity offset.
    What packs of one prior do not know of that prior's mean they get wrong together: that share
    (:meth:`PackPosterior.shared_share`) comes from one draw per prior group and sample. Each
    pack's margin is unchanged; the fleet's count per quarter then spreads as much as the
    unknown cohort mean makes it, not as if all packs were fast or slow together. ``seed``
    makes the draws reproducible (give each cohort its own).
    """
    loss = np.asarray(loss_nominal, dtype=float)
    npk = loss.shape[0]
    if loss_now is not None:
        loss = np.concatenate([np.asarray(loss_now, dtype=float).reshape(npk, 1), loss], axis=1)
    rng = np.random.default_rng(seed)
    z = special.ndtri((np.arange(n_samples) + 0.5) / n_samples)
    group = np.zeros(npk, dtype=np.int64) if posterior.prior_group is None else np.asarray(posterior.prior_group, dtype=np.int64)
    n_groups = int(group.max()) + 1 if npk else 1
    z_shared = z[rng.random((n_groups, n_samples)).argsort(axis=1)][group]
    rho = posterior.shared_share()[:, None]
    z_m = rho * z_shared + np.sqrt(1.0 - rho**2) * z[rng.random((npk, n_samples)).argsort(axis=1)]
    m = np.exp(posterior.log_m_mean[:, None] + z_m * posterior.log_m_sd[:, None])
    z_offset = z[rng.random((npk, n_samples)).argsort(axis=1)]
    alpha, beta, sd = posterior._offset()
    offset = alpha[:, None] + sd[:, None] * z_offset
    # SOH = 1 + offset + m (beta - L) > threshold  <=>  L < (1 + offset - threshold) / m + beta
    need = (1.0 + offset - threshold) / m + beta[:, None]
    idx = np.empty(need.shape, dtype=np.int64)
    for a in range(0, npk, 20_000):  # chunks bound the (packs x samples x months) comparison
        idx[a:a + 20_000] = np.sum(loss[a:a + 20_000, None, :] < need[a:a + 20_000, :, None], axis=-1)
    first = 0.0 if loss_now is not None else 1.0
    return np.where(idx >= loss.shape[1], np.inf, idx + first)


def _count_below(loss, need):
    """Per row of the non-decreasing ``loss`` (n, T): how many entries are < need (n, k). Binary search."""
    n, T = loss.shape
    lo = np.zeros(need.shape, dtype=np.int64)
    hi = np.full(need.shape, T, dtype=np.int64)
    rows = np.arange(n)[:, None]
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        val = loss[rows, np.minimum(mid, T - 1)]
        go_right = (val < need) & (lo < hi)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(go_right | (lo >= hi), hi, mid)
    return lo


def forecast_fleet_periodic(chemistry, log_m_mean, log_m_sd, climate_monthly_c, n_months: int, soc_float=1.0,
                            efc_per_month=0.0, dod=0.5, state: AgingState | None = None, scenario: Scenario | None = None,
                            thresholds=TRIAGE_THRESHOLDS, pack_factor: float = 1.0, soh_out=None, resistance_every: int = 12):
    """Fleet-scale forecast for a periodic (climate-normal) year: the fast path of :func:`forecast_packs`.

    Same model and same quantile construction as :func:`forecast_packs` for packs whose initial
    capacity is their cohort's at rated (no offset: a fleet without measured capacities), but the
    monthly climate repeats every year (``climate_monthly_c`` is (npacks, 12),
    usage is constant per pack), so the stress rates are evaluated for 12
    months only and the stress-time of month ``j`` is
    ``S0 + (j // 12) * S_year + S_cum[j % 12]`` -- exact for the virtual-time
    integration, 15x fewer exponentials for 15 years. Arrays are float32.

    ``soh_out`` (optional uint16 array (3, npacks, n_months)) receives SOH
    P10/P50/P90 in units of 0.01 percentage point, so the caller can keep a
    whole fleet in a few GB. Returns (soh_quantiles or None, resistance
    quantiles every ``resistance_every`` months (3, npacks, k), crossing months
    dict as in :class:`PackForecast`).
    """
    from .models import calendar_rate, cycle_rate, get_parameters, resistance_rate

    sc = scenario or Scenario()
    p = get_parameters(chemistry)
    clim = np.asarray(climate_monthly_c, dtype=np.float64) + sc.temp_offset_c
    if clim.ndim != 2 or clim.shape[1] != 12:
        raise ForecastInputError(f"climate_monthly_c must be (npacks, 12) monthly normals, got shape {clim.shape}")
    if np.isnan(clim).any():
        raise ForecastInputError("climate_monthly_c has NaN: fill the site's climate normals first")
    npacks = clim.shape[0]
    soc = np.broadcast_to(np.asarray(sc.soc_float if sc.soc_float is not None else soc_float, dtype=np.float64), (npacks,))[:, None]
    efc = np.broadcast_to(np.asarray(efc_per_month, dtype=np.float64) * sc.outage_multiplier, (npacks,))[:, None]
    dodv = np.broadcast_to(np.asarray(dod, dtype=np.float64), (npacks,))[:, None]
    st = state or AgingState()
    dt = DAYS_PER_MONTH
    inc_cal = (calendar_rate(p, clim, soc) ** (1.0 / p.p_cal) * dt)
    inc_cyc = (cycle_rate(p, clim, dodv) ** (1.0 / p.p_cyc) * efc)
    inc_res = (resistance_rate(p, clim, soc) ** (1.0 / p.p_res) * dt)
    j = np.arange(n_months)
    yr, mo = (j // 12).astype(np.float32), j % 12

    def stress(inc, s0):
        cum = np.cumsum(inc, axis=1).astype(np.float32)
        s = cum[:, mo]
        s += yr[None, :] * cum[:, -1:]
        s += np.broadcast_to(np.asarray(s0, dtype=np.float32), (npacks,))[:, None]
        return s

    loss = stress(inc_cal, st.s_cal)
    np.power(loss, np.float32(p.p_cal), out=loss)
    cyc = stress(inc_cyc, st.s_cyc)
    np.power(cyc, np.float32(p.p_cyc), out=cyc)
    loss += cyc
    del cyc
    if pack_factor != 1.0:
        loss *= np.float32(pack_factor)
    lm = np.asarray(log_m_mean, dtype=np.float64)
    ls = np.asarray(log_m_sd, dtype=np.float64)
    m_desc = np.exp(lm[None, :] + QUANTILE_Z[::-1, None] * ls[None, :])  # high m first -> SOH P10 first
    soh = None
    if soh_out is not None:
        tmp = np.empty_like(loss)
        for q in range(3):
            np.multiply(loss, m_desc[q, :, None].astype(np.float32), out=tmp)
            np.subtract(np.float32(1.0), tmp, out=tmp)
            np.clip(tmp, 0.0, 6.5, out=tmp)
            tmp *= np.float32(10000.0)
            np.rint(tmp, out=tmp)
            soh_out[q] = tmp
    else:
        soh = np.clip(1.0 - m_desc[:, :, None].astype(np.float32) * loss[None], 0.0, None)
    # resistance at every `resistance_every`-th month
    jr = np.arange(resistance_every - 1, n_months, resistance_every)
    cum_r = np.cumsum(inc_res, axis=1)
    s_r = np.asarray(st.s_res, dtype=np.float64)
    s_r = (s_r[:, None] if s_r.ndim else s_r) + (jr // 12)[None, :] * cum_r[:, -1:] + cum_r[:, jr % 12]
    efc0 = np.asarray(st.efc, dtype=np.float64)
    efc_cum = (efc0[:, None] if efc0.ndim else efc0) + efc * (jr + 1)[None, :]
    rgrow = (s_r ** p.p_res + p.k_res_cyc * efc_cum) * pack_factor
    res = 1.0 + np.exp(lm[None, :] + QUANTILE_Z[:, None] * ls[None, :])[:, :, None] * rgrow[None]
    crossings = {}
    for thr in thresholds:
        need = ((1.0 - thr) / m_desc).T.astype(np.float32)  # (npacks, 3)
        idx = _count_below(loss, need).T
        crossings[thr] = np.where(idx >= n_months, np.inf, idx + 1.0)
    return soh, res, crossings
