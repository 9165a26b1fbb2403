"""Cross-modal activation patching on tiny seeded Llama and GPT-2 models: the prompt's own clean state patched into
itself is ordinary causal tracing (ROME's cell-by-cell loop, reference_trace, to 1e-5); with a foreign donor (another
prompt's clean run) the batched implementation equals one forward per layer, and the donor matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models.adapters import ModelAdapter
from artifact.tracing.config import TraceConfig
from artifact.tracing.crossmodal import cross_patch, cross_patch_reference, donor_states
from artifact.tracing.reference import reference_trace

TARGET_PROMPT = torch.tensor([5, 17, 42, 8, 91, 23, 60, 12])  # "speech": subject at 2..5
SUBJECT = (2, 5)
DONOR_PROMPT = torch.tensor([7, 42, 8, 33, 60])  # "text": its last subject token at 2
TARGET = 11


@pytest.fixture(params=["llama", "gpt2"])
def model(request, llama_tiny, gpt2_tiny):
    return {"llama": llama_tiny, "gpt2": gpt2_tiny}[request.param]


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "hooks"])
@pytest.mark.parametrize("kind, window", [("hidden", 1), ("mlp", 3), ("attn", 3)])
def test_own_clean_state_is_ordinary_causal_tracing(model, kind, window, fast):
    adapter = ModelAdapter(model)
    config = TraceConfig(kind=kind, samples=3, noise=0.5, window=window, batch_size=7)
    last_subject = SUBJECT[1] - 1
    own = donor_states(model, adapter, TARGET_PROMPT, last_subject, kind)
    probs, logps = cross_patch(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, last_subject, own, config, fast=fast)
    rome = reference_trace(model, TARGET_PROMPT, SUBJECT, TARGET,
                           TraceConfig(kind=kind, samples=3, noise=0.5, window=window, positions=(last_subject,)))
    np.testing.assert_allclose(probs, rome["scores"][last_subject], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logps, rome["logprobs"][last_subject], atol=1e-5, rtol=0)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "hooks"])
@pytest.mark.parametrize("kind, position", [("mlp", 4), ("hidden", 4), ("attn", 7)])
def test_a_foreign_donor_batched_equals_one_forward_per_layer(model, fast, kind, position):
    adapter = ModelAdapter(model)
    config = TraceConfig(kind=kind, samples=3, noise=0.5, window=3, batch_size=5)
    donor = donor_states(model, adapter, DONOR_PROMPT, 2, kind)
    batched = cross_patch(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, position, donor, config, fast=fast)
    slow = cross_patch_reference(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, position, donor, config)
    np.testing.assert_allclose(batched[0], slow[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched[1], slow[1], atol=1e-5, rtol=0)
    own = donor_states(model, adapter, TARGET_PROMPT, position, kind)
    mine = cross_patch(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, position, own, config, fast=fast)
    assert np.max(np.abs(batched[0] - mine[0])) > 1e-4  # whose state is written matters


def test_one_cached_receiver_serves_every_kind_and_position(model):
    """The pipeline builds the receiver's cache once and patches every kind and position into it: the same numbers
    as a fresh cross_patch each time, and its cached low/high are the plain corrupted and clean scores."""
    from artifact.tracing.crossmodal import patch_receiver, receiver
    from artifact.tracing.hooks import prepare_context

    adapter = ModelAdapter(model)
    base = TraceConfig(samples=2, noise=0.5, window=3, batch_size=6)
    tracer = receiver(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, base)
    _, high, low = prepare_context(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, base)
    np.testing.assert_allclose(tracer.cache.low, low, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tracer.cache.high, high, atol=1e-6, rtol=0)
    for kind in ("hidden", "attn"):
        config = TraceConfig(kind=kind, samples=2, noise=0.5, window=3, batch_size=6)
        for position in (4, 7):
            donor = donor_states(model, adapter, DONOR_PROMPT, 2, kind)
            shared = patch_receiver(tracer, position, donor, config)
            fresh = cross_patch(model, adapter, TARGET_PROMPT, SUBJECT, TARGET, position, donor, config)
            np.testing.assert_array_equal(shared[0], fresh[0])


def test_bad_inputs_say_what_is_wrong(model):
    adapter = ModelAdapter(model)
    donor = donor_states(model, adapter, DONOR_PROMPT, 2, "hidden")
    config = TraceConfig(samples=2, noise=0.5)
    with pytest.raises(ValueError, match="must lie in the prompt"):
        cross_patch(model, adapter, TARGET_PROMPT, (2, 5), TARGET, 9, donor, config)
    with pytest.raises(ValueError, match="same model"):
        cross_patch(model, adapter, TARGET_PROMPT, (2, 5), TARGET, 4, donor[:2], config)
