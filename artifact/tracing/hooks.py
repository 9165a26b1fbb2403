"""The generic tracing path: forward hooks on full forwards, for any model an adapter supports.

Many cells share one forward: each cell is a group of `samples` corrupted rows with its own restorations (`Patch`).
The clean run is computed once and its states cached; logits are read at the last position only. Families with a
layer stepper take the fast path instead (`fast.py`); both give ROME's numbers (see `reference.py`).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from artifact.core.names import KINDS, Kind
from artifact.models.adapters import ModelAdapter, main_tensor, score_precision
from artifact.tracing.config import TraceConfig
from artifact.tracing.corruption import noise_delta, sample_mean, split_cells

Source = Literal["clean", "corrupt"]


@dataclass(frozen=True)
class Patch:
    """Overwrite the `kind` output at (`layer`, `token`) of a group's rows with the clean or the corrupted run's value."""

    kind: Kind
    layer: int
    token: int
    source: Source = "clean"


@dataclass
class RunContext:
    """Everything fixed for one (prompt, subject, target): inputs, noise and the cached clean/corrupted states."""

    model: torch.nn.Module
    adapter: ModelAdapter
    input_ids: torch.Tensor  # [pos]
    subject_range: tuple[int, int]
    target_id: int
    noise_delta: torch.Tensor  # [samples, subject_len, d_model] float64: noise * randn, as ROME adds it
    clean: dict[Kind, torch.Tensor] = field(default_factory=dict)  # kind -> [layer, pos, d_model]
    corrupt: dict[Kind, torch.Tensor] = field(default_factory=dict)  # kind -> [layer, samples, pos, d_model]
    low_samples: np.ndarray | None = None  # [2, samples] the corrupted run's P and log P per sample (prepare_context)

    @property
    def samples(self) -> int:
        return int(self.noise_delta.shape[0])


@contextmanager
def attached(handles: Sequence[Any]) -> Iterator[None]:
    """Keep already registered hooks (their handles) for the `with` block, and remove them all when it ends."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _hooks(model_modules: Sequence[tuple[torch.nn.Module, object]]) -> Iterator[None]:
    with attached([module.register_forward_hook(fn) for module, fn in model_modules]):  # type: ignore[arg-type]
        yield


def final_logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """[batch, vocab] logits at the last position only (the base model's final state through the LM head), fp32 (or
    float64 for a float64 model: `score_precision`)."""
    hidden = model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state[:, -1]
    return score_precision(model.get_output_embeddings()(hidden))


def _capture_hook(store: list[torch.Tensor]):
    def hook(_module, _inputs, output):
        store.append(main_tensor(output).detach().clone())

    return hook


def prepare_context(
    model: torch.nn.Module,
    adapter: ModelAdapter,
    input_ids: torch.Tensor,
    subject_range: tuple[int, int],
    target_id: int,
    config: TraceConfig,
    corrupt_kinds: Sequence[Kind] = (),
) -> tuple[RunContext, tuple[float, float], tuple[float, float]]:
    """Run the clean pass and the plain corrupted pass once; return the context, (high P, high logP), (low P, low logP).

    The clean pass caches every kind's states; `corrupt_kinds` names the kinds whose corrupted states are cached too
    (needed to freeze states at their corrupted values, as in the severed-path experiment).
    """
    device = adapter.embed.weight.device
    ids = input_ids.to(device)
    b, e = subject_range
    d_model = adapter.embed.weight.shape[1]
    ctx = RunContext(
        model=model,
        adapter=adapter,
        input_ids=ids,
        subject_range=(b, e),
        target_id=target_id,
        noise_delta=noise_delta(config.samples, e - b, d_model, config.noise, config.seed, config.noise_streams),
    )
    L = adapter.num_layers
    stores: dict[Kind, list[torch.Tensor]] = {kind: [] for kind in KINDS}
    hooks = [(adapter.module(kind, layer), _capture_hook(stores[kind])) for kind in KINDS for layer in range(L)]
    with torch.no_grad(), _hooks(hooks):
        logits = final_logits(model, ids[None])
    for kind in KINDS:
        # hooks fire layer by layer; stores[kind][l] is [1, pos, d_model]
        ctx.clean[kind] = torch.cat(stores[kind], dim=0)
    high = _target_metrics(logits, target_id)
    corrupt_stores: dict[Kind, list[torch.Tensor]] = {kind: [] for kind in corrupt_kinds}
    hooks = [(adapter.module(k, layer), _capture_hook(corrupt_stores[k])) for k in corrupt_kinds for layer in range(L)]
    with _hooks(hooks):
        ctx.low_samples = forward_group_samples(ctx, [[]])[:, 0]
    for kind in corrupt_kinds:
        ctx.corrupt[kind] = torch.stack(corrupt_stores[kind], dim=0)
    low = sample_mean(ctx.low_samples.T)
    return ctx, (float(high[0][0]), float(high[1][0])), (float(low[0]), float(low[1]))


def _target_metrics(logits: torch.Tensor, target_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """P(target) and log P(target) per row, from [rows, vocab] fp32 logits."""
    probs = torch.softmax(logits, dim=-1)[:, target_id]
    logps = torch.log_softmax(logits, dim=-1)[:, target_id]
    return probs, logps


def forward_groups(ctx: RunContext, groups: Sequence[Sequence[Patch]]) -> tuple[np.ndarray, np.ndarray]:
    """One forward of len(groups) x samples corrupted rows; group g's rows get g's patches.

    Returns per group the mean P(target) and the mean log P(target) over its rows, float64 [groups] (`sample_mean`).
    """
    means = sample_mean(np.moveaxis(forward_group_samples(ctx, groups), 2, 0))
    return means[0], means[1]


def forward_group_samples(ctx: RunContext, groups: Sequence[Sequence[Patch]]) -> np.ndarray:
    """`forward_groups` per noise sample: [2, groups, samples] P(target) and log P(target), float64."""
    S = ctx.samples
    G = len(groups)
    b, e = ctx.subject_range
    delta = ctx.noise_delta.to(ctx.input_ids.device)

    def corrupt_embeddings(_module, _inputs, output):
        x = main_tensor(output)  # [G*S, pos, d_model]
        x.view(G, S, *x.shape[1:])[:, :, b:e] += delta  # float64 added in place, as ROME does
        return output

    plan: dict[tuple[Kind, int], list[tuple[int, Patch]]] = defaultdict(list)
    for g, patches in enumerate(groups):
        for patch in patches:
            plan[(patch.kind, patch.layer)].append((g, patch))

    def restore_hook(entries: list[tuple[int, Patch]]):
        rows = torch.cat([torch.arange(g * S, (g + 1) * S) for g, _ in entries])
        tokens = torch.cat([torch.full((S,), p.token) for _, p in entries])
        values = []
        for _, p in entries:
            if p.source == "clean":
                values.append(ctx.clean[p.kind][p.layer, p.token].expand(S, -1))
            else:
                values.append(ctx.corrupt[p.kind][p.layer, :, p.token])
        stacked = torch.cat(values, dim=0)

        def hook(_module, _inputs, output):
            main_tensor(output)[rows, tokens] = stacked.to(main_tensor(output).dtype)
            return output

        return hook

    hooks: list[tuple[torch.nn.Module, object]] = [(ctx.adapter.embed, corrupt_embeddings)]
    hooks += [(ctx.adapter.module(kind, layer), restore_hook(entries)) for (kind, layer), entries in plan.items()]
    with torch.no_grad(), _hooks(hooks):
        logits = final_logits(ctx.model, ctx.input_ids[None].expand(G * S, -1))
    probs, logps = _target_metrics(logits, ctx.target_id)
    return np.stack([probs.double().view(G, S).cpu().numpy(), logps.double().view(G, S).cpu().numpy()])


def run_groups(ctx: RunContext, groups: Sequence[Sequence[Patch]], batch_size: int, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Run many groups of patches, `batch_size // samples` groups per forward; mean P and mean log P per group."""
    means = sample_mean(np.moveaxis(run_group_samples(ctx, groups, batch_size, progress), 2, 0))
    return means[0], means[1]


def run_group_samples(ctx: RunContext, groups: Sequence[Sequence[Patch]], batch_size: int, progress=None
                      ) -> np.ndarray:
    """`run_groups` per noise sample: [2, groups, samples] P and log P."""
    per_forward = max(1, batch_size // ctx.samples)
    values = np.empty((2, len(groups), ctx.samples))
    for start in range(0, len(groups), per_forward):
        chunk = groups[start : start + per_forward]
        values[:, start : start + len(chunk)] = forward_group_samples(ctx, chunk)
        if progress is not None:
            progress(len(chunk))
    return values


def trace_generic(model, adapter, input_ids, subject_range, target_id, config, positions, progress):
    """Any adapter-supported model: hooks on full forwards, many cells (groups of `samples` rows) per forward.

    Returns as `fast.trace_fast`: (high P, high log P), low [2, samples], per-sample scores and log P [samples, pos,
    layer]."""
    L = adapter.num_layers
    ctx, high, _ = prepare_context(model, adapter, input_ids, subject_range, target_id, config)
    scores, logprobs, tokens = split_cells(len(input_ids), L, subject_range[0], positions, ctx.low_samples, progress)
    cells = [(t, layer) for t in tokens for layer in range(L)]
    groups = [
        [Patch(config.kind, restored, t) for restored in config.restored_layers(layer, L)] for t, layer in cells
    ]
    values = run_group_samples(ctx, groups, config.batch_size, progress)  # [2, cells, samples]
    for c, (t, layer) in enumerate(cells):
        scores[:, t, layer], logprobs[:, t, layer] = values[0, c], values[1, c]
    return high, ctx.low_samples, scores, logprobs
