"""Statistics of the carry-over analyses on per-fact arrays built with known answers: curves are the means over
facts with intervals that cover them, peaks sit where they were planted, the share of the own peak is the ratio, the
knockout's strongest drop and the lens's formed layer are found, one bootstrap stream per statistic, and the
summary sentences carry the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from artifact.analysis.bootstrap import resample_weights
from artifact.analysis.carryover import carryover_statistics, curve, formed_layer, peak
from artifact.analysis.carryover_summary import sentences

L, F = 8, 12
PLAN = {"analyses": ["patching", "knockout", "lens"], "patch_kinds": ["hidden"],
        "positions": ["last_subject", "last"], "directions": ["text_to_speech", "speech_to_text"]}


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Facts whose cross-modal IE peaks at layer 3 (text -> speech, 0.2) and whose knockout hurts most at layer 5."""
    rng = np.random.default_rng(seed)
    bump = np.exp(-0.5 * ((np.arange(L) - 3) / 1.0) ** 2)
    low = np.full((F, 2), 0.05)
    patch = low[:, :, None, None, None] + np.zeros((F, 2, 1, 2, L))
    patch[:, 0, 0, 0] += 0.2 * bump + rng.normal(0, 0.01, (F, L))
    patch[:, 1, 0, 0] += 0.05 * bump + rng.normal(0, 0.01, (F, L))
    clean = np.full((F, 2), 0.5)
    knock = clean[:, :, None] * (1 - 0.6 * np.exp(-0.5 * ((np.arange(L) - 5) / 1.0) ** 2))
    knock = knock + rng.normal(0, 0.005, (F, 2, L))
    lens_prob = np.tile(np.linspace(0, 0.6, L), (F, 2, 2, 1))
    rank = np.ones((F, 2, 2, L), dtype=np.int64) * 3
    rank[:, :, 1, 6:] = 0  # the answer is on top at the last position from layer 6
    return {"known_id": np.array([str(i) for i in range(F)]), "patch_prob": patch, "patch_logprob": np.log(patch),
            "low_prob": low, "low_logprob": np.log(low), "high_prob": clean, "high_logprob": np.log(clean),
            "knockout_clean": clean, "knockout_prob": knock, "lens_prob": lens_prob, "lens_rank": rank}


def test_curve_is_the_mean_with_intervals_around_it():
    data = np.random.default_rng(1).normal(0.3, 0.1, (F, L))
    entry, boot = curve(data, resample_weights(F, 2000, 7))
    np.testing.assert_allclose(entry["mean"], data.mean(axis=0), atol=1e-12)
    assert all(lo <= m <= hi for lo, m, hi in zip(entry["ci_low"], entry["mean"], entry["ci_high"]))
    assert boot.shape == (2000, L) and entry["n_facts"] == [F] * L
    data[0, 2] = np.nan  # a fact without a value at a layer is left out of that layer only
    entry, _ = curve(data, resample_weights(F, 200, 7))
    assert entry["n_facts"][2] == F - 1 and entry["mean"][2] == pytest.approx(np.nanmean(data[:, 2]))


def test_statistics_find_what_was_planted():
    stats = carryover_statistics(_arrays(), own={("speech", "hidden", "last_subject"): np.full((F, L), 0.4)},
                                 plan=PLAN, n_resamples=2000)
    t2s = stats["patching"]["text_to_speech/hidden/last_subject"]
    assert t2s["cross_peak"]["layer"] == 3 and t2s["cross_peak"]["value"] == pytest.approx(0.2, abs=0.02)
    assert t2s["cross_peak"]["ci_low"] > 0.15 and t2s["cross_peak"]["depth"] == pytest.approx(3 / 7)
    assert t2s["share_of_own_peak"]["value"] == pytest.approx(t2s["cross_peak"]["value"] / 0.4)
    assert "own" not in stats["patching"]["speech_to_text/hidden/last_subject"]  # no trace given for text
    assert stats["patching"]["text_to_speech/hidden/last"]["cross_peak"]["value"] == pytest.approx(0, abs=1e-12)
    drop = stats["knockout"]["text"]["strongest_drop"]
    assert drop["layer"] == 5 and drop["value"] == pytest.approx(-0.6, abs=0.02) and drop["ci_high"] < -0.5
    formed = stats["lens"]["speech/last"]["formed"]
    assert formed["layer"] == 6 and formed["ci_low"] == formed["ci_high"] == 6
    assert stats["lens"]["speech/last_subject"]["formed"]["layer"] is None  # never on top at the subject


def test_one_stream_per_statistic_and_same_facts_same_interval():
    """Each statistic draws its own resamples (seeded by its labels), so the whole document is reproducible and a
    fact set that holds the same facts gets the same intervals."""
    a = carryover_statistics(_arrays(), {}, PLAN, n_resamples=500)
    b = carryover_statistics(_arrays(), {}, PLAN, n_resamples=500)
    assert a == b
    other = carryover_statistics(_arrays(), {}, PLAN, n_resamples=500, seed=3)
    assert other["knockout"]["text"]["relative_change"]["ci_low"] != a["knockout"]["text"]["relative_change"]["ci_low"]


def test_peak_and_formed_layer_edge_cases():
    assert peak([None, None], np.zeros((10, 2)))["layer"] is None
    minimum = peak([0.0, -0.5, -0.2], np.tile([0.0, -0.5, -0.2], (50, 1)), sign=-1)
    assert minimum["layer"] == 1 and minimum["value"] == -0.5 and minimum["ci_low"] == minimum["ci_high"] == -0.5
    assert formed_layer(np.zeros((0, 4), dtype=bool), np.zeros((5, 0)))["layer"] is None


def test_sentences_state_each_analysis_with_its_statistic():
    stats = carryover_statistics(_arrays(), {("speech", "hidden", "last_subject"): np.full((F, L), 0.4)}, PLAN,
                                 n_resamples=1000)
    text = sentences(stats, L)
    assert set(text) == {"patching", "knockout", "lens"}
    peak_value = stats["patching"]["text_to_speech/hidden/last_subject"]["cross_peak"]["value"]
    assert f"{peak_value:.3f}" in text["patching"] and "restores P(answer)" in text["patching"]
    assert "layer 5 of 8" in text["knockout"] and "-60" in text["knockout"]
    assert "from layer 6" in text["lens"]
