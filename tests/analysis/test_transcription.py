"""Implicit-transcription statistics on synthetic per-fact curves whose answers are known by construction: the depth
(first layer where the subject's text is top-k for half the facts) and its CI, its place beside recall-effect depths,
and the sentence."""

from __future__ import annotations

import numpy as np
import pytest

from artifact.analysis.bootstrap import resample_weights
from artifact.analysis.carryover import peak
from artifact.analysis.transcription import (
    Depth,
    beside_recall_depths,
    depth_sentence,
    relation,
    top_k,
    transcription_depth,
    transcription_statistics,
)

L = 10


def _ranks(onsets: list[int | None], before: int = 40, after: int = 0) -> np.ndarray:
    """[fact, layer] ranks: fact i has rank `after` from layer onsets[i] on (never when None), `before` until then."""
    ranks = np.full((len(onsets), L), before)
    for i, onset in enumerate(onsets):
        if onset is not None:
            ranks[i, onset:] = after
    return ranks


def test_depth_is_the_first_layer_reaching_half_the_facts():
    onsets = [3] * 12 + [None] * 8  # 60% of the facts read as text from layer 3, the rest never
    ranks = _ranks(onsets)
    depth = transcription_depth(ranks, 1, resample_weights(20, 2000, 0))
    assert depth["layer"] == 3 and depth["k"] == 1 and depth["n_facts"] == 20
    assert depth["top_k_share"] == [0.0] * 3 + [0.6] * 7
    # 60% vs a 50% threshold with 20 facts: some resampled sets fall below half at every layer (never)
    assert depth["ci_low"] == 3 and depth["ci_high"] is None and 0 < depth["never_share"] < 0.5


def test_every_fact_at_one_layer_gives_a_point_interval_and_k_matters():
    ranks = _ranks([6] * 10, before=40, after=0)
    ranks[:, 2:6] = 4  # rank 4 (top-5, not top-1) from layer 2 to 5
    weights = resample_weights(10, 500, 1)
    top1 = transcription_depth(ranks, 1, weights)
    top5 = transcription_depth(ranks, 5, weights)
    assert (top1["layer"], top1["ci_low"], top1["ci_high"]) == (6, 6, 6)
    assert (top5["layer"], top5["ci_low"], top5["ci_high"]) == (2, 2, 2)
    never = transcription_depth(_ranks([None] * 10), 1, weights)
    assert never["layer"] is None and never["ci_low"] is None and never["never_share"] == 1.0
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        top_k(ranks, 0)


def test_statistics_per_view():
    """first/last reads as text from layer 7, best/any from layer 2: the views are kept apart."""
    F = 16
    curves = {"first_rank_last": _ranks([7] * F), "best_rank_any": _ranks([2] * F),
              "first_prob_last": np.tile(np.linspace(0, 0.9, L), (F, 1)),
              "best_prob_any": np.tile(np.linspace(0.1, 1.0, L), (F, 1))}
    stats = transcription_statistics(curves, ks=(1, 10), n_resamples=500)
    assert set(stats) == {"first/last", "best/any"}  # views without both arrays are left out
    assert stats["first/last"]["depth"]["1"]["layer"] == 7 and stats["best/any"]["depth"]["10"]["layer"] == 2
    np.testing.assert_allclose(stats["first/last"]["prob"]["mean"], np.linspace(0, 0.9, L))
    assert stats["best/any"]["n_facts"] == F
    with pytest.raises(ValueError, match=r"\[fact, layer\]"):
        transcription_statistics({"first_prob_last": np.zeros((3, L)), "first_rank_last": np.zeros((3, L - 1))})


def test_beside_the_recall_depths():
    transcription = Depth("transcription", 3, 2, 4)
    mlp = Depth("the MLP site", 8, 7, 9)
    knockout = Depth("the knockout drop", 1, 0, 1)
    patching = Depth("the patching peak", 4, 3, 6)
    assert relation(transcription, mlp) == "before"
    assert relation(transcription, knockout) == "after"
    assert relation(transcription, patching) == "overlaps"
    assert relation(Depth("t", None), mlp) == "never"
    assert relation(transcription, Depth("no CI", 5)) == "undetermined"
    assert relation(Depth("open", 3, 2, None), mlp) == "overlaps"  # a CI reaching 'never' cannot be before anything
    rows = beside_recall_depths(transcription, [mlp, knockout, patching], L)
    assert [r["name"] for r in rows] == ["transcription", "the MLP site", "the knockout drop", "the patching peak"]
    assert [r.get("transcription") for r in rows] == [None, "before", "after", "overlaps"]
    assert rows[1]["relative_depth"] == pytest.approx(8 / 9)
    text = depth_sentence(rows, 1)
    assert "from layer 3 [2, 4]" in text and "before the MLP site (layer 8 [7, 9])" in text
    assert "after the knockout drop" in text and "not separable from the patching peak" in text
    assert "at no layer" in depth_sentence(beside_recall_depths(Depth("t", None), [mlp], L), 1)


def test_depths_from_the_carryover_statistics():
    """A patching peak from `carryover.peak` and a depth from `transcription_depth` feed the comparison directly."""
    boot = np.tile(np.r_[np.zeros(5), 1.0, np.zeros(4)], (50, 1))  # every resample peaks at layer 5
    entry = peak(list(boot[0]), boot)
    effect = Depth.from_peak("the patching peak", entry)
    assert (effect.layer, effect.low, effect.high) == (5, 5, 5)
    depth = Depth.from_formed("transcription", transcription_depth(_ranks([2] * 8), 1, resample_weights(8, 100, 0)))
    assert (depth.layer, depth.low, depth.high) == (2, 2, 2)
    assert relation(depth, effect) == "before"


def test_the_summary_says_how_surely_a_depth_never_comes():
    """When no layer reaches half the facts, the summary's depth row says in how many resamples (not a blank CI), and
    a line gives the largest per-layer share with its exact binomial CI; a depth that does come gets neither."""
    from artifact.analysis.transcription_document import summary_section

    weights = resample_weights(20, 500, 0)
    never = _ranks([8] * 3 + [None] * 17)  # 3 of 20 facts read as text from layer 8: far below half
    depth = {str(k): transcription_depth(never, k, weights) for k in (1, 10)}
    rows = beside_recall_depths(Depth.from_formed("implicit transcription", depth["10"]), [Depth("the MLP site", 4,
                                                                                             3, 5)], L)
    document = {"settings": {"model": "m"}, "n_facts": 20, "bootstrap": {"n_resamples": 500},
                "sentences": {"1": "s1", "10": "s10"}, "beside_recall": {"10": rows},
                "statistics": {"first/last": {"depth": depth}}}
    text = summary_section(document)
    assert "| implicit transcription | none | none in 100.0% of resamples |" in text
    assert "top 1: 3 of 20 facts at layer 8 (0.15, 95% CI [0.03, 0.38])" in text  # Clopper-Pearson for 3/20
    assert "top 10: 3 of 20 facts at layer 8" in text
    reached = {str(k): transcription_depth(_ranks([2] * 20), k, weights) for k in (1, 10)}
    document["statistics"]["first/last"]["depth"] = reached
    document["beside_recall"]["10"] = beside_recall_depths(Depth.from_formed("t", reached["10"]), [], L)
    text = summary_section(document)
    assert "| t | 2 | [2, 2] |" in text and "resamples |" not in text.split("| t |")[1] and "Clopper" not in text
