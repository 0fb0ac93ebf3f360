"""BARO's anomaly-time detector: multivariate Bayesian online change-point detection (BOCPD).

Why a reimplementation: BARO (Pham et al., FSE 2024) finds the anomaly time with Adams & MacKay's
BOCPD over the min-max scaled SLI series (latency and error metrics), a constant hazard of 1/50
and a multivariate Student-t predictive (Normal-Wishart prior, ``dof = dims + 1``, ``kappa = 1``,
mean 0, identity scale), and takes the first step at which the probability that the run started
``NW = 10`` steps earlier exceeds 0.01. Neither RCAEval nor BARO's package imports on Python 3.11
without torch-era pins, so the same model is written here in log space (their code multiplies raw
densities, which underflows with a few dozen series) and vectorised over run lengths.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

HAZARD_STEPS = 50.0  # expected run length between change points (BARO: constant_hazard(50))
NW = 10  # BARO reads the run length 10 steps after a candidate change
THRESHOLD = 0.01
MIN_HEAD = 5  # when nothing crosses the threshold BARO takes the arg-max after the first 5 steps


def _student_t_logpdf(
    x: np.ndarray, mu: np.ndarray, shape: np.ndarray, dof: np.ndarray
) -> np.ndarray:
    """log density of ``x`` [d] under each run length's multivariate t (``mu`` [r, d], ...)."""
    d = x.shape[0]
    diff = x[None, :] - mu
    sol = np.linalg.solve(shape, diff[:, :, None])[:, :, 0]
    maha = np.einsum("rd,rd->r", diff, sol)
    _, logdet = np.linalg.slogdet(shape)
    return (
        gammaln((dof + d) / 2.0)
        - gammaln(dof / 2.0)
        - 0.5 * d * np.log(dof * np.pi)
        - 0.5 * logdet
        - 0.5 * (dof + d) * np.log1p(maha / dof)
    )


def run_length_posterior(data: np.ndarray) -> np.ndarray:
    """``R[r, t]``: probability that at step ``t`` the current run is ``r`` steps long.

    ``data`` is [T, d], already scaled. The Normal-Wishart parameters of every run length are
    updated in place of BARO's per-step concatenations; ``scale`` is the Wishart precision
    scale as in their code, so the predictive shape is ``inv(scale * kappa * dof' / (kappa+1))``.
    """
    T, d = data.shape
    log_h = np.log(1.0 / HAZARD_STEPS)
    log_1mh = np.log(1.0 - 1.0 / HAZARD_STEPS)
    logR = np.full((T + 1, T + 1), -np.inf)
    logR[0, 0] = 0.0
    dof0, kappa0 = float(d + 1), 1.0
    dof, kappa = np.array([dof0]), np.array([kappa0])
    mu, scale = np.zeros((1, d)), np.eye(d)[None, :, :]
    for t, x in enumerate(data):
        t_dof = dof - d + 1
        factor = (kappa * t_dof / (kappa + 1.0))[:, None, None]
        shape = np.linalg.inv(factor * scale)
        pred = _student_t_logpdf(x, mu, shape, t_dof)
        prev = logR[: t + 1, t]
        grow = prev + pred + log_1mh
        cp = np.logaddexp.reduce(prev + pred + log_h)
        logR[1 : t + 2, t + 1] = grow
        logR[0, t + 1] = cp
        logR[:, t + 1] -= np.logaddexp.reduce(logR[: t + 2, t + 1])
        centered = x[None, :] - mu
        outer = centered[:, :, None] * centered[:, None, :]
        new_scale = np.linalg.inv(
            np.linalg.inv(scale) + (kappa / (kappa + 1.0))[:, None, None] * outer
        )
        scale = np.concatenate([np.eye(d)[None], new_scale])
        mu = np.concatenate([np.zeros((1, d)), (kappa[:, None] * mu + x) / (kappa + 1.0)[:, None]])
        dof = np.concatenate([[dof0], dof + 1.0])
        kappa = np.concatenate([[kappa0], kappa + 1.0])
    return np.exp(logR)


def min_max_scaled(wide: np.ndarray) -> np.ndarray:
    """BARO's preprocessing: each column to [0, 1], gaps forward-filled, the rest 0."""
    lo, hi = np.nanmin(wide, axis=0), np.nanmax(wide, axis=0)
    span = np.where(hi > lo, hi - lo, np.nan)
    out = (wide - lo) / span
    for j in range(out.shape[1]):  # forward fill down each column
        col = out[:, j]
        idx = np.where(np.isfinite(col), np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        out[:, j] = col[idx]
    return np.nan_to_num(out, nan=0.0)


def change_step(wide: np.ndarray) -> int | None:
    """The first anomalous row of ``wide`` [T, d] as BARO finds it, or ``None`` if too short."""
    T = wide.shape[0]
    if T <= NW + MIN_HEAD + 1 or wide.shape[1] == 0:
        return None
    R = run_length_posterior(min_max_scaled(wide.astype(float)))
    signal = R[NW, NW:-1]
    hits = [i for i in range(1, len(signal)) if signal[i] > THRESHOLD]
    if hits:
        return hits[0]
    return int(np.argmax(signal[MIN_HEAD:])) + MIN_HEAD
