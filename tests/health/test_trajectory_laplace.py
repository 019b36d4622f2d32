"""The Laplace covariance of the cohort-prior power fit."""

import numpy as np

from battloop.health.trajectory import fit_form


def test_prior_keeps_its_weight_when_residuals_exceed_the_noise():
    # a curve the power law cannot follow exactly: residuals well above sigma
    t = np.linspace(0, 200, 12)
    y = 1 - 0.01 * (t / 200) ** 0.5 + 2e-3 * np.sin(t / 15)
    prior_sd = 0.1
    c = fit_form("power", t, y, 200.0, 2e-4, 0.5, prior_sd)
    # the posterior sd of log b cannot exceed its prior sd
    assert np.sqrt(c.cov[2, 2]) <= prior_sd * 1.0001
