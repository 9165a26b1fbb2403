"""The batched engine equals ROME's plain per-cell method (the reference) on tiny Llama and GPT-2 models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.tracing import Patch, TraceConfig, trace_fact
from artifact.tracing.engine import prepare_context, run_groups
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
