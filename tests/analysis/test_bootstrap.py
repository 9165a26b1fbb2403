"""The bootstrap over facts: coverage, NaN facts, degenerate and tiny columns, determinism."""


from __future__ import annotations

import numpy as np
import pytest

from artifact.analysis.bootstrap import bootstrap_mean_ci


def test_bootstrap_ci_contains_true_mean_and_has_near_nominal_coverage():
    rng = np.random.default_rng(123)
    true_mean = 0.05
    hits, widths = 0, []
    for _ in range(40):
        data = rng.exponential(true_mean, size=(60, 3))  # skewed per-fact effects, 3 layers
        n, mean, low, high, methods = bootstrap_mean_ci(data, n_resamples=2000)
        assert (n == 60).all() and methods == ["BCa"] * 3
        assert np.all(low < mean) and np.all(mean < high)
        hits += int(((low <= true_mean) & (true_mean <= high)).sum())
        widths.append(np.mean(high - low))
    assert hits / (40 * 3) >= 0.85  # nominal 95%; a broken interval (e.g. 50%) fails this
    big = rng.exponential(true_mean, size=(960, 1))
    _, _, lo, hi, _ = bootstrap_mean_ci(big, n_resamples=2000)
    assert (hi - lo)[0] < np.mean(widths) / 2  # 16x the facts: about a quarter of the width


def test_bootstrap_handles_nan_facts_degenerate_and_tiny_columns():
    data = np.array([[1.0, 2.0, np.nan], [2.0, 2.0, np.nan], [np.nan, 2.0, 5.0], [3.0, 2.0, np.nan]])
    n, mean, low, high, methods = bootstrap_mean_ci(data, n_resamples=500)
    assert list(n) == [3, 4, 1]
    assert mean[0] == pytest.approx(2.0) and low[0] <= 2.0 <= high[0]
    assert (low[1], high[1]) == (2.0, 2.0) and methods[1].startswith("degenerate")
    assert np.isnan(low[2]) and methods[2].startswith("none")


def test_bootstrap_is_deterministic():
    data = np.random.default_rng(0).normal(size=(30, 4))
    a = bootstrap_mean_ci(data, n_resamples=1000)
    b = bootstrap_mean_ci(data, n_resamples=1000)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
