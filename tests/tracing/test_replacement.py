"""Causal tracing with symmetric token replacement on tiny seeded Llama and GPT-2 models: the fast path and the hook
path equal ROME's cell-by-cell loop on [clean, replaced] (1e-5) for every kind; a cell equals a patched forward
written out by hand; and with two facts of one template, the replaced prompt *is* the partner's prompt, so the
corrupted run equals the partner's own clean run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models.adapters import ModelAdapter, main_tensor
from artifact.tracing.config import TraceConfig
from artifact.tracing.replacement import replaced_prompt, replacement_reference, trace_replacement

SUBJECT = (2, 5)
PROMPT_A = torch.tensor([5, 17, 42, 8, 91, 23, 60, 12])  # one template, two subjects of three tokens
PROMPT_B = torch.tensor([5, 17, 33, 71, 4, 23, 60, 12])


@pytest.fixture(params=["llama", "gpt2"])
def model(request, llama_tiny, gpt2_tiny):
    return {"llama": llama_tiny, "gpt2": gpt2_tiny}[request.param]


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids[None]).logits[0, -1].float()


def _targets(model) -> tuple[int, int]:
    """Each fact's answer: its clean argmax (B: its best token other than A's, so the two answers differ)."""
    a = int(_logits(model, PROMPT_A).argmax())
    b = next(int(t) for t in _logits(model, PROMPT_B).argsort(descending=True) if int(t) != a)
    return a, b


def _trace(model, config, fast=True, prompt=PROMPT_A, partner=PROMPT_B, swap=False):
    a, b = _targets(model)
    target, other = (b, a) if swap else (a, b)
    return trace_replacement(model, prompt, SUBJECT, target, partner[SUBJECT[0]:SUBJECT[1]].tolist(), other, config,
                             fast=fast)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "hooks"])
@pytest.mark.parametrize("kind, window", [("hidden", 1), ("mlp", 3), ("attn", 2)])
def test_batched_paths_equal_the_cell_by_cell_reference(model, kind, window, fast):
    config = TraceConfig(kind=kind, window=window, batch_size=3, samples=7, noise=0.9)  # samples/noise unused
    result = _trace(model, config, fast=fast)
    a, b = _targets(model)
    expected = replacement_reference(model, PROMPT_A, SUBJECT, a, PROMPT_B[2:5].tolist(), b, config)
    for name in ("scores", "logprobs", "logit_diffs"):
        np.testing.assert_allclose(getattr(result, name), expected[name], atol=1e-5, rtol=0)
    for name in ("low_score", "high_score", "low_logprob", "high_logprob", "low_logit_diff", "high_logit_diff"):
        assert getattr(result, name) == pytest.approx(expected[name], abs=1e-5)
    assert result.config.samples == 1 and result.config.noise == 0.0
    assert np.max(np.abs(result.scores - result.low_score)) > 1e-3  # restoring matters: the comparison is not vacuous
    assert np.max(np.abs(result.logit_diffs - result.low_logit_diff)) > 1e-2


def test_the_replaced_prompt_runs_as_the_partners_own_clean_run(model):
    """Same template: A with B's subject is B's prompt, token for token, so A's corrupted run is B's clean run."""
    a, b = _targets(model)
    a_by_b = _trace(model, TraceConfig(kind="hidden"))
    b_by_a = _trace(model, TraceConfig(kind="hidden"), prompt=PROMPT_B, partner=PROMPT_A, swap=True)
    np.testing.assert_array_equal(a_by_b.corrupted_ids, PROMPT_B.numpy())
    partner = _logits(model, PROMPT_B)
    assert a_by_b.low_score == pytest.approx(float(torch.softmax(partner, -1)[a]), abs=1e-5)
    assert a_by_b.low_logprob == pytest.approx(float(torch.log_softmax(partner, -1)[a]), abs=1e-5)
    assert a_by_b.low_logit_diff == pytest.approx(float(partner[a] - partner[b]), abs=1e-5)
    # the two directions mirror each other: A's corrupted run is B's clean run and vice versa
    assert a_by_b.low_logit_diff == pytest.approx(-b_by_a.high_logit_diff, abs=1e-5)
    assert b_by_a.low_logit_diff == pytest.approx(-a_by_b.high_logit_diff, abs=1e-5)
    assert a_by_b.high_logit_diff > 0  # A's answer is its clean argmax
    # restoring the last token's final state is the clean run itself
    assert a_by_b.scores[-1, -1] == pytest.approx(a_by_b.high_score, abs=1e-5)
    assert a_by_b.logit_diffs[-1, -1] == pytest.approx(a_by_b.high_logit_diff, abs=1e-4)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "hooks"])
def test_a_cell_equals_a_patched_forward_written_by_hand(model, fast):
    """Cell (token 4, layer 1), MLP with window 3: B's prompt with A's clean MLP outputs at token 4 in layers 0..2."""
    adapter = ModelAdapter(model)
    a, b = _targets(model)
    stored = {}

    def keep(layer):
        def hook(_module, _inputs, output):
            stored[layer] = main_tensor(output)[0, 4].clone()
        return hook

    handles = [adapter.module("mlp", layer).register_forward_hook(keep(layer)) for layer in range(3)]
    _logits(model, PROMPT_A)
    for handle in handles:
        handle.remove()

    def write(layer):
        def hook(_module, _inputs, output):
            main_tensor(output)[0, 4] = stored[layer]
            return output
        return hook

    patch = [adapter.module("mlp", layer).register_forward_hook(write(layer)) for layer in range(3)]
    logits = _logits(model, PROMPT_B)
    for handle in patch:
        handle.remove()
    result = _trace(model, TraceConfig(kind="mlp", window=3, positions=(4,)), fast=fast)
    assert result.scores[4, 1] == pytest.approx(float(torch.softmax(logits, -1)[a]), abs=1e-5)
    assert result.logit_diffs[4, 1] == pytest.approx(float(logits[a] - logits[b]), abs=1e-5)
    assert np.isnan(np.delete(result.scores, 4, axis=0)).all()  # untraced positions stay NaN


def test_before_the_subject_the_low_values_and_a_unit_span_of_another_length(llama_tiny):
    """Speech: a unit span replaced by a partner's span of the same count, the prompts otherwise different; cells
    before the subject are the corrupted run's values; repeatable bit for bit and across batch sizes."""
    speech = torch.tensor([1, 2, 61, 62, 63, 64, 65, 3, 9, 44, 21])  # [Speech]-like prefix, units at 2..7
    partner_units = [70, 71, 72, 73, 74]
    first = trace_replacement(llama_tiny, speech, (2, 7), 11, partner_units, 12, TraceConfig(kind="attn", window=3))
    again = trace_replacement(llama_tiny, speech, (2, 7), 11, partner_units, 12, TraceConfig(kind="attn", window=3))
    other = trace_replacement(llama_tiny, speech, (2, 7), 11, partner_units, 12,
                              TraceConfig(kind="attn", window=3, batch_size=2))
    expected = replacement_reference(llama_tiny, speech, (2, 7), 11, partner_units, 12, TraceConfig(kind="attn",
                                                                                                    window=3))
    assert np.array_equal(first.logit_diffs, again.logit_diffs) and np.array_equal(first.scores, again.scores)
    np.testing.assert_allclose(other.logit_diffs, first.logit_diffs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(first.logit_diffs, expected["logit_diffs"], atol=1e-5, rtol=0)
    assert (first.scores[:2] == first.low_score).all() and (first.logit_diffs[:2] == first.low_logit_diff).all()
    assert first.corrupted_ids.tolist() == [1, 2, 70, 71, 72, 73, 74, 3, 9, 44, 21]
    arrays = first.to_arrays()
    assert {"logit_diffs", "low_logit_diff", "corrupted_ids", "partner_target_id", "scores"} <= set(arrays)


def test_bad_inputs_say_what_is_wrong(llama_tiny):
    config = TraceConfig()
    with pytest.raises(ValueError, match="same length"):
        trace_replacement(llama_tiny, PROMPT_A, SUBJECT, 11, [1, 2], 12, config)
    with pytest.raises(ValueError, match="another answer"):
        trace_replacement(llama_tiny, PROMPT_A, SUBJECT, 11, [1, 2, 3], 11, config)
    with pytest.raises(ValueError, match="corrupt nothing"):
        replaced_prompt(PROMPT_A, SUBJECT, [42, 8, 91])
    with pytest.raises(ValueError, match="subject_range"):
        trace_replacement(llama_tiny, PROMPT_A, (6, 12), 11, [1, 2, 3], 12, config)
    with pytest.raises(ValueError, match="partner_target_id"):
        trace_replacement(llama_tiny, PROMPT_A, SUBJECT, 11, [1, 2, 3], 500, config)
    with pytest.raises(ValueError, match="positions"):
        trace_replacement(llama_tiny, PROMPT_A, SUBJECT, 11, [1, 2, 3], 12, TraceConfig(positions=(30,)))


def test_the_fast_tracer_takes_one_corruption():
    from artifact.models.stepping import stepper_for
    from artifact.tracing.fast import FastTracer
    from tests.conftest import tiny_llama

    model = tiny_llama()
    stepper = stepper_for(model, ModelAdapter(model), len(PROMPT_A))
    with pytest.raises(ValueError, match="either noise_delta"):
        FastTracer(stepper, PROMPT_A, SUBJECT, 11, None)
    with pytest.raises(ValueError, match="either noise_delta"):
        FastTracer(stepper, PROMPT_A, SUBJECT, 11, torch.zeros(2, 3, 32), corrupt_ids=PROMPT_B)
    with pytest.raises(ValueError, match="keeps the length"):
        FastTracer(stepper, PROMPT_A, SUBJECT, 11, None, corrupt_ids=PROMPT_B[:-1])


def test_on_the_real_embedded_model_the_colosseum_moves_the_eiffel_tower_to_rome(embedded):
    """SmolLM2-135M: 'Eiffel Tower' and 'Colosseum' are three tokens each in one template and the model answers
    Paris and Rome. With the Colosseum in its place the Eiffel Tower prompt is the Colosseum's: Rome wins (the logit
    difference turns negative); the fast path equals the cell-by-cell oracle at the last subject token; restoring the
    last token's final state is the clean run."""
    from artifact.prompts import answer_token_id, find_subject_range

    tok = embedded.tokenizer
    template = "The {} is located in the city of"
    eiffel, colosseum = template.format("Eiffel Tower"), template.format("Colosseum")
    ids_e, ids_c = (torch.tensor(tok(p)["input_ids"]) for p in (eiffel, colosseum))
    subject = find_subject_range(tok, eiffel, "Eiffel Tower")
    assert subject == find_subject_range(tok, colosseum, "Colosseum") and len(ids_e) == len(ids_c)
    paris, rome = answer_token_id(tok, eiffel, "Paris"), answer_token_id(tok, colosseum, "Rome")
    partner = ids_c[subject[0]:subject[1]].tolist()
    last = len(ids_e) - 1
    config = TraceConfig(kind="hidden", positions=(subject[1] - 1, last), batch_size=16)
    result = trace_replacement(embedded.model, ids_e, subject, paris, partner, rome, config)
    at = subject[1] - 1  # the oracle at the last subject token only (30 plain forwards)
    expected = replacement_reference(embedded.model, ids_e, subject, paris, partner, rome,
                                     TraceConfig(kind="hidden", positions=(at,)))
    expected = {name: expected[name][at] for name in ("scores", "logprobs", "logit_diffs")}
    np.testing.assert_allclose(result.scores[at], expected["scores"], atol=1e-5, rtol=0)
    # logit-scale metrics: fp32 logits of ~20 over a 49k vocabulary round at ~1e-6 relative with other batch shapes
    # (measured: 1.1e-5 absolute on a log P of -5.7), so these get 1e-5 relative on top of 1e-5 absolute
    for name in ("logprobs", "logit_diffs"):
        np.testing.assert_allclose(getattr(result, name)[at], expected[name], atol=1e-5, rtol=1e-5, err_msg=name)
    clean_c = _logits(embedded.model, ids_c)
    assert result.low_score == pytest.approx(float(torch.softmax(clean_c, -1)[paris]), abs=1e-5)
    assert result.high_logit_diff > 0 > result.low_logit_diff  # Paris over Rome, then Rome over Paris
    assert result.scores[last, -1] == pytest.approx(result.high_score, abs=1e-5)


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_both_paths_are_exact_in_float64(name):
    """In float64 the paths agree to the fp32 rounding of the final logits (all three cast logits to fp32): the
    fp32 gaps of ~1e-6 (log P, logit difference) are the rounding of different batch shapes only."""
    from tests.conftest import tiny_gpt2, tiny_llama

    model = (tiny_gpt2() if name == "gpt2" else tiny_llama()).double()
    for kind, window in (("hidden", 1), ("mlp", 3), ("attn", 2)):
        config = TraceConfig(kind=kind, window=window, batch_size=3)
        expected = replacement_reference(model, PROMPT_A, SUBJECT, 11, [33, 71, 4], 12, config)
        for fast in (True, False):
            result = trace_replacement(model, PROMPT_A, SUBJECT, 11, [33, 71, 4], 12, config, fast=fast)
            np.testing.assert_allclose(result.scores, expected["scores"], atol=3e-8, rtol=0)
            np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-6, rtol=0)
            np.testing.assert_allclose(result.logit_diffs, expected["logit_diffs"], atol=1e-6, rtol=0)
