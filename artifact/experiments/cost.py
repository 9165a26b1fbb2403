"""The cost model: counted matmul FLOPs of a profile's traces (`tracing.flops`: the engine's least work) over a
sustained throughput per device, so that a run says what it will cost before it starts, and records it.

Throughputs:
- `h100`: an assumed 40% of an H100's dense bf16 peak (989 TFLOP/s); not measured (no GPU here). The CPU benchmark
  (`bench/bench_engine.py`) found the engine's FLOP rate 0.8-1.3x that of plain batched forwards, so the engine is
  assumed to run at the throughput of plain forwards.
- `cpu`: measured on this project's machines (2 cores of an AMD EPYC, two torch threads, fp32, the embedded model):
  `CPU_FLOPS`, from timed traces of the embedded model (see REPRODUCE.md, "Cost model").
Model shapes and typical prompt lengths per arm are each speech-text model's (`artifact.core.speechtext`: `shape`,
`typical_prompts`); the pipeline prints the estimate again from the real prompts once they are built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from artifact.core.groups import positions_for
from artifact.core.speechtext import speech_text_model
from artifact.core.names import KINDS, SEVERED
from artifact.tracing.config import TraceConfig
from artifact.tracing.flops import ModelShape, least_flops



def model_shape(model: str) -> ModelShape:
    """The shape of a registered speech-text model (its spec's `shape`: SpiritLM base 7B = Llama-2-7B with SpiritLM's
    vocabulary, BRIEF section 2; the embedded SmolLM2-135M)."""
    return ModelShape(**speech_text_model(model).shape)

H100_BF16_DENSE_PEAK = 989e12  # FLOP/s, H100 SXM dense bf16 tensor cores (NVIDIA data sheet; no sparsity)
H100_MFU = 0.4
CPU_FLOPS = 1.0e11  # FLOP/s sustained by the engine on 2 CPU cores here (measured: REPRODUCE.md, "Cost model")


@dataclass(frozen=True)
class Device:
    """A device the cost model knows: its sustained throughput and where that number comes from."""

    name: str
    flops: float  # FLOP/s sustained
    source: str


DEVICES: dict[str, Device] = {
    "h100": Device("one H100 (bf16)", H100_MFU * H100_BF16_DENSE_PEAK,
                   f"assumed {H100_MFU:.0%} of the dense bf16 peak of {H100_BF16_DENSE_PEAK / 1e12:.0f} TFLOP/s"),
    "cpu": Device("2 CPU cores (fp32)", CPU_FLOPS, "measured here (REPRODUCE.md, 'Cost model')"),
}


@dataclass(frozen=True)
class PromptShape:
    """A typical prompt of an arm: its length, where its subject starts, and how many tokens the subject has."""

    tokens: int
    subject_start: int
    subject_tokens: int


def typical_prompt(model: str, arm: str) -> PromptShape:
    """A typical prompt of `arm` for a registered speech-text model (its spec's `typical_prompts`, where each
    number's source is given)."""
    return PromptShape(*speech_text_model(model).typical_prompts[arm])


def fact_flops(shape: ModelShape, prompt: PromptShape, positions: str, samples: int, window: int,
               kinds: Sequence[str] = KINDS) -> int:
    """Matmul FLOPs of tracing one fact for every kind (the severed job counted as a hidden-state trace of one
    token with three variants)."""
    subject = (prompt.subject_start, prompt.subject_start + prompt.subject_tokens)
    chosen = positions_for(positions, prompt.tokens, subject, prompt.tokens - 1)
    traced = range(prompt.tokens) if chosen is None else chosen
    total = 0
    for kind in kinds:
        if kind == SEVERED:
            continue
        config = TraceConfig(kind=kind, samples=samples, window=window)
        total += least_flops(shape, prompt.tokens, samples, prompt.subject_start, traced, config)
    return total


def carryover_flops(shape: ModelShape, prompt: PromptShape, samples: int, window: int, plan: Any) -> int:
    """Matmul FLOPs of the carry-over patches one prompt receives (every patched kind at the mapped positions: last
    subject token and last token, as a trace of those cells); knockout (one token x layers rows) and the lens (one
    forward) are left out: about a tenth of it on the embedded prompts (bench/bench_carryover.py times)."""
    if "patching" not in plan.analyses:
        return 0
    mapped = {"last_subject": prompt.subject_start + prompt.subject_tokens - 1, "last": prompt.tokens - 1}
    cells = sorted({mapped[p] for p in plan.positions})
    return sum(least_flops(shape, prompt.tokens, samples, prompt.subject_start, cells,
                           TraceConfig(kind=kind, samples=samples, window=window)) for kind in plan.patch_kinds)


def estimate(profile: Any, model: str, device: str, facts: dict[str, int] | None = None,
             prompts: dict[str, Sequence[PromptShape]] | None = None) -> dict[str, Any]:
    """Seconds of the trace steps of `profile` on `device` for `model` (a registered speech-text model): from the real
    prompts of the traced facts per arm when given (`prompts`), else from `facts` per arm (default: the profile's
    count) times a typical prompt. Returns the arithmetic."""
    shape, dev, trace = model_shape(model), DEVICES[device], profile.trace
    out: dict[str, Any] = {"device": dev.name, "flops_per_second": dev.flops, "throughput_source": dev.source,
                           "arms": {}}
    for arm in ("t2t", "s2t"):
        positions = profile.s2t_positions if arm == "s2t" else profile.t2t_positions
        real = list((prompts or {}).get(arm) or ())
        if real:
            costs = [fact_flops(shape, p, positions, trace.samples, trace.window, profile.kinds) for p in real]
            n, total, tokens = len(real), float(sum(costs)), sum(p.tokens for p in real) / len(real)
        else:
            typical = typical_prompt(model, arm)
            n = (facts or {}).get(arm, profile.count)
            per_fact = fact_flops(shape, typical, positions, trace.samples, trace.window, profile.kinds)
            total, tokens = (None if n is None else n * per_fact), typical.tokens
        out["arms"][arm] = {"facts": n, "prompt_tokens": tokens, "positions": positions,
                            "from_real_prompts": bool(real),
                            "tflop_per_fact": None if total is None else total / max(n, 1) / 1e12,
                            "seconds": None if total is None else total / dev.flops}
    seconds = [a["seconds"] for a in out["arms"].values()]
    out["trace_seconds"] = None if None in seconds else sum(seconds)
    plan = getattr(profile, "carryover", None)
    if plan is not None:  # each arm's prompts receive the other modality's states (one direction each)
        total = 0.0
        counts = [out["arms"][arm]["facts"] for arm in ("t2t", "s2t")]
        both = None if None in counts else min(counts)  # the facts known in both arms, at most
        for arm in ("t2t", "s2t"):
            real = list((prompts or {}).get(arm) or ())
            n = len(real) if real else both
            if n is None:
                total = None
                break
            shapes = real or [typical_prompt(model, arm)] * n
            total += float(sum(carryover_flops(shape, p, trace.samples, trace.window, plan) for p in shapes))
        out["carryover_seconds"] = None if total is None else total / dev.flops
    return out


def weight_bytes(shape: ModelShape, bytes_per_weight: int = 4) -> int:
    """Bytes of a model's matrices (embedding, output layer, attention and MLP; norms left out): the memory its
    weights take, e.g. SpiritLM 7B in fp32 on a CPU (4 bytes each) about 27 GB."""
    attention = shape.d_model * shape.head_dim * 2 * (shape.heads + shape.kv_heads)
    per_layer = attention + shape.mlp_matrices * shape.d_model * shape.d_mlp
    return bytes_per_weight * (2 * shape.vocab * shape.d_model + shape.layers * per_layer)


def describe_estimate(est: dict[str, Any]) -> str:
    """One line: the estimated trace time and its basis."""
    if est["trace_seconds"] is None:
        return f"trace time on {est['device']}: depends on how many facts the model knows"
    arms = ", ".join(f"{arm} {a['facts']} facts x {a['tflop_per_fact']:.3g} TFLOP" for arm, a in est["arms"].items())
    carry = est.get("carryover_seconds")
    return (f"estimated trace time on {est['device']}: {est['trace_seconds'] / 60:.0f} min ({arms}; "
            f"{est['flops_per_second'] / 1e12:.3g} TFLOP/s, {est['throughput_source']})"
            + (f"; carry-over patching {carry / 60:.0f} min more" if carry is not None else ""))


def run_flops(run_dir: Any, shape: ModelShape) -> dict[str, float]:
    """Matmul FLOPs of the traces a run folder holds, per job (from each result file's prompt, subject range,
    traced positions and settings): what the run's trace step computed, for measuring a machine's throughput."""
    import numpy as np  # lazy: numpy

    out: dict[str, float] = {}
    for path in sorted(Path(run_dir).glob("traces/*/*.npz")):
        job = path.parent.name
        if job == SEVERED:
            continue
        with np.load(path, allow_pickle=False) as data:
            config = TraceConfig.from_dict(json.loads(str(data["config"])))
            tokens, subject_start = int(data["input_ids"].shape[0]), int(data["subject_range"][0])
            positions = [int(p) for p in data["positions"]]
        out[job] = out.get(job, 0.0) + least_flops(shape, tokens, config.samples, subject_start, positions, config)
    return out
