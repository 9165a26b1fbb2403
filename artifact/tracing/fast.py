"""The fast tracing path: each restored run recomputes only what the restoration can change.

Same numbers as the plain method (`reference.py`), up to float rounding of batch shapes, because in a causal model:
- a restored run equals the corrupted run below its first restored layer (hidden: layer l's output is restored, so
  blocks 0..l are not recomputed; mlp/attn: blocks below `l - window // 2` are not), so it starts from the corrupted
  run's cached block input at that layer;
- a restoration at token t cannot change positions < t, so only positions t.. are computed, against the corrupted
  run's cached keys and values of positions < t;
- only the last position's logits are read.
Every corrupted row of a sample sees the same noise in every forward (`corruption.py`), so one corrupted run per fact
provides every cell's cache. Cells restoring the same token share a chunk: rows are cell-major
(row = cell * samples + sample), cells sorted by their first recomputed layer, and at block k only the cells already
started (a prefix of the chunk) are computed.

The corrupted run may also be another prompt of the same length instead of noise (symmetric token replacement,
`replacement.py`): then it is one row, and everything above holds since the two prompts differ only inside the
subject span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from artifact.core.names import Kind
from artifact.models.stepping import LayerStepper, PrefixKV, causal_mask
from artifact.tracing.config import TraceConfig
from artifact.tracing.corruption import noise_delta, sample_mean, split_cells


@dataclass
class FactCache:
    """The clean and corrupted runs of one fact, cached for every restored run."""

    clean: dict[Kind, torch.Tensor]  # kind -> [layer, pos, d_model] clean states (attn, mlp and block outputs)
    corrupt_inputs: list[torch.Tensor]  # [layer + 1] x [samples, pos, d_model]: block inputs, then the last output
    corrupt_kv: list[tuple[torch.Tensor, torch.Tensor]]  # [layer] x (keys, values) [samples, kv_heads, pos, head_dim]
    high: tuple[float, float]  # clean P(target), log P(target)
    low: tuple[float, float]  # corrupted mean P(target), mean log P(target)
    low_samples: np.ndarray  # [2, samples]: the corrupted run's P(target) and log P(target) per noise sample
    clean_logits: torch.Tensor  # [1, vocab] fp32, last position of the clean run
    corrupt_logits: torch.Tensor  # [samples, vocab] fp32, last position of the corrupted rows


def _per_sample(logits: torch.Tensor, target_id: int, samples: int) -> np.ndarray:
    """[2, groups, samples] float64: P(target) and log P(target) per row, rows grouped by `samples`. logits: [rows,
    vocab].

    The same fp32 softmax kernels as the reference: a sum over 49k fp32 terms is itself rounded at ~1e-6 relative,
    so a different reduction (e.g. logsumexp) moves log P by up to 1e-5.
    """
    probs = torch.softmax(logits, dim=-1)[:, target_id].double().view(-1, samples)
    logps = torch.log_softmax(logits, dim=-1)[:, target_id].double().view(-1, samples)
    return np.stack([probs.cpu().numpy(), logps.cpu().numpy()])


def _metrics(logits: torch.Tensor, target_id: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group of `samples` rows: mean P(target) and mean log P(target), float64 [groups] (`sample_mean`)."""
    means = sample_mean(np.moveaxis(_per_sample(logits, target_id, samples), 2, 0))
    return means[0], means[1]


class FastTracer:
    """Runs the clean and corrupted passes of one fact once, then restored cells at the least recomputation."""

    def __init__(self, stepper: LayerStepper, input_ids: torch.Tensor, subject_range: tuple[int, int],
                 target_id: int, noise_delta: torch.Tensor | None, corrupt_ids: torch.Tensor | None = None):
        """`noise_delta` [samples, subject_len, d_model]: ROME's noise on the subject's token embeddings; or, with
        `noise_delta` None, `corrupt_ids` [pos]: the corrupted run is that prompt (token replacement), one row."""
        if (noise_delta is None) == (corrupt_ids is None):
            raise ValueError("give either noise_delta (Gaussian corruption) or corrupt_ids (token replacement)")
        self.stepper = stepper
        self.ids = input_ids  # [pos]
        self.T = int(input_ids.shape[0])
        self.L = stepper.num_layers
        self.target_id = target_id
        self.samples = 1 if noise_delta is None else int(noise_delta.shape[0])
        b, e = subject_range
        if corrupt_ids is not None:
            if tuple(corrupt_ids.shape) != tuple(input_ids.shape):
                raise ValueError(f"the replaced prompt has {tuple(corrupt_ids.shape)} tokens, the prompt "
                                 f"{tuple(input_ids.shape)}: token replacement keeps the length")
            corrupted, corrupt = corrupt_ids.to(input_ids.device), None
        else:
            delta = noise_delta.to(input_ids.device)

            def corrupt(x):  # [samples, pos, d_model]; float64 noise added in place, as ROME does
                x[:, b:e] += delta

            corrupted = input_ids
        stepper.prepare(self.T)
        with torch.no_grad():
            self.cache = self._base_runs(corrupted, corrupt)

    def _base_runs(self, corrupted: torch.Tensor, corrupt) -> FactCache:
        st, T, L, S = self.stepper, self.T, self.L, self.samples
        dtype = st.adapter.embed.weight.dtype
        mask = causal_mask(0, T, dtype, self.ids.device)
        clean: dict[Kind, list[torch.Tensor]] = {"attn": [], "mlp": [], "hidden": []}

        def record(kind, _layer, output):
            clean[kind].append(output[0].clone())

        h = st.embed(self.ids, None, 1)
        for layer in range(L):
            h = st.block(layer, h, 0, PrefixKV(), mask, record)
        clean_logits = st.logits(h[:, -1])
        high = _metrics(clean_logits, self.target_id, 1)
        h = st.embed(corrupted, corrupt, S)
        inputs, kv = [h], PrefixKV(record=True)
        for layer in range(L):
            h = st.block(layer, h, 0, kv, mask, None)
            inputs.append(h)
        corrupt_logits = st.logits(h[:, -1])
        low_samples = _per_sample(corrupt_logits, self.target_id, S)[:, 0]  # [2, samples]
        low = sample_mean(low_samples.T)
        return FactCache(
            clean={kind: torch.stack(states) for kind, states in clean.items()},
            corrupt_inputs=inputs,
            corrupt_kv=kv.recorded,
            high=(float(high[0][0]), float(high[1][0])),
            low=(float(low[0]), float(low[1])),
            low_samples=low_samples,
            clean_logits=clean_logits,
            corrupt_logits=corrupt_logits,
        )

    def start_layer(self, config: TraceConfig, layer: int) -> int:
        """First block a restored run must recompute: after the restored block (hidden), else the window's first."""
        if config.kind == "hidden":
            return layer + 1
        return config.restored_layers(layer, self.L).start

    def run_token(self, config: TraceConfig, token: int, layers: list[int], states: torch.Tensor | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Cells (token, l) for l in `layers`, in one chunk; mean P(target) and mean log P(target) per cell [cells].
        `states` [layer, d_model], when given, are written at the token instead of this prompt's clean states (a
        donor run's, for cross-modal patching)."""
        logits = self.run_token_logits(config, token, layers, states)
        probs, logps = _metrics(logits, self.target_id, self.samples)
        return probs, logps

    def run_token_samples(self, config: TraceConfig, token: int, layers: list[int],
                          states: torch.Tensor | None = None) -> np.ndarray:
        """`run_token` per noise sample: [2, cells, samples] P(target) and log P(target); `run_token`'s means are
        their `sample_mean`."""
        return _per_sample(self.run_token_logits(config, token, layers, states), self.target_id, self.samples)

    def run_token_logits(self, config: TraceConfig, token: int, layers: list[int],
                         states: torch.Tensor | None = None) -> torch.Tensor:
        """`run_token`'s last-position logits [cells * samples, vocab] fp32, cell-major in the order of `layers`."""
        st, cache, S, L, t = self.stepper, self.cache, self.samples, self.L, token
        kind = config.kind
        order = sorted(range(len(layers)), key=lambda i: self.start_layer(config, layers[i]))  # stable
        starts = [self.start_layer(config, layers[i]) for i in order]
        windows = [config.restored_layers(layers[i], L) for i in order]
        C = len(order)
        device = self.ids.device
        values = cache.clean[kind][:, t] if states is None else states.to(device)  # [layer, d_model]
        mask = causal_mask(t, self.T, cache.corrupt_inputs[0].dtype, device)
        prefix = [(k[:, :, :t], v[:, :, :t]) for k, v in cache.corrupt_kv]
        hidden: torch.Tensor | None = None  # [active cells * samples, pos - t, d_model]
        active = 0
        with torch.no_grad():
            for layer in range(starts[0], L + 1):
                first = active
                while active < C and starts[active] == layer:
                    active += 1
                if active > first:  # cells starting here: the corrupted run's state at this block's input
                    new = cache.corrupt_inputs[layer][:, t:].repeat(active - first, 1, 1)
                    if kind == "hidden":  # the restored block (layer - 1) output at token t is the clean one
                        new[:, 0] = values[layer - 1]
                    hidden = new if hidden is None else torch.cat([hidden, new])
                if layer == L:
                    break
                edit = None
                if kind != "hidden":
                    restoring = [c for c in range(active) if layer in windows[c]]
                    if restoring:
                        rows = torch.cat([torch.arange(c * S, (c + 1) * S) for c in restoring]).to(device)
                        value = values[layer]

                        def edit(which, _layer, output, rows=rows, value=value):
                            if which == kind:
                                output[rows, 0] = value

                hidden = st.block(layer, hidden, t, PrefixKV(prefix, repeats=active), mask, edit)
            logits = st.logits(hidden[:, -1]).view(C, S, -1)  # cells in `order`
        result = torch.empty_like(logits)
        result[torch.tensor(order, device=logits.device)] = logits
        return result.view(C * S, -1)


def trace_fast(stepper, adapter, input_ids, subject_range, target_id, config, positions, progress):
    """Families with a layer stepper: each restored run recomputes only what it can change (see `fast.py`).

    Returns (high P, high log P), low [2, samples] (P, log P per sample), and per-sample scores and log P [samples,
    pos, layer]."""
    L = adapter.num_layers
    b, e = subject_range
    ids = input_ids.to(adapter.embed.weight.device)
    delta = noise_delta(config.samples, e - b, adapter.embed.weight.shape[1], config.noise, config.seed,
                        config.noise_streams)
    tracer = FastTracer(stepper, ids, subject_range, target_id, delta)
    high, low = tracer.cache.high, tracer.cache.low_samples
    scores, logprobs, tokens = split_cells(len(input_ids), L, b, positions, low, progress)
    per_chunk = max(1, config.batch_size // config.samples)
    for t in tokens:
        # layers in order of their first recomputed block (hidden: l + 1; mlp/attn: l - window // 2): monotone in l
        for start in range(0, L, per_chunk):
            layers = list(range(start, min(L, start + per_chunk)))
            values = tracer.run_token_samples(config, t, layers)  # [2, cells, samples]
            scores[:, t, layers], logprobs[:, t, layers] = values[0].T, values[1].T
            if progress is not None:
                progress(len(layers))
    return high, low, scores, logprobs
