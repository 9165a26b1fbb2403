"""Bootstrap over facts, the one resampling helper every statistic uses: a mean and its confidence interval at
any level (BCa by default, percentile on request), and the multinomial resampling behind the comparison's grid
statistics. Deterministic: fixed seeds, numpy default_rng.

BCa (bias-corrected and accelerated) because per-fact effects are skewed (most facts near 0, a few large) and
bounded; it corrects the percentile interval for bias and skewness at the cost of one jackknife. Where BCa is
undefined (all facts equal: the interval is that value; fewer than two facts: NaN) the method says so.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95  # the level of every interval unless a caller asks for another (verify's Bonferroni band)
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CI_METHOD = "BCa"


def bootstrap_mean_ci(
    data: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    method: str = CI_METHOD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Mean over facts and its bootstrap CI, per column. `data` is [fact] or [fact, column]; NaN facts of a column
    are left out of that column. Returns (n [col], mean [col], low [col], high [col], ci_method per column)."""
    from scipy import stats  # lazy: scipy

    data = np.asarray(data, dtype=np.float64)
    squeeze = data.ndim == 1
    if squeeze:
        data = data[:, None]
    cols = data.shape[1]
    n = np.isfinite(data).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(data, axis=0) if data.shape[0] else np.full(cols, np.nan)
    low, high = np.full(cols, np.nan), np.full(cols, np.nan)
    methods = ["none (n < 2)"] * cols
    # Columns that share the same set of finite facts are bootstrapped together (identical resamples per column).
    masks: dict[bytes, list[int]] = {}
    for c in range(cols):
        finite = np.isfinite(data[:, c])
        if finite.sum() < 2:
            continue
        values = data[finite, c]
        if np.all(values == values[0]):
            low[c] = high[c] = values[0]
            methods[c] = "degenerate (all facts equal)"
            continue
        masks.setdefault(finite.tobytes(), []).append(c)
    for key, columns in masks.items():
        finite = np.frombuffer(key, dtype=bool)
        sample = data[finite][:, columns]  # [n, cols]
        batch = max(1, int(2e7 // max(1, sample.size)))
        for how in (method, "percentile"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.bootstrap((sample,), np.mean, axis=0, vectorized=True, n_resamples=n_resamples,
                                      confidence_level=confidence, method=how, rng=np.random.default_rng(seed),
                                      batch=batch)
            lo, hi = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
            for j, c in enumerate(columns):
                if np.isnan(low[c]) and np.isfinite(lo[j]) and np.isfinite(hi[j]):
                    low[c], high[c], methods[c] = lo[j], hi[j], how
            if all(np.isfinite(low[c]) for c in columns):
                break
    return n, mean, low, high, methods


# ---------------------------------------------- resampling for statistics of many columns (the comparison's grid)


_CHUNK = 500


def stream(seed: int, *labels: str) -> np.random.SeedSequence:
    """The random stream of one statistic: the same seed and labels (e.g. arm and kind) give the same draws wherever
    the statistic is computed, so the same facts give the same interval in every fact set."""
    return np.random.SeedSequence([int(seed), *(zlib.crc32(str(label).encode()) for label in labels)])


def resample_weights(n: int, n_resamples: int, seed: Any) -> np.ndarray:
    """[resample, fact] bootstrap counts (each row sums to n): the nonparametric bootstrap as multinomial weights."""
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.zeros((n_resamples, 0))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def resampled_means(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[resample, ...] NaN-aware weighted means of `data` [fact, ...] under bootstrap `weights` [resample, fact]."""
    data = np.asarray(data, dtype=np.float64)
    flat = data.reshape(data.shape[0], -1)
    finite = np.isfinite(flat)
    values, counts = np.where(finite, flat, 0.0), finite.astype(np.float64)
    out = np.empty((weights.shape[0], flat.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, weights.shape[0], _CHUNK):
            w = weights[start:start + _CHUNK]
            out[start:start + _CHUNK] = (w @ values) / (w @ counts)
    return out.reshape((weights.shape[0], *data.shape[1:]))


def two_way_means(samples: np.ndarray, weights: np.ndarray, noise_weights: np.ndarray) -> np.ndarray:
    """[resample, ...] means of `samples` [fact, noise sample, ...] under a two-way bootstrap of a crossed design:
    facts resampled by `weights` [resample, fact] and noise samples by `noise_weights` [resample, sample], jointly
    (resample r weights cell (f, s) by weights[r, f] x noise_weights[r, s]). The noise samples are crossed with the
    facts because every fact of a run sees the same noise streams, so one draw of them moves every fact at once: a
    bootstrap over facts alone cannot see that share of the uncertainty (issue 28). NaN cells are left out as in
    `resampled_means`; with every noise weight 1 this is `resampled_means` of the per-fact sample means."""
    samples = np.asarray(samples, dtype=np.float64)
    F, S = samples.shape[:2]
    flat = samples.reshape(F, S, -1)
    finite = np.isfinite(flat)
    values, counts = np.where(finite, flat, 0.0), finite.astype(np.float64)
    out = np.empty((weights.shape[0], flat.shape[2]))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, weights.shape[0], _CHUNK):
            w, v = weights[start:start + _CHUNK], noise_weights[start:start + _CHUNK]
            num = np.einsum("rf,rfc->rc", w, np.einsum("rs,fsc->rfc", v, values))
            den = np.einsum("rf,rfc->rc", w, np.einsum("rs,fsc->rfc", v, counts))
            out[start:start + _CHUNK] = num / den
    return out.reshape((weights.shape[0], *samples.shape[2:]))


def quiet_nanmean(data: np.ndarray, axis: int = 0) -> np.ndarray:
    """np.nanmean over `axis` without the warning for all-NaN slices (they give NaN: an empty token group)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(data, axis=axis)


def percentile_ci(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, ignoring NaN resamples (NaN when more than half are NaN)."""
    samples = np.asarray(samples, dtype=np.float64)
    alpha = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanquantile(samples, alpha, axis=0)
        high = np.nanquantile(samples, 1 - alpha, axis=0)
    bad = np.isnan(samples).mean(axis=0) > 0.5
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def basic_ci(value: Any, samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[Any, Any]:
    """Basic (reverse-percentile) interval [2v - q_hi, 2v - q_lo]: corrects the plug-in bias of statistics such as
    a maximum over noisy means or an entropy, which resampling adds to again (their percentile interval can miss
    the estimate itself)."""
    lo, hi = percentile_ci(samples, confidence)
    return 2 * np.asarray(value) - hi, 2 * np.asarray(value) - lo


@dataclass(frozen=True)
class PeakInterval:
    """The maximum of a curve with bootstrap intervals: `value` at `layer`, a basic interval of the maximum, a
    percentile interval of the layer (argmax over the resampled curves; NaN when no resample has a finite value),
    and the share of resamples whose argmax is `layer`."""

    layer: int
    value: float
    ci_low: float
    ci_high: float
    layer_ci_low: float
    layer_ci_high: float
    mode_share: float


def peak_interval(curve: np.ndarray, boot: np.ndarray, confidence: float = CONFIDENCE) -> PeakInterval | None:
    """The peak of `curve` [layer] with its intervals from the resampled curves `boot` [resample, layer] (non-finite
    cells never win; resamples without a finite cell are left out); None when the curve has no finite value. The
    comparison's and the carry-over's peaks (a minimum is the peak of the negated curve)."""
    curve = np.asarray(curve)
    if not np.isfinite(curve).any():
        return None
    layer = int(np.nanargmax(curve))
    ok = np.isfinite(boot).any(axis=1)
    b = np.where(np.isfinite(boot[ok]), boot[ok], -np.inf)
    argmax = b.argmax(axis=1).astype(np.float64)
    maxima = b.max(axis=1)
    alpha = (1 - confidence) / 2
    lo_layer = float(np.quantile(argmax, alpha, method="inverted_cdf")) if len(argmax) else math.nan
    hi_layer = float(np.quantile(argmax, 1 - alpha, method="inverted_cdf")) if len(argmax) else math.nan
    lo, hi = basic_ci(curve[layer], maxima, confidence)
    mode = (argmax == layer).mean() if len(argmax) else math.nan
    return PeakInterval(layer, curve[layer], lo, hi, lo_layer, hi_layer, mode)


def ratio_interval(num: Any, den: Any, num_samples: np.ndarray, den_samples: np.ndarray,
                   confidence: float = CONFIDENCE) -> tuple[Any, Any, Any] | None:
    """num / den with a basic interval from paired samples of both (one resample gives num_samples[i] and
    den_samples[i]; samples with den <= 0 are left out); None when den is not a positive number or num not finite.
    The comparison's ratio of peaks and the carry-over's share of the own peak."""
    if not (np.isfinite(den) and den > 0 and np.isfinite(num)):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den_samples > 0, num_samples / den_samples, np.nan)
    value = num / den
    lo, hi = basic_ci(value, r, confidence)
    return value, lo, hi


def simultaneous_band(observed: np.ndarray, boot: np.ndarray, confidence: float = CONFIDENCE
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Max-statistic band over the last axis: observed +- c * se, c the `confidence` quantile of
    max_l |boot - observed| / se (layers with zero or undefined se are left out of the max and get a NaN band)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(boot, axis=0)
        usable = np.isfinite(observed) & np.isfinite(se) & (se > 0)
        if not usable.any():
            nan = np.full(observed.shape, np.nan)
            return nan, nan, math.nan
        z = np.abs(boot[:, usable] - observed[usable]) / se[usable]
        zmax = np.nanmax(z, axis=1)
        c = float(np.nanquantile(zmax, confidence))
    low = np.where(usable, observed - c * se, np.nan)
    high = np.where(usable, observed + c * se, np.nan)
    return low, high, c
