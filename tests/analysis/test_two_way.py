"""Claims' intervals over both sources of uncertainty (issue 28): facts and the noise samples every fact shares."""

from __future__ import annotations

import numpy as np

from artifact.analysis import claims
from artifact.analysis.bootstrap import percentile_ci, resample_weights, resampled_means, two_way_means
from artifact.analysis.compare import compare_arrays
from artifact.core.names import GROUPS


def test_two_way_means_with_unit_noise_weights_is_the_facts_bootstrap_of_the_sample_means():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4, 3, 5))
    x[2, :, 1] = np.nan  # an empty group of one fact: NaN in every sample
    w = resample_weights(12, 50, 1)
    ones = np.ones((50, 4))
    np.testing.assert_allclose(two_way_means(x, w, ones), resampled_means(x.mean(axis=1), w), rtol=0, atol=1e-12)
    assert two_way_means(x, w, resample_weights(4, 50, 2)).shape == (50, 3, 5)


def test_two_way_interval_covers_a_shared_noise_draw_that_the_facts_bootstrap_misses():
    """Crossed design as in a run: x[f, s] = fact effect + noise-sample effect shared by every fact + residual. The
    truth is 0; a facts-only percentile interval is conditional on the noise draw and misses it often."""
    rng = np.random.default_rng(5)
    F, S, R, runs = 30, 5, 1000, 120
    covered = {"facts": 0, "two_way": 0}
    for _ in range(runs):
        x = rng.normal(size=(F, 1)) + rng.normal(size=(1, S)) + 0.3 * rng.normal(size=(F, S))
        w, v = resample_weights(F, R, rng.integers(2**32)), resample_weights(S, R, rng.integers(2**32))
        for name, boot in (("facts", resampled_means(x.mean(axis=1), w)), ("two_way", two_way_means(x, w, v))):
            lo, hi = percentile_ci(boot)
            covered[name] += bool(lo <= 0 <= hi)
    assert covered["facts"] / runs < 0.6  # about 0.4: the noise draw's variance (1/S) dwarfs the facts' (1/F)
    assert covered["two_way"] / runs > 0.8  # near the nominal 0.95 less the bootstrap's small-S shrinkage


def _effects(rng, facts, samples, layers, shared_noise):
    base = np.abs(rng.normal(size=(facts, 1, len(GROUPS), layers))) * np.linspace(0.1, 1, layers)
    noise = shared_noise * rng.normal(size=(1, samples, len(GROUPS), layers))
    return base + noise + 0.01 * rng.normal(size=(facts, samples, len(GROUPS), layers))


def test_compare_reports_the_noise_share_of_each_interval_and_the_claims_say_it():
    rng = np.random.default_rng(1)
    t, s = _effects(rng, 16, 4, 6, 0.3), _effects(rng, 16, 4, 6, 0.3)
    doc = compare_arrays(t.mean(axis=1), s.mean(axis=1), True, n_resamples=400, kind="mlp", t2t_samples=t,
                         s2t_samples=s)
    facts = compare_arrays(t.mean(axis=1), s.mean(axis=1), True, n_resamples=400, kind="mlp")
    assert doc["ci_sources"].startswith("facts and noise") and "ci_sources" not in facts  # old documents unchanged
    ratio = doc["overall_peak_ratio"]
    assert ratio["facts_only"] == {"ci_low": facts["overall_peak_ratio"]["ci_low"],
                                   "ci_high": facts["overall_peak_ratio"]["ci_high"]}
    assert ratio["value"] == facts["overall_peak_ratio"]["value"]  # the estimate is the same; only its CI widens
    assert isinstance(ratio["noise_share"], float)
    peak = doc["arms"]["t2t"]["groups"]["last_subject"]["peak"]
    assert (peak["ci_high"] - peak["ci_low"]) > (peak["facts_only"]["ci_high"] - peak["facts_only"]["ci_low"])
    assert 0.2 < peak["noise_share"] < 1 and 0.2 < doc["entropy_difference"]["noise_share"] < 1
    quiet = compare_arrays(t.mean(axis=1), s.mean(axis=1), True, n_resamples=400, kind="mlp",
                           t2t_samples=np.repeat(t.mean(axis=1, keepdims=True), 4, axis=1),
                           s2t_samples=np.repeat(s.mean(axis=1, keepdims=True), 4, axis=1))
    assert abs(quiet["overall_peak_ratio"]["noise_share"]) < 1e-9  # samples that agree add no width
    conditions = claims.verdicts_for_set({"mlp": doc})["C2"]["conditions"]
    assert conditions[0]["noise_share"] == ratio["noise_share"] and conditions[0]["facts_only"] == ratio["facts_only"]
    document = {"results": {"both": {"mlp": doc}}, "bootstrap": {"n_resamples": 400}}
    text = claims.summary_markdown(document)
    assert "CIs over facts and noise samples (two-way)" in text
    assert f"noise {100 * ratio['noise_share']:.0f}% of its width; facts only [" in text
    old = claims.summary_markdown({"results": {"both": {"mlp": facts}}, "bootstrap": {"n_resamples": 400}})
    assert "CIs over facts only (the traces keep no per-noise-sample values" in old and "of its width" not in old
