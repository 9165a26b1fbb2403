"""Logit lens: the one-forward implementation equals the plain per-layer oracle on tiny seeded Llama and GPT-2 models,
and its last layer at the last position is the model's own output distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models.adapters import ModelAdapter
from artifact.tracing.lens import lens_reference, logit_lens

PROMPT = torch.tensor([5, 17, 42, 8, 91, 23, 60])


@pytest.fixture(params=["llama", "gpt2"])
def model(request, llama_tiny, gpt2_tiny):
    return {"llama": llama_tiny, "gpt2": gpt2_tiny}[request.param]


def test_one_forward_equals_the_oracle(model):
    adapter = ModelAdapter(model)
    positions = [2, 4, 6]
    banned = [0, 1, 13]
    fast = logit_lens(model, adapter, PROMPT, target_id=11, positions=positions, banned=banned)
    slow = lens_reference(model, adapter, PROMPT, target_id=11, positions=positions, banned=banned)
    assert fast.prob.shape == (3, adapter.num_layers) == fast.rank.shape
    np.testing.assert_allclose(fast.prob, slow.prob, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fast.rank, slow.rank)


def test_the_last_layer_is_the_models_own_prediction(model):
    adapter = ModelAdapter(model)
    with torch.no_grad():
        logits = model(input_ids=PROMPT[None]).logits[0].float()  # [pos, vocab]
    greedy = int(logits[-1].argmax())
    lens = logit_lens(model, adapter, PROMPT, target_id=greedy)
    np.testing.assert_allclose(lens.prob[:, -1], torch.softmax(logits, -1)[:, greedy].numpy(), atol=1e-5, rtol=0)
    assert lens.rank[-1, -1] == 0  # the greedy token is rank 0 at the output
    # ranks count the tokens above the answer; banning those tokens moves the answer up by as many
    second = int(logits[-1].argsort(descending=True)[1])
    above = logit_lens(model, adapter, PROMPT, target_id=second)
    assert above.rank[-1, -1] == 1
    assert logit_lens(model, adapter, PROMPT, target_id=second, banned=[greedy]).rank[-1, -1] == 0
