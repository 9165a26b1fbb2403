"""Cross-modal activation patching (issue 18's first analysis): corrupt a prompt's subject as causal tracing does, and
at one layer (a window of layers for mlp/attn, as the engine) write into one position the state a *donor* run
computed, e.g. the clean T->T run's state at the last subject text token into the corrupted S->T run at the last
subject speech token. The recovered P(answer) per layer says where the two modalities share a representation the
model can use. With the prompt's own clean run as donor at the same position it is ordinary causal tracing.

Pure: tensors in, arrays out. `donor_states` takes the donor's states in one forward; `cross_patch` runs every
layer's patch as its own group of noise samples, on the engine's fast path where the family has a layer stepper
(`receiver` builds its corrupted-run cache once, `patch_receiver` reuses it for any state, position and donor) and
in hook-patched batches otherwise; `cross_patch_reference` runs one plain forward per layer.
"""

from __future__ import annotations

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, main_tensor
from artifact.models.stepping import stepper_for
from artifact.tracing.config import TraceConfig
from artifact.tracing.corruption import noise_delta, sample_mean
from artifact.tracing.fast import FastTracer
from artifact.tracing.hooks import attached, final_logits


def donor_states(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, position: int,
                 kind: str) -> torch.Tensor:
    """[layer, d_model] the clean run's `kind` output (hidden, mlp, attn) at `position` of every layer."""
    states: dict[int, torch.Tensor] = {}

    def keeper(layer: int):
        def keep(_module, _inputs, output):
            states[layer] = main_tensor(output)[0, position].detach().clone()
        return keep

    handles = [adapter.module(kind, layer).register_forward_hook(keeper(layer)) for layer in range(adapter.num_layers)]
    with attached(handles), torch.no_grad():
        model(input_ids=input_ids[None].to(adapter.embed.weight.device))
    return torch.stack([states[layer] for layer in range(adapter.num_layers)])


def _patched_run(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor,
                 subject_range: tuple[int, int], target_id: int, position: int, donor: torch.Tensor,
                 config: TraceConfig, centres: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean P(answer) and mean log P over the noise samples, per centre layer, for the given centres in one batch."""
    b, e = subject_range
    S, L = config.samples, adapter.num_layers
    device = adapter.embed.weight.device
    rows = len(centres) * S
    delta = noise_delta(S, e - b, donor.shape[1], config.noise, config.seed, config.noise_streams).to(device)  # [S, subject, d]

    def corrupt(_module, _inputs, output):
        output.view(len(centres), S, *output.shape[1:])[:, :, b:e] += delta  # every group sees the same noise
        return output

    def patcher(layer: int):
        groups = [g for g, centre in enumerate(centres) if layer in config.restored_layers(centre, L)]

        def patch(_module, _inputs, output):
            h = main_tensor(output)
            for g in groups:
                h[g * S:(g + 1) * S, position] = donor[layer].to(h.dtype)
            return output
        return patch, bool(groups)

    handles = [adapter.embed.register_forward_hook(corrupt)]
    for layer in range(L):
        hook, used = patcher(layer)
        if used:
            handles.append(adapter.module(config.kind, layer).register_forward_hook(hook))
    with attached(handles), torch.no_grad():
        logits = final_logits(model, input_ids[None].repeat(rows, 1).to(device))  # [rows, vocab]
    probs = torch.softmax(logits, dim=-1)[:, target_id].view(len(centres), S).mean(dim=1)
    logps = torch.log_softmax(logits, dim=-1)[:, target_id].double().view(len(centres), S).mean(dim=1)
    return probs.double().cpu().numpy(), logps.cpu().numpy()


def _check(input_ids: torch.Tensor, subject_range: tuple[int, int], position: int, donor: torch.Tensor,
           adapter: ModelAdapter) -> None:
    b, e = subject_range
    if not (0 <= b < e <= int(input_ids.shape[0])) or not 0 <= position < int(input_ids.shape[0]):
        raise ValueError(f"subject_range {subject_range} and position {position} must lie in the prompt's "
                         f"{int(input_ids.shape[0])} tokens")
    if donor.shape[0] != adapter.num_layers:
        raise ValueError(f"the donor has states of {donor.shape[0]} layers, the model {adapter.num_layers}: the donor "
                         "run must come from the same model")


def receiver(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, subject_range: tuple[int, int],
             target_id: int, config: TraceConfig) -> FastTracer | None:
    """The receiving prompt's clean and corrupted runs, cached once for every patch into it (the fast path's cache:
    `.cache.high` and `.cache.low` are its clean and corrupted (P, log P)); None for a family without a stepper."""
    stepper = stepper_for(model, adapter, int(input_ids.shape[0]))
    if stepper is None:
        return None
    ids = input_ids.to(adapter.embed.weight.device)
    b, e = subject_range
    delta = noise_delta(config.samples, e - b, adapter.embed.weight.shape[1], config.noise, config.seed,
                        config.noise_streams)
    return FastTracer(stepper, ids, subject_range, target_id, delta)


def patch_receiver(tracer: FastTracer, position: int, donor: torch.Tensor, config: TraceConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`cross_patch` on a cached receiver: every layer's patch (config.kind; samples and noise as the receiver was
    built with), config.batch_size rows per forward; each run recomputes only the layers and positions it changes."""
    if donor.shape[0] != tracer.L:
        raise ValueError(f"the donor has states of {donor.shape[0]} layers, the model {tracer.L}: the donor run must "
                         "come from the same model")
    means = sample_mean(np.moveaxis(patch_receiver_samples(tracer, position, donor, config), 2, 0))
    return means[0], means[1]


def patch_receiver_samples(tracer: FastTracer, position: int, donor: torch.Tensor, config: TraceConfig
                           ) -> np.ndarray:
    """`patch_receiver` per noise sample: [2, layer, samples] P(answer) and log P (its means are their
    `sample_mean`)."""
    if donor.shape[0] != tracer.L:
        raise ValueError(f"the donor has states of {donor.shape[0]} layers, the model {tracer.L}: the donor run must "
                         "come from the same model")
    per_chunk = max(1, config.batch_size // config.samples)
    values = np.empty((2, tracer.L, tracer.samples))
    for start in range(0, tracer.L, per_chunk):
        layers = list(range(start, min(tracer.L, start + per_chunk)))
        values[:, layers] = tracer.run_token_samples(config, position, layers, states=donor)
    return values


def cross_patch(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor,
                subject_range: tuple[int, int], target_id: int, position: int, donor: torch.Tensor,
                config: TraceConfig, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """([layer] mean P(answer), [layer] mean log P) of the corrupted prompt with the donor's state written at
    `position` (window of layers centred on each layer, config.kind), every layer as its own group of samples rows
    (config.batch_size rows per forward). fast=False: hook-patched full forwards (what families without a layer
    stepper get)."""
    _check(input_ids, subject_range, position, donor, adapter)
    if fast and position >= subject_range[0]:  # before the subject the corruption cannot reach: the plain path is exact
        tracer = receiver(model, adapter, input_ids, subject_range, target_id, config)
        if tracer is not None:
            return patch_receiver(tracer, position, donor, config)
    per_forward = max(1, config.batch_size // config.samples)
    layers = list(range(adapter.num_layers))
    parts = [_patched_run(model, adapter, input_ids, subject_range, target_id, position, donor, config,
                          layers[i:i + per_forward]) for i in range(0, len(layers), per_forward)]
    return np.concatenate([p for p, _ in parts]), np.concatenate([q for _, q in parts])


def cross_patch_reference(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor,
                          subject_range: tuple[int, int], target_id: int, position: int, donor: torch.Tensor,
                          config: TraceConfig) -> tuple[np.ndarray, np.ndarray]:
    """The same numbers one forward per layer."""
    _check(input_ids, subject_range, position, donor, adapter)
    out = [_patched_run(model, adapter, input_ids, subject_range, target_id, position, donor, config, [layer])
           for layer in range(adapter.num_layers)]
    return np.array([p[0] for p, _ in out]), np.array([q[0] for _, q in out])
