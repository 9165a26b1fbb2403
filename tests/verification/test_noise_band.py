"""The other-seed tier from the runs' own noise samples (noise_band.py): an exact permutation max-T over every curve
together. Its family-wise false-FAIL rate on honest pairs, its power against a shifted curve, SKIP without power,
and on the real SmolLM2: an honest other-seed tiny run is covered, a mutated one FAILs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.analysis.effects import group_effects, per_sample_ie
from artifact.core.names import GROUPS
from artifact.verification.load import ArmData
from artifact.verification.noise_band import Member, family_test, members_of, noise_band_checks
from artifact.verification.records import FAIL, PASS, SKIP


def _members(rng, S, layers=12, count=6, shift=0.0, shared=0.6):
    """Honest pairs of per-sample curves: a common curve plus sample noise that is correlated over layers and across
    the family's curves (one noise draw moves every curve of a run), as in a run."""
    base = np.sin(np.linspace(0, 3, layers))
    out = []
    common_r, common_e = rng.normal(size=(S, 1)), rng.normal(size=(S, 1))  # one draw per sample, shared by the family
    for m in range(count):
        r = base + 0.2 * (shared * common_r + rng.normal(size=(S, layers)))
        e = base + 0.2 * (shared * common_e + rng.normal(size=(S, layers)))
        if m == 0:
            r = r + shift * (np.arange(layers) == 4)
        out.append(Member("t2t", "mlp", "prob", GROUPS[m % len(GROUPS)], r, e))
    return out


def test_honest_runs_fail_at_most_at_the_family_rate_and_a_shift_fails():
    rng = np.random.default_rng(3)
    runs = 200
    fails = sum(any(c.verdict == FAIL for c in noise_band_checks(_members(rng, 5))) for _ in range(runs))
    assert fails / runs <= 0.08  # nominal 0.05 over the whole family (binomial sd 0.015 at 200 runs)
    shifted = noise_band_checks(_members(np.random.default_rng(4), 5, shift=1.5))
    assert shifted[0].verdict == FAIL and shifted[0].observed > shifted[0].tolerance
    assert all(c.verdict == PASS for c in shifted[1:])


def test_too_few_samples_say_skip_with_the_reason():
    checks = noise_band_checks(_members(np.random.default_rng(0), 2))
    assert {c.verdict for c in checks} == {SKIP}
    assert "smallest p-value of the exact test is 0.333" in checks[0].detail
    assert family_test(_members(np.random.default_rng(0), 4))["powerless"] is None  # C(8, 4) = 70 splits: 2/70


PROMPTS = [("The Eiffel Tower is located in the city of", "Eiffel Tower"),
           ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux"),
           ("Steve Jobs was the founder of", "Steve Jobs")]


def _tiny_run(embedded, seed: int, samples: int = 6) -> ArmData:
    """A tiny T->T run on the real SmolLM2: three facts, hidden states at the last subject token and the last token,
    per-sample streams; its per-sample group effects as verify reads them."""
    from artifact.prompts import find_subject_range
    from artifact.tracing import TraceConfig, trace_fact

    effects, samples_out = [], []
    for prompt, subject in PROMPTS:
        ids = torch.tensor(embedded.tokenizer(prompt)["input_ids"])
        b, e = find_subject_range(embedded.tokenizer, prompt, subject)
        with torch.no_grad():
            target = int(embedded.model(ids[None]).logits[0, -1].argmax())
        config = TraceConfig(kind="hidden", samples=samples, noise=0.12, seed=seed, noise_streams="per_sample",
                             positions=(e - 1, len(ids) - 1))
        arrays = trace_fact(embedded.model, ids, (b, e), target, config, embedded.adapter).to_arrays()
        per_sample = per_sample_ie(arrays, "prob")
        samples_out.append([group_effects(x, (b, e), len(ids) - 1) for x in per_sample])
        effects.append(np.mean(samples_out[-1], axis=0))
    ids = [str(i) for i in range(len(PROMPTS))]
    return ArmData("t2t", Path("."), {"seed": seed, "noise_streams": "per_sample"}, ids,
                   {"hidden_prob": np.array(effects)}, {"hidden": ids}, samples={"hidden_prob": np.array(samples_out)})


def test_within_run_band_covers_an_honest_other_seed_smollm2_run_and_fails_a_mutated_one(embedded):
    reference, other = _tiny_run(embedded, 1), _tiny_run(embedded, 2)
    groups = ("last_subject", "last")
    honest = noise_band_checks(members_of(other, reference, ("prob",), groups))
    assert [c.verdict for c in honest] == [PASS, PASS], [c.to_dict() for c in honest]
    assert all(0 < c.observed < c.tolerance for c in honest)
    mutated = _tiny_run(embedded, 2)
    layer = 8  # restoring the last subject token's hidden state there matters, and the samples vary
    mutated.samples["hidden_prob"][:, :, GROUPS.index("last_subject"), layer] += 0.05
    checks = noise_band_checks(members_of(mutated, reference, ("prob",), groups))
    assert [c.verdict for c in checks] == [FAIL, PASS], [c.to_dict() for c in checks]
