"""bf16, as SpiritLM runs on a GPU (issue 25, finding 6), on the SpiritLM-shaped checkpoint in CPU bf16 (torch 2.6).

- The loader does what SpiritLM's own does, `from_pretrained(torch_dtype=bfloat16)`: weights bf16, rotary `inv_freq`
  fp32 (a `model.to(bfloat16)` would round it too).
- Noise statistics stay fp32/float64 (BRIEF section 2): the noise level of the bf16 model equals the fp32 model's.
- The tracing engine equals the per-cell reference (ROME's semantics) in bf16, within a tolerance derived from bf16's
  precision on this model (`bf16_logit_error`).
- The Known filter in bf16 equals one prompt per forward, the way `Spiritlm.generate` runs: in bf16 it runs each
  prompt alone, and its rule in known.json says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.spiritlm_checkpoint import MODEL_SUBDIR


@pytest.fixture(scope="module")
def folder(spiritlm_checkpoint_root) -> Path:
    """The model folder of the session's SpiritLM-shaped checkpoint (conftest.py): three facts per relation taught."""
    return spiritlm_checkpoint_root / MODEL_SUBDIR


@pytest.fixture(scope="module")
def models(folder):
    """(bf16, fp32) loads of the same checkpoint; its weights are bf16, so the fp32 copy holds the same numbers."""
    from artifact.models import load_model

    return load_model(str(folder), dtype=torch.bfloat16, device="cpu"), load_model(str(folder), dtype=torch.float32,
                                                                                    device="cpu")


def test_the_loader_keeps_rotary_frequencies_fp32_as_spiritlm_does(folder, models):
    from transformers import LlamaForCausalLM

    bf16, fp32 = models
    assert bf16.dtype == torch.bfloat16
    ours = bf16.model.model.rotary_emb.inv_freq
    spiritlm = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.bfloat16).model.rotary_emb.inv_freq
    assert ours.dtype == spiritlm.dtype == torch.float32 and torch.equal(ours, spiritlm)
    assert torch.equal(ours, fp32.model.model.rotary_emb.inv_freq)
    cast = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).to(torch.bfloat16)
    assert cast.model.rotary_emb.inv_freq.dtype == torch.bfloat16  # what the loader must not do: it rounds them
    assert not torch.equal(cast.model.rotary_emb.inv_freq.float(), ours)


def taught_prompt(loaded):
    """The T->T prompt of the first taught fact whose subject has more than one token (the noise then spans
    several positions, and the token groups first/middle/last subject all exist)."""
    from artifact.core.speechtext import SPIRITLM_FORMAT
    from artifact.prompts.build import text_prompt
    from tests.support.spiritlm_checkpoint import taught_facts

    for fact in taught_facts():
        prompt = text_prompt(loaded.tokenizer, fact.prompt, fact.subject, fact.attribute, SPIRITLM_FORMAT)
        if prompt.subject_range[1] - prompt.subject_range[0] > 1:
            return prompt
    raise AssertionError("no taught fact with a multi-token subject")


def bf16_logit_error(bf16, fp32, input_ids: torch.Tensor, subject_range, noise: float, samples: int) -> float:
    """bf16's precision on this model and prompt: the largest |bf16 - fp32| next-token logit over the clean row and
    the corrupted rows (ROME's noise), fp32 being the same weights widened exactly. Every bf16 computation of a
    cell has its logits within about this of the exact ones."""
    from artifact.tracing.corruption import noise_delta

    b, e = subject_range
    delta = noise_delta(samples, e - b, bf16.model.config.hidden_size, noise, seed=1)
    logits = []
    for loaded in (bf16, fp32):
        def corrupt(_module, _inputs, output):
            output[1:, b:e] += delta
            return output

        handle = loaded.model.get_input_embeddings().register_forward_hook(corrupt)
        try:
            with torch.no_grad():
                logits.append(loaded.model(input_ids[None].repeat(samples + 1, 1)).logits[:, -1].float())
        finally:
            handle.remove()
    return float((logits[0] - logits[1]).abs().max())


def test_noise_statistics_stay_full_precision_in_bf16(models):
    from artifact.facts import load_facts
    from artifact.tracing import calibrate_noise

    bf16, fp32 = models
    subjects = [fact.subject for fact in load_facts("own")]
    assert calibrate_noise(bf16.model, bf16.tokenizer, subjects) == calibrate_noise(fp32.model, fp32.tokenizer,
                                                                                      subjects)


@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_engine_matches_the_reference_in_bf16(models, kind):
    """The batched engine against ROME's per-cell method, both in bf16.

    Tolerance from bf16's precision: with eps = `bf16_logit_error` (each bf16 computation's logits within eps of
    the exact ones), two bf16 computations of one cell differ by at most 2 eps in every logit; log-softmax is
    2-Lipschitz and softmax 1/2-Lipschitz in the max norm, so log P may differ by 4 eps and P by eps (means over
    the samples likewise). The same tolerances bound each bf16 trace against the fp32 trace by half that, which is
    checked too, and the effects traced must exceed them for the comparison to mean anything."""
    from artifact.facts import load_facts
    from artifact.tracing import TraceConfig, calibrate_noise, trace_fact
    from artifact.tracing.reference import reference_trace

    bf16, fp32 = models
    prompt = taught_prompt(bf16)
    ids = torch.tensor(prompt.input_ids)
    noise = calibrate_noise(bf16.model, bf16.tokenizer, [fact.subject for fact in load_facts("own")])
    config = TraceConfig(kind=kind, samples=3, noise=noise, window=3, batch_size=16)
    eps = bf16_logit_error(bf16, fp32, ids, prompt.subject_range, noise, config.samples)
    assert 0 < eps < 0.1  # bf16 rounds (8 significant bits), but only that
    result = trace_fact(bf16.model, ids, prompt.subject_range, prompt.target_id, config)
    expected = reference_trace(bf16.model, ids, prompt.subject_range, prompt.target_id, config)
    exact = trace_fact(fp32.model, ids, prompt.subject_range, prompt.target_id, config)
    np.testing.assert_allclose(result.scores, expected["scores"], atol=eps, rtol=0)
    np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=4 * eps, rtol=0)
    assert abs(result.low_score - expected["low_score"]) <= eps
    assert abs(result.high_score - expected["high_score"]) <= eps
    np.testing.assert_allclose(result.scores, exact.scores, atol=eps / 2, rtol=0)
    np.testing.assert_allclose(result.logprobs, exact.logprobs, atol=2 * eps, rtol=0)
    assert result.scores.dtype == np.float64  # scores leave the model as fp32 softmax, averaged in float64
    assert np.nanmax(np.abs(result.scores - result.low_score)) > 2 * eps  # the corruption matters at this scale


def test_known_filter_in_bf16_equals_one_prompt_at_a_time(models):
    """Every fact of the own set, T->T, in bf16: the filter's checks equal those of a plain unpadded forward of each
    prompt alone (what `Spiritlm.generate` runs), bitwise; and the filter never batches prompts in bf16."""
    from artifact.facts import load_facts
    from artifact.known import answer_margins, batching_rule, check_known, text_mode_banned_ids
    from artifact.core.speechtext import SPIRITLM_FORMAT
    from artifact.prompts.build import text_prompt_string
    from artifact.prompts.tokens import encode

    bf16, _ = models
    facts = load_facts("own")
    batches = []
    handle = bf16.model.model.register_forward_pre_hook(
        lambda _module, args, kwargs: batches.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        checks = check_known(bf16, facts, batch_size=32, progress=False)
    finally:
        handle.remove()
    assert batches and all(rows == 1 for rows, _ in batches), batches[:3]
    banned = text_mode_banned_ids(bf16.tokenizer)
    for fact, check in zip(facts, checks):
        if check.problem:
            continue
        ids = torch.tensor(encode(bf16.tokenizer, text_prompt_string(fact.prompt, SPIRITLM_FORMAT)))
        with torch.no_grad():
            logits = bf16.model(ids[None]).logits[:, -1].float()  # [1, vocab]
        assert check.margin == answer_margins(logits, [check.answer_id], banned)[0], fact.known_id
    assert sum(c.known for c in checks) >= 40  # the taught facts, at least
    assert "one prompt per forward" in batching_rule(torch.bfloat16)  # appended to the rule in known.json
    assert batching_rule(torch.float32) == batching_rule(torch.float64) == ""


def test_known_margins_in_bf16_lie_within_the_measured_bound(models):
    """The Known margins of the bf16 model against the same weights in fp32 (bf16 widened exactly, near the exact
    computation): every fact's margin moves by at most half the bf16 bound of known_margins.py (the bound is 2 x 2 x
    one run's largest error, measured on the embedded model), and bf16 does move them (it rounds). So a Known flip
    that verify calls float noise in bf16 is one a bf16 model of this shape can produce (issue 28, part 6)."""
    from artifact.facts import load_facts
    from artifact.known import check_known
    from artifact.verification.known_margins import margin_bound

    bf16, fp32 = models
    facts = load_facts("own")
    pairs = zip(check_known(bf16, facts, progress=False), check_known(fp32, facts, progress=False))
    moved = [abs(a.margin - b.margin) for a, b in pairs if a.margin is not None and b.margin is not None]
    bound = margin_bound({"dtype": "torch.bfloat16"})
    assert bound is not None and moved
    assert 0 < max(moved) <= bound / 2, (max(moved), bound)
