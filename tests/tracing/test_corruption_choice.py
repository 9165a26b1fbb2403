"""Corruption choice (issue 30): partners for token replacement (same subject length, another answer, deterministic,
the facts without a partner reported), and the noise level as a multiple of the calibrated sigma."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from artifact.tracing.config import NOISE_MULTIPLES, ROME_NOISE_MULTIPLE, TraceConfig, noise_scaled
from artifact.tracing.pairing import Candidate, pair_facts


def _facts() -> list[Candidate]:
    return [
        Candidate(1, (10, 11), 100, "P17"),
        Candidate(2, (12, 13), 100, "P17"),  # same answer as 1: never its partner
        Candidate(3, (14, 15), 200, "P30"),
        Candidate(4, (16, 17), 300, "P17"),
        Candidate(5, (18, 19, 20), 100, "P17"),  # the only three-token subject: skipped
        Candidate(6, (21,), 400, "P30"),
        Candidate(7, (21,), 500, "P30"),  # same subject tokens as 6: replacing would change nothing
        Candidate(8, (22,), 400, "P30"),  # same answer as 6
    ]


def test_partners_have_the_same_length_and_another_answer():
    facts = {c.key: c for c in _facts()}
    pairing = pair_facts(list(facts.values()))
    for key, partner in pairing.partners.items():
        assert len(facts[key].subject_ids) == len(facts[partner].subject_ids)
        assert facts[key].answer_id != facts[partner].answer_id
        assert facts[key].subject_ids != facts[partner].subject_ids
    # known by construction: 1 -> 4 (the next with another answer, same relation), 2 -> 4, 3 -> 4 (no other P30 of
    # two tokens), 4 -> 1 (cyclic); 6 and 7 share their tokens and 6, 8 their answer, so 6 has no partner,
    # 7 -> 8, 8 -> 7
    assert pairing.partners == {1: 4, 2: 4, 3: 4, 4: 1, 7: 8, 8: 7}
    assert pairing.skipped == (5, 6)
    assert pairing.same_relation == 5  # 1, 2, 4 (P17) and 7, 8 (P30) share; 3 (P30 -> P17) does not
    data = pairing.to_dict()
    assert data["n_paired"] == 6 and data["n_skipped"] == 2 and data["skipped"] == [5, 6]


def test_the_choice_is_deterministic_and_ignores_input_order():
    facts = _facts()
    first = pair_facts(facts)
    shuffled = facts[:]
    random.Random(3).shuffle(shuffled)
    assert pair_facts(shuffled) == first
    assert list(first.partners) == sorted(first.partners)  # reported in key order


def test_the_same_relation_is_preferred():
    facts = [Candidate(1, (1, 2), 10, "A"), Candidate(2, (3, 4), 20, "B"), Candidate(3, (5, 6), 30, "A")]
    assert pair_facts(facts).partners == {1: 3, 2: 3, 3: 1}  # 1 skips 2 (other relation) for 3
    no_relation = [Candidate(c.key, c.subject_ids, c.answer_id) for c in facts]
    assert pair_facts(no_relation).partners == {1: 2, 2: 3, 3: 1}  # plain cyclic order
    assert pair_facts(no_relation).same_relation == 0


def test_bad_candidates_are_clear_errors():
    with pytest.raises(ValueError, match="distinct; repeated: \\[1\\]"):
        pair_facts([Candidate(1, (1,), 2), Candidate(1, (3,), 4)])
    with pytest.raises(ValueError, match="non-empty subject"):
        pair_facts([Candidate(1, (), 2)])
    assert pair_facts([]).partners == {} and pair_facts([Candidate(1, (5,), 2)]).skipped == (1,)


class _CharTokenizer:
    """One token per character (ids 1..96): enough for noise calibration."""

    def __call__(self, text):
        return {"input_ids": [1 + ord(ch) % 96 for ch in text]}


def test_noise_at_a_multiple_of_the_calibrated_sigma(llama_tiny):
    from artifact.tracing import trace_fact
    from artifact.tracing.noise import calibrate_noise, subject_embedding_std

    subjects = ["Vinson Massif", "Paris", "Danielle Darrieux"]
    sigma = subject_embedding_std(llama_tiny, _CharTokenizer(), subjects)
    base = TraceConfig(kind="mlp", samples=3, window=3, seed=4)
    configs = {m: noise_scaled(base, sigma, m) for m in NOISE_MULTIPLES}
    assert NOISE_MULTIPLES == (1.0, 3.0, 5.0)
    assert configs[ROME_NOISE_MULTIPLE].noise == pytest.approx(calibrate_noise(llama_tiny, _CharTokenizer(), subjects))
    assert all(c.noise == pytest.approx(m * sigma) and (c.kind, c.samples, c.seed) == ("mlp", 3, 4)
               for m, c in configs.items())
    ids = torch.tensor([5, 17, 42, 8, 91, 23, 60])
    lows = [trace_fact(llama_tiny, ids, (2, 5), 11, configs[m]).low_score for m in NOISE_MULTIPLES]
    assert len(set(lows)) == 3  # each level is its own corruption
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="positive finite"):
            noise_scaled(base, sigma, bad)
    with pytest.raises(ValueError, match="sigma must be"):
        noise_scaled(base, float("inf"), 3)
    assert noise_scaled(base, np.float32(0.5), np.int64(2)).noise == 1.0


def test_keys_of_mixed_types_are_ordered_numbers_first():
    facts = [Candidate("b", (1,), 1), Candidate(10, (2,), 2), Candidate(9, (3,), 3), Candidate("a", (4,), 4)]
    pairing = pair_facts(facts)
    assert list(pairing.partners) == [9, 10, "a", "b"]
    assert pairing.partners == {9: 10, 10: "a", "a": "b", "b": 9}  # numerically 9 before 10, then text
