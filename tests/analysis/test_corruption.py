"""Corruption-choice analysis on arrays and verdicts whose answers are known by construction: effects per metric
(including the replacement's logit difference), the recovered share, and the sentence on whether the conclusion
depends on the corruption."""

from __future__ import annotations

import numpy as np
import pytest

from artifact.analysis.corruption import (
    BASELINE,
    CORRUPTIONS,
    dependence_sentence,
    indirect_effects,
    label,
    recovered_share,
    verdict_table,
)


def _arrays() -> dict[str, np.ndarray]:
    return {"scores": np.array([[0.1, 0.5], [np.nan, 0.3]]), "low_score": np.float64(0.1),
            "high_score": np.float64(0.9), "logprobs": np.log([[0.1, 0.5], [0.2, 0.3]]),
            "low_logprob": np.float64(np.log(0.1)), "high_logprob": np.float64(np.log(0.9)),
            "logit_diffs": np.array([[-2.0, 1.0], [0.0, 3.0]]), "low_logit_diff": np.float64(-2.0),
            "high_logit_diff": np.float64(2.0)}


def test_effects_per_metric():
    arrays = _arrays()
    np.testing.assert_allclose(indirect_effects(arrays, "prob"), [[0.0, 0.4], [np.nan, 0.2]])
    np.testing.assert_allclose(indirect_effects(arrays, "logprob"), np.log([[1.0, 5.0], [2.0, 3.0]]))
    np.testing.assert_allclose(indirect_effects(arrays, "logit_diff"), [[0.0, 3.0], [2.0, 5.0]])
    np.testing.assert_allclose(recovered_share(arrays), [[0.0, 0.75], [0.5, 1.25]])  # gap 4
    np.testing.assert_allclose(recovered_share(arrays, "prob"), [[0.0, 0.5], [np.nan, 0.25]])
    flat = {**arrays, "high_logit_diff": np.float64(-2.0)}
    assert np.isnan(recovered_share(flat)).all()  # the replacement changed nothing: no share to recover
    with pytest.raises(ValueError, match="token-replacement trace"):
        indirect_effects({k: v for k, v in arrays.items() if "logit" not in k}, "logit_diff")
    with pytest.raises(ValueError, match="metric must be one of"):
        indirect_effects(arrays, "kl")


def test_names_and_labels():
    assert CORRUPTIONS == ("noise_1", "noise_3", "noise_5", "replacement") and BASELINE == "noise_3"
    assert label("noise_3") == "Gaussian noise at 3 sigma" and label("replacement") == "token replacement"
    with pytest.raises(ValueError, match="Unknown corruption 'blur'"):
        label("blur")


def test_the_sentence_says_whether_the_conclusion_depends_on_the_corruption():
    same = {c: {"C1": "supported", "C2": "supported", "C3": "inconclusive"} for c in CORRUPTIONS}
    text = dependence_sentence(same)
    assert "does not depend on the corruption" in text and "C3 inconclusive" in text
    moved = {**same, "replacement": {"C1": "supported", "C2": "not supported", "C3": "inconclusive"},
             "noise_1": {"C1": "inconclusive", "C2": "not supported", "C3": "inconclusive"}}
    text = dependence_sentence(moved)
    assert text.startswith("The conclusion depends on the corruption")
    assert "C1 is supported under Gaussian noise at 3 sigma but inconclusive under Gaussian noise at 1 sigma" in text
    assert ("C2 is supported under Gaussian noise at 3 sigma but not supported under Gaussian noise at 1 sigma and "
            "not supported under token replacement") in text
    assert "C3" not in text
    assert "not measured" in dependence_sentence({"noise_3": same["noise_3"]})
    with pytest.raises(ValueError, match="baseline"):
        dependence_sentence({"replacement": same["replacement"]})


def test_verdict_table_in_a_fixed_order():
    verdicts = {"replacement": {"C1": "supported"}, "noise_3": {"C1": "inconclusive"}, "noise_2": {"C1": "x"}}
    rows = verdict_table(verdicts)
    assert [r["corruption"] for r in rows] == ["noise_3", "replacement", "noise_2"]
    assert rows[0] == {"corruption": "noise_3", "label": "Gaussian noise at 3 sigma", "C1": "inconclusive"}
