"""Attention knockout on tiny seeded Llama and GPT-2 models: the one-batch implementation equals one forward per
window centre (1e-5), the clean row is the model's own output, blocking nothing changes nothing, and blocking every
earlier position in every layer leaves the last token attending to itself only, which a one-token forward computes
independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models.adapters import ModelAdapter
from artifact.tracing.knockout import knockout, knockout_reference, window_layers

PROMPT = torch.tensor([5, 17, 42, 8, 91, 23, 60])


@pytest.fixture(params=["llama", "gpt2"])
def model(request, llama_tiny, gpt2_tiny):
    return {"llama": llama_tiny, "gpt2": gpt2_tiny}[request.param]


def _plain_probs(model, input_ids, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(input_ids=input_ids[None], **kwargs).logits[0, -1].float(), -1)


@pytest.mark.parametrize("fast", [True, False], ids=["last-position-only", "full-forward"])
def test_one_batch_equals_one_forward_per_window(model, fast):
    adapter = ModelAdapter(model)
    fast_clean, fast = knockout(model, adapter, PROMPT, target_id=11, targets=[1, 2, 3], window=3, fast=fast)
    slow_clean, slow = knockout_reference(model, adapter, PROMPT, target_id=11, targets=[1, 2, 3], window=3)
    assert fast.shape == (adapter.num_layers,)
    np.testing.assert_allclose(fast, slow, atol=1e-5, rtol=0)
    assert fast_clean == pytest.approx(slow_clean, abs=1e-6)
    assert fast_clean == pytest.approx(float(_plain_probs(model, PROMPT)[11]), abs=1e-5)  # the clean row is the model
    assert np.max(np.abs(fast - fast_clean)) > 1e-4  # blocking the subject edges does change the prediction


def test_blocking_nothing_changes_nothing(model):
    adapter = ModelAdapter(model)
    clean, probs = knockout(model, adapter, PROMPT, target_id=11, targets=[], window=3)
    np.testing.assert_allclose(probs, clean, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fast", [True, False], ids=["last-position-only", "full-forward"])
def test_the_last_token_attending_only_to_itself(model, fast):
    """Every edge from the last token to earlier ones blocked in every layer: its output depends on its own token
    and position only, which a one-token forward at that position gives."""
    adapter = ModelAdapter(model)
    L, last = adapter.num_layers, len(PROMPT) - 1
    _, probs = knockout(model, adapter, PROMPT, target_id=11, targets=range(last), window=2 * L + 1, fast=fast)
    position = {"position_ids": torch.tensor([[last]])}  # rotary: irrelevant for self-attention; GPT-2: learned
    alone = float(_plain_probs(model, PROMPT[-1:], **position)[11])
    np.testing.assert_allclose(probs, alone, atol=1e-5, rtol=0)


def test_window_rule_and_bad_edges(model):
    assert list(window_layers(0, 9, 30)) == list(range(0, 5)) and list(window_layers(15, 9, 30)) == list(range(11, 20))
    with pytest.raises(ValueError, match="at or before it"):
        knockout(model, ModelAdapter(model), PROMPT, target_id=11, targets=[3], source=2)
