"""The severed-path trace (ROME Fig. 3) against ROME's plain two-pass computation, on tiny Llama and GPT-2."""


from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models import ModelAdapter
from artifact.models.adapters import main_tensor
from artifact.tracing import TraceConfig
from artifact.tracing.severed import severed_trace


def repatch_reference(model, input_ids, subject_range, target_id, config, token, layer, sever):
    """ROME's `trace_with_repatch`, one cell, plainly: pass 1 records the corrupted run's `sever` outputs; pass 2
    corrupts again, restores the block output at (token, layer) from the clean row 0 and overwrites `sever`'s output
    at `token` in every layer with pass 1's corrupted value. Rows: 0 clean, 1.. corrupted."""
    adapter = ModelAdapter(model)
    b, e = subject_range
    L = adapter.num_layers
    batch = input_ids[None].repeat(config.samples + 1, 1)

    def corrupt(_m, _i, output):
        rs = np.random.RandomState(config.seed)
        output[1:, b:e] += config.noise * torch.from_numpy(rs.randn(config.samples, e - b, output.shape[2]))
        return output

    recorded = {}

    def record(layer_):
        def hook(_m, _i, output):
            recorded[layer_] = main_tensor(output).detach().clone()
        return hook

    handles = [adapter.embed.register_forward_hook(corrupt)]
    if sever:
        handles += [adapter.module(sever, ly).register_forward_hook(record(ly)) for ly in range(L)]
    with torch.no_grad():
        model(input_ids=batch)
    for h in handles:
        h.remove()

    def restore(_m, _i, output):
        h = main_tensor(output)
        h[1:, token] = h[0, token]
        return output

    def freeze(layer_):
        def hook(_m, _i, output):
            main_tensor(output)[1:, token] = recorded[layer_][1:, token]
            return output
        return hook

    handles = [adapter.embed.register_forward_hook(corrupt), adapter.module("hidden", layer).register_forward_hook(restore)]
    if sever:
        handles += [adapter.module(sever, ly).register_forward_hook(freeze(ly)) for ly in range(L)]
    with torch.no_grad():
        logits = model(input_ids=batch).logits[1:, -1].float()
    for h in handles:
        h.remove()
    return float(torch.softmax(logits, dim=-1)[:, target_id].mean())


@pytest.mark.parametrize("family", ["llama_tiny", "gpt2_tiny"])
def test_severed_path_equals_plain_two_pass_computation(request, family):
    model = request.getfixturevalue(family)
    ids = torch.tensor([5, 17, 42, 8, 33, 61, 2, 90, 14])
    with torch.no_grad():
        target = int(model(ids[None]).logits[0, -1].argmax())
    config = TraceConfig(kind="hidden", samples=4, noise=0.5, batch_size=20)
    result = severed_trace(model, ids, (2, 5), target, config)
    assert result.token == 4
    for condition, sever in (("plain", None), ("mlp", "mlp"), ("attn", "attn")):
        expected = [repatch_reference(model, ids, (2, 5), target, config, 4, layer, sever) for layer in range(4)]
        np.testing.assert_allclose(result.scores[condition], expected, atol=1e-5, rtol=0)
    # Severing must change something on these models, or the comparison above would be vacuous.
    assert np.max(np.abs(result.scores["mlp"] - result.scores["plain"])) > 1e-3
    # Restoring the last layer's hidden state leaves nothing to sever.
    assert result.scores["mlp"][-1] == pytest.approx(result.scores["plain"][-1], abs=1e-6)
