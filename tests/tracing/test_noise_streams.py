"""Noise streams (issue 28): ROME's single RandomState(seed) stream, or one independent stream per noise sample; and
the per-sample values every trace keeps beside its means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.tracing import TraceConfig, trace_fact
from artifact.tracing.corruption import noise_delta, sample_mean, standard_noise
from artifact.tracing.reference import reference_trace

INPUT_IDS = torch.tensor([5, 17, 42, 8, 33, 61, 2, 90, 14])
SUBJECT = (2, 5)


def argmax_target(model) -> int:
    with torch.no_grad():
        return int(model(INPUT_IDS[None]).logits[0, -1].argmax())


def test_per_sample_streams_are_the_documented_streams():
    seed, d = 7, 16
    draws = standard_noise(4, 3, d, seed, "per_sample")
    assert draws.shape == (4, 3, d) and draws.dtype == np.float64
    for s in range(4):  # sample s is stream (seed, s) drawn directly
        np.testing.assert_array_equal(draws[s], np.random.default_rng([seed, s]).standard_normal((3, d)))
    # a shorter subject sees the prefix of a longer one's noise, sample by sample (facts share the streams)
    np.testing.assert_array_equal(standard_noise(4, 2, d, seed, "per_sample"), draws[:, :2])
    # ROME's: one stream for all samples (and a shorter subject does NOT see a prefix of it, sample by sample)
    rome = standard_noise(4, 3, d, seed, "rome")
    np.testing.assert_array_equal(rome, np.random.RandomState(seed).randn(4, 3, d))
    assert not np.array_equal(standard_noise(4, 2, d, seed, "rome")[1], rome[1, :2])
    # the streams are independent draws: not ROME's, and another seed gives other noise
    assert not np.allclose(draws, rome) and not np.allclose(draws, standard_noise(4, 3, d, seed + 1, "per_sample"))
    np.testing.assert_array_equal(noise_delta(4, 3, d, 0.5, seed, "per_sample").numpy(), 0.5 * draws)


def test_bad_streams_and_seeds_are_refused():
    with pytest.raises(ValueError, match="noise_streams must be one of rome, per_sample"):
        TraceConfig(noise_streams="numpy")
    with pytest.raises(ValueError, match="seed >= 0"):
        standard_noise(2, 1, 4, -1, "per_sample")
    assert TraceConfig().noise_streams == "rome"  # ROME's stream stays the trace default
    assert TraceConfig.from_dict({**TraceConfig().to_dict(), "noise_streams": "per_sample"}).noise_streams == "per_sample"
    old = TraceConfig().to_dict()
    assert "noise_streams" not in old  # ROME's is left out: stored configs read (and are written) as before the field
    assert TraceConfig.from_dict(old).noise_streams == "rome"
    assert TraceConfig(noise_streams="per_sample").to_dict()["noise_streams"] == "per_sample"


@pytest.mark.parametrize("family", ["llama_tiny", "gpt2_tiny"])
@pytest.mark.parametrize("kind", ["hidden", "mlp"])
def test_engine_with_per_sample_streams_matches_reference(request, family, kind):
    model = request.getfixturevalue(family)
    target = argmax_target(model)
    config = TraceConfig(kind=kind, samples=3, noise=0.5, window=3, batch_size=12, noise_streams="per_sample")
    result = trace_fact(model, INPUT_IDS, SUBJECT, target, config)
    expected = reference_trace(model, INPUT_IDS, SUBJECT, target, config)  # draws the streams itself
    np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-5, rtol=0)
    assert result.low_score == pytest.approx(expected["low_score"], abs=1e-6)
    rome = trace_fact(model, INPUT_IDS, SUBJECT, target, TraceConfig(kind=kind, samples=3, noise=0.5, window=3))
    assert np.nanmax(np.abs(rome.scores - result.scores)) > 1e-4  # the streams matter


@pytest.mark.parametrize("streams", ["rome", "per_sample"])
@pytest.mark.parametrize("generic", [False, True])
def test_per_sample_values_are_kept_and_their_mean_is_the_stored_mean_bitwise(llama_tiny, monkeypatch, streams,
                                                                            generic):
    if generic:  # the hook path, as for families without a layer stepper
        monkeypatch.setattr("artifact.tracing.engine.stepper_for", lambda *args: None)
    target = argmax_target(llama_tiny)
    config = TraceConfig(kind="attn", samples=10, noise=0.5, window=2, batch_size=30, noise_streams=streams,
                         positions=(0, 3, 4, 8))
    result = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, target, config)
    S, T, L = 10, len(INPUT_IDS), 4
    assert result.scores_per_sample.shape == result.logprobs_per_sample.shape == (S, T, L)
    assert result.low_score_per_sample.shape == result.low_logprob_per_sample.shape == (S,)
    np.testing.assert_array_equal(sample_mean(result.scores_per_sample), result.scores)
    np.testing.assert_array_equal(result.scores_per_sample.mean(axis=0), result.scores)
    np.testing.assert_array_equal(sample_mean(result.logprobs_per_sample), result.logprobs)
    assert sample_mean(result.low_score_per_sample) == result.low_score
    assert sample_mean(result.low_logprob_per_sample) == result.low_logprob
    assert (result.scores[0] == result.low_score).all()  # before the subject: the low score, per sample too
    np.testing.assert_array_equal(result.scores_per_sample[:, 0], np.repeat(result.low_score_per_sample[:, None], L, 1))
    assert np.isnan(result.scores_per_sample[:, [1, 2, 5, 6, 7]]).all()  # untraced positions
    assert np.nanstd(result.scores_per_sample[:, 3], axis=0).max() > 1e-4  # the samples differ
    arrays = result.to_arrays()
    for name in ("scores_per_sample", "logprobs_per_sample", "low_score_per_sample", "low_logprob_per_sample"):
        np.testing.assert_array_equal(arrays[name], getattr(result, name))
    # sample s's numbers do not depend on how many samples run beside it: sample s is its own stream (per_sample),
    # or the same slice of ROME's one stream
    fewer = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, target, TraceConfig(
        kind="attn", samples=4, noise=0.5, window=2, batch_size=30, noise_streams=streams, positions=(0, 3, 4, 8)))
    np.testing.assert_allclose(fewer.scores_per_sample, result.scores_per_sample[:4], atol=1e-6, equal_nan=True)


def test_cross_modal_patching_keeps_per_sample_values(llama_tiny):
    """The carry-over step's receiver gives per-sample values whose means are its patched scores, bitwise, and whose
    samples come from the config's streams (own clean state patched in = ordinary tracing, per sample)."""
    from artifact.models.adapters import ModelAdapter
    from artifact.tracing.crossmodal import donor_states, patch_receiver, patch_receiver_samples, receiver

    adapter = ModelAdapter(llama_tiny)
    target = argmax_target(llama_tiny)
    config = TraceConfig(kind="hidden", samples=3, noise=0.5, batch_size=6, noise_streams="per_sample")
    tracer = receiver(llama_tiny, adapter, INPUT_IDS, SUBJECT, target, config)
    own = donor_states(llama_tiny, adapter, INPUT_IDS, 4, "hidden")
    values = patch_receiver_samples(tracer, 4, own, config)
    assert values.shape == (2, 4, 3)
    probs, logps = patch_receiver(tracer, 4, own, config)
    np.testing.assert_array_equal(sample_mean(values[0].T), probs)
    np.testing.assert_array_equal(sample_mean(values[1].T), logps)
    traced = trace_fact(llama_tiny, INPUT_IDS, SUBJECT, target, config)
    np.testing.assert_allclose(values[0].T, traced.scores_per_sample[:, 4], atol=1e-6, rtol=0)
    np.testing.assert_allclose(tracer.cache.low_samples[0], traced.low_score_per_sample, atol=1e-7, rtol=0)


def test_streams_are_recorded_in_the_run_settings_and_the_same_seed_tier_needs_equal_streams():
    from pathlib import Path

    from artifact.verification.load import ArmData
    from artifact.verification.same_seed import same_noise, streams_differ
    from tests.support.tiny_runs import tiny_settings

    rome, per_sample = tiny_settings(), tiny_settings(noise_streams="per_sample")
    assert "noise_streams" not in rome.key_dict()  # ROME's: the folder names of older runs do not move
    assert per_sample.key() != rome.key() and per_sample.to_dict()["noise_streams"] == "per_sample"
    with pytest.raises(ValueError, match="noise_streams must be one of"):
        tiny_settings(noise_streams="other")

    def arm(settings):
        return ArmData("t2t", Path("."), settings, None)

    old = {k: v for k, v in rome.to_dict().items() if k != "noise_streams"}  # recorded before the field existed
    assert same_noise(arm(rome.to_dict()), arm(old)) and streams_differ(arm(rome.to_dict()), arm(old)) is None
    assert not same_noise(arm(per_sample.to_dict()), arm(old))  # same seed, other streams: another noise draw
    message = streams_differ(arm(per_sample.to_dict()), arm(old))
    assert "from 'per_sample' streams, the expected run from 'rome' ones" in message
    assert "rerun with noise streams 'rome'" in message
