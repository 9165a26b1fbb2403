"""The batched engine equals ROME's plain per-cell method (the reference) on tiny Llama and GPT-2 models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.tracing import Patch, TraceConfig, trace_fact
from artifact.tracing.hooks import prepare_context, run_groups
from artifact.tracing.reference import reference_trace
from tests.conftest import tiny_llama

INPUT_IDS = torch.tensor([5, 17, 42, 8, 33, 61, 2, 90, 14])
SUBJECT = (2, 5)


def argmax_target(model) -> int:
    """The clean run's top token, as ROME traces it."""
    with torch.no_grad():
        return int(model(INPUT_IDS[None]).logits[0, -1].argmax())


@pytest.mark.parametrize("family", ["llama_tiny", "gpt2_tiny"])
@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_engine_matches_reference(request, family, kind):
    model = request.getfixturevalue(family)
    TARGET = argmax_target(model)
    config = TraceConfig(kind=kind, samples=4, noise=0.5, window=3, batch_size=20)
    result = trace_fact(model, INPUT_IDS, SUBJECT, TARGET, config)
    expected = reference_trace(model, INPUT_IDS, SUBJECT, TARGET, config)
    assert result.scores.shape == (len(INPUT_IDS), 4)
    np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-5, rtol=0)
    assert result.low_score == pytest.approx(expected["low_score"], abs=1e-6)
    assert result.high_score == pytest.approx(expected["high_score"], abs=1e-6)
    # The corruption must matter on these seeded models, or the comparison above would be vacuous.
    assert np.nanmax(np.abs(result.scores - result.low_score)) > 1e-3


def test_window_larger_than_model_and_window_one(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    for window in (1, 11):
        config = TraceConfig(kind="mlp", samples=3, noise=0.5, window=window)
        result = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
        expected = reference_trace(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
        np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0)


def test_positions_subset_leaves_other_cells_nan(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    config = TraceConfig(kind="hidden", samples=3, noise=0.5, positions=(4, 1, 8))
    result = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
    full = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(kind="hidden", samples=3, noise=0.5))
    traced = [1, 4, 8]
    assert np.isnan(np.delete(result.scores, traced, axis=0)).all()
    np.testing.assert_allclose(result.scores[traced], full.scores[traced], atol=1e-6)


def test_tokens_before_subject_equal_low_score(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    config = TraceConfig(kind="hidden", samples=3, noise=0.5)
    result = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
    assert (result.scores[: SUBJECT[0]] == result.low_score).all()


def test_bitwise_repeatable_and_batch_size_invariant(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    config = TraceConfig(kind="attn", samples=5, noise=0.5, batch_size=15)
    first = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
    second = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, config)
    assert np.array_equal(first.scores, second.scores) and np.array_equal(first.logprobs, second.logprobs)
    other = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(kind="attn", samples=5, noise=0.5,
                                                                           batch_size=5))
    np.testing.assert_allclose(first.scores, other.scores, atol=1e-5, rtol=0)


def test_seed_changes_noise(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    a = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(samples=3, noise=0.5, seed=1))
    b = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(samples=3, noise=0.5, seed=2))
    assert a.low_score != b.low_score


def test_zero_noise_means_no_effect(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    result = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(samples=2, noise=0.0))
    assert result.low_score == pytest.approx(result.high_score, abs=1e-6)
    np.testing.assert_allclose(result.scores, result.high_score, atol=1e-6)


def test_restoring_everything_and_corrupt_source(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    config = TraceConfig(samples=4, noise=0.5)
    ctx, (high, _), (low, _) = prepare_context(llama_tiny, _adapter(llama_tiny), INPUT_IDS, SUBJECT, TARGET, config,
                                               corrupt_kinds=("mlp",))
    everything = [Patch("hidden", layer, t) for layer in range(4) for t in range(len(INPUT_IDS))]
    frozen = [Patch("mlp", layer, t, source="corrupt") for layer in range(4) for t in range(len(INPUT_IDS))]
    probs, _ = run_groups(ctx, [everything, frozen, []], batch_size=100)
    assert probs[0] == pytest.approx(high, abs=1e-6)
    assert probs[1] == pytest.approx(low, abs=1e-6)  # freezing at corrupted values reproduces the corrupted run
    assert probs[2] == pytest.approx(low, abs=1e-6)  # same run, other batch size


def _adapter(model):
    from artifact.models import ModelAdapter

    return ModelAdapter(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(samples=0), "samples"),
        (dict(window=0), "window"),
        (dict(kind="resid"), "kind"),
        (dict(noise=-1.0), "noise"),
        (dict(batch_size=0), "batch_size"),
        (dict(positions=(1, 1)), "positions"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TraceConfig(**kwargs)


def test_bad_inputs_are_clear_errors(llama_tiny):
    TARGET = argmax_target(llama_tiny)
    config = TraceConfig(samples=2)
    with pytest.raises(ValueError, match="1-D LongTensor"):
        trace_fact(llama_tiny, INPUT_IDS[None], SUBJECT, TARGET, config)
    with pytest.raises(ValueError, match="empty"):
        trace_fact(llama_tiny, torch.tensor([], dtype=torch.long), (0, 1), TARGET, config)
    with pytest.raises(ValueError, match="subject_range"):
        trace_fact(llama_tiny, INPUT_IDS, (3, 30), TARGET, config)
    with pytest.raises(ValueError, match="target_id"):
        trace_fact(llama_tiny, INPUT_IDS, SUBJECT, 10_000 + TARGET, config)
    with pytest.raises(ValueError, match="positions"):
        trace_fact(llama_tiny, INPUT_IDS, SUBJECT, TARGET, TraceConfig(samples=2, positions=(40,)))


def test_config_round_trip():
    config = TraceConfig(kind="mlp", samples=3, noise=0.25, positions=(5, 2))
    assert config.positions == (2, 5)
    assert TraceConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown TraceConfig"):
        TraceConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_other_llama_family_members_trace(request):
    for model_type in ("mistral", "qwen2"):
        model = tiny_llama(model_type)
        TARGET = argmax_target(model)
        config = TraceConfig(kind="mlp", samples=2, noise=0.5, window=2, positions=(3, 8))
        result = trace_fact(model, INPUT_IDS, SUBJECT, TARGET, config)
        expected = reference_trace(model, INPUT_IDS, SUBJECT, TARGET, config)
        np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0, equal_nan=True)


# --- the fast path (layer stepping) and the generic hook path, against the reference -------------------------------

def _model(name: str, attn_implementation: str = "sdpa"):
    from tests.conftest import tiny_gpt2

    model = tiny_gpt2() if name == "gpt2" else tiny_llama(name)
    model.config._attn_implementation = attn_implementation
    return model


@pytest.mark.parametrize("name", ["llama", "mistral", "qwen2", "gpt2"])
def test_fast_path_is_used_for_supported_families(name):
    from artifact.models import ModelAdapter
    from artifact.models.stepping import stepper_for

    model = _model(name)
    assert stepper_for(model, ModelAdapter(model), len(INPUT_IDS)) is not None


@pytest.mark.parametrize("name, attn", [("llama", "eager"), ("qwen2", "sdpa"), ("gpt2", "eager"), ("gpt2", "sdpa")])
@pytest.mark.parametrize("kind, window", [("hidden", 1), ("mlp", 1), ("mlp", 3), ("attn", 2), ("attn", 11)])
def test_fast_path_matches_reference(name, attn, kind, window):
    model = _model(name, attn)
    torch.manual_seed(0)
    ids = torch.randint(0, 97, (11,))
    subject = (1, 4)
    with torch.no_grad():
        target = int(model(ids[None]).logits[0, -1].argmax())
    for batch_size, positions in ((3, None), (10, (0, 3, 6, 10))):  # one cell per chunk; several, and a subset
        config = TraceConfig(kind=kind, samples=3, noise=0.5, window=window, batch_size=batch_size,
                             positions=positions)
        result = trace_fact(model, ids, subject, target, config)
        expected = reference_trace(model, ids, subject, target, config)
        np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0, equal_nan=True)
        np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-5, rtol=0, equal_nan=True)
        assert result.low_score == pytest.approx(expected["low_score"], abs=1e-6)
        assert result.low_logprob == pytest.approx(expected["low_logprob"], abs=1e-5)
        assert result.high_score == pytest.approx(expected["high_score"], abs=1e-6)
        assert np.nanmax(np.abs(result.scores - result.low_score)) > 1e-3


@pytest.mark.parametrize("family", ["llama_tiny", "gpt2_tiny"])
def test_generic_path_matches_reference(request, family):
    from artifact.models import ModelAdapter
    from artifact.tracing.hooks import trace_generic

    model = request.getfixturevalue(family)
    TARGET = argmax_target(model)
    config = TraceConfig(kind="mlp", samples=3, noise=0.5, window=3, batch_size=9)
    from artifact.tracing.corruption import sample_mean

    high, low, per_sample, per_sample_lp = trace_generic(model, ModelAdapter(model), INPUT_IDS, SUBJECT, TARGET,
                                                         config, range(len(INPUT_IDS)), None)
    assert per_sample.shape == (3, len(INPUT_IDS), 4) and low.shape == (2, 3)
    scores, logprobs, low = sample_mean(per_sample), sample_mean(per_sample_lp), sample_mean(low.T)
    expected = reference_trace(model, INPUT_IDS, SUBJECT, TARGET, config)
    np.testing.assert_allclose(scores, expected["scores"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logprobs, expected["logprobs"], atol=1e-5, rtol=0)
    fast = trace_fact(model, INPUT_IDS, SUBJECT, TARGET, config)
    np.testing.assert_allclose(fast.scores, scores, atol=1e-5, rtol=0)
    assert low[0] == pytest.approx(fast.low_score, abs=1e-6) and high[0] == pytest.approx(fast.high_score, abs=1e-6)


def test_unsupported_configuration_falls_back_to_generic_path():
    from artifact.models import ModelAdapter
    from artifact.models.stepping import stepper_for, unsupported_reason

    model = tiny_llama("mistral")
    model.config.sliding_window = 4  # shorter than the prompt: the stepper's plain causal mask would be wrong
    adapter = ModelAdapter(model)
    assert "sliding window" in unsupported_reason(model, adapter, len(INPUT_IDS))
    assert stepper_for(model, adapter, len(INPUT_IDS)) is None
    TARGET = argmax_target(model)
    config = TraceConfig(kind="attn", samples=2, noise=0.5, window=2, positions=(2, 8))
    result = trace_fact(model, INPUT_IDS, SUBJECT, TARGET, config)
    expected = reference_trace(model, INPUT_IDS, SUBJECT, TARGET, config)
    np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0, equal_nan=True)


def test_fast_path_bitwise_repeatable_per_batch_size(gpt2_tiny):
    TARGET = argmax_target(gpt2_tiny)
    for batch_size in (4, 8, 100):
        config = TraceConfig(kind="mlp", samples=4, noise=0.5, window=3, batch_size=batch_size)
        first = trace_fact(gpt2_tiny, INPUT_IDS, SUBJECT, TARGET, config)
        second = trace_fact(gpt2_tiny, INPUT_IDS, SUBJECT, TARGET, config)
        assert np.array_equal(first.scores, second.scores) and np.array_equal(first.logprobs, second.logprobs)


def test_flop_counts():
    from artifact.tracing.flops import ModelShape, least_flops, reference_flops

    shape = ModelShape.from_config(tiny_llama().config)
    assert (shape.layers, shape.d_model, shape.kv_heads, shape.mlp_matrices) == (4, 32, 2, 3)
    # one block, one token attending to itself: q, o (32x32), k, v (32x16), 3 MLP matrices (32x64), attention
    assert shape.layer(1, 1) == 2 * (2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64) + 4 * 8 * 4
    full = reference_flops(shape, 9, 10, 9)
    for kind in ("hidden", "mlp", "attn"):
        least = least_flops(shape, 9, 10, 2, range(9), TraceConfig(kind=kind))
        assert 1 < full / least < 20
    # a token before the subject costs nothing beyond the clean and corrupted runs
    base = least_flops(shape, 9, 10, 2, (), TraceConfig())
    assert least_flops(shape, 9, 10, 2, (0, 1), TraceConfig()) == base == 11 * shape.forward(9, 1)


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_fast_path_is_exact_in_float64(name):
    """In float64 (softmax included: `score_precision` keeps a float64 model's logits float64) the two agree to
    float64 rounding: a gap of ~1e-7 in fp32 runs is the rounding of different batch shapes only."""
    model = _model(name).double()
    TARGET = argmax_target(model)
    for kind in ("hidden", "mlp", "attn"):
        config = TraceConfig(kind=kind, samples=3, noise=0.5, window=3, batch_size=6)
        result = trace_fact(model, INPUT_IDS, SUBJECT, TARGET, config)
        expected = reference_trace(model, INPUT_IDS, SUBJECT, TARGET, config)
        np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-12, rtol=0)
        np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-12, rtol=0)
