"""The cost model: counted matmul FLOPs of a profile's traces (`tracing.flops`: the engine's least work) and of the
steps after them (carry-over patching, implicit transcription, corruption choice) over a sustained throughput per
device, so that a run says what it will cost before it starts, and records it; and the disk its results folder needs
(`disk_bytes`, for the disk-full message and `cost --profile`).

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


def transcription_flops(shape: ModelShape, prompt: PromptShape) -> int:
    """Matmul FLOPs of the implicit-transcription lens of one spoken prompt (`tracing.transcription`): one clean
    forward of one row (the model computes logits at every position) and the final norm and unembedding of every
    block's output at each subject speech position."""
    return shape.forward(prompt.tokens, prompt.tokens) + shape.head(prompt.subject_tokens * shape.layers)


def corruption_flops(shape: ModelShape, prompt: PromptShape, positions: str, samples: int, window: int, plan: Any,
                     kinds: Sequence[str]) -> int:
    """Matmul FLOPs of the corruption choice on one arm's prompt (`experiments.corruption`): per kind, a trace with
    noise at each multiple but 3 (the arm's own traces, reused) and, when the plan asks for it, a token-replacement
    trace (one corrupted row per cell: a trace of one sample). Replacement is counted for every fact, an upper
    bound: a fact without a same-length partner is skipped."""
    noise = len(plan.retraced_multiples) * fact_flops(shape, prompt, positions, samples, window, kinds)
    replacement = fact_flops(shape, prompt, positions, 1, window, kinds) if plan.replacement else 0
    return noise + replacement


def _paired_prompts(model: str, arm: str, prompts: dict[str, Sequence[PromptShape]] | None, count: int | None
                    ) -> list[PromptShape] | None:
    """The prompts of an arm that a step after the traces measures: the first `count` of the real prompts when given
    (in the carry-over step's order), else `count` typical prompts; None when the count is not known."""
    real = list((prompts or {}).get(arm) or ())
    if real:
        return real if count is None else real[:count]
    return None if count is None else [typical_prompt(model, arm)] * count


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
    counts = [out["arms"][arm]["facts"] for arm in ("t2t", "s2t")]
    both = None if None in counts else min(counts)  # the facts known in both arms, at most: the later steps' facts
    plan = getattr(profile, "carryover", None)
    if plan is not None:  # each arm's prompts receive the other modality's states (one direction each)
        shapes = {arm: _paired_prompts(model, arm, prompts, both) for arm in ("t2t", "s2t")}
        total = None if None in shapes.values() else float(sum(
            carryover_flops(shape, p, trace.samples, trace.window, plan) for arm in shapes for p in shapes[arm]))
        out["carryover_seconds"] = None if total is None else total / dev.flops
    if getattr(profile, "corruption", None) is not None:  # issue 30's steps
        out.update(_beyond(profile, model, shape, dev, prompts, both))
    return out


def _beyond(profile: Any, model: str, shape: ModelShape, dev: Device,
            prompts: dict[str, Sequence[PromptShape]] | None, both: int | None) -> dict[str, Any]:
    """The estimate of issue 30's steps: implicit transcription (every carry-over fact's spoken prompt, one forward
    each) and the corruption choice (the plan's facts and kinds in both arms; none when the plan takes none)."""
    speech = _paired_prompts(model, "s2t", prompts, both)
    lens = None if speech is None else float(sum(transcription_flops(shape, p) for p in speech))
    plan, trace = profile.corruption, profile.trace
    kinds = plan.traced_kinds(profile.kinds)
    chosen = both if both is None or plan.facts is None else min(both, plan.facts)
    shapes = {arm: _paired_prompts(model, arm, prompts, chosen) for arm in ("t2t", "s2t")}
    total, corrupted = None, None
    if None not in shapes.values():
        positions = {"t2t": profile.t2t_positions, "s2t": profile.s2t_positions}
        total = float(sum(corruption_flops(shape, p, positions[arm], trace.samples, trace.window, plan, kinds)
                          for arm in shapes for p in shapes[arm]))
        corrupted = len(shapes["t2t"])
    return {
        "transcription": {"facts": None if speech is None else len(speech),
                          "tflop": None if lens is None else lens / 1e12,
                          "seconds": None if lens is None else lens / dev.flops},
        "corruption": {"facts": corrupted, "kinds": kinds, "noise_multiples": list(plan.retraced_multiples),
                       "replacement": bool(plan.replacement),
                       "tflop": None if total is None else total / 1e12,
                       "seconds": None if total is None else total / dev.flops},
        "transcription_seconds": None if lens is None else lens / dev.flops,
        "corruption_seconds": None if total is None else total / dev.flops,
    }


NPZ_OVERHEAD = 4096  # bytes of one npz file beyond its arrays: headers, the identity arrays, the config


def trace_file_bytes(prompt: PromptShape, layers: int, samples: int, extra: int = 0) -> int:
    """Bytes of one trace's arrays: float64 [position, layer] scores and log-probabilities, the same per noise sample,
    and `extra` more float64 [position, layer] arrays (token replacement's logit differences)."""
    return prompt.tokens * layers * 8 * (2 * (1 + samples) + extra) + NPZ_OVERHEAD


def corruption_file_bytes(prompt: PromptShape, layers: int, samples: int, plan: Any, kinds: int) -> int:
    """Bytes of one (arm, fact) file of the corruption choice: per kind, a trace per noise multiple traced again and
    a token-replacement trace (one sample, plus the logit differences); an upper bound when no partner is found."""
    noise = len(plan.retraced_multiples) * trace_file_bytes(prompt, layers, samples)
    replacement = trace_file_bytes(prompt, layers, 1, extra=1) if plan.replacement else 0
    return kinds * (noise + replacement)


def transcription_file_bytes(speech: PromptShape, text_subject_tokens: int, layers: int) -> int:
    """Bytes of one implicit-transcription file: float64 P and int64 rank [subject speech position, layer, subject
    text token] and eight [layer] curves."""
    return speech.subject_tokens * layers * text_subject_tokens * 16 + 8 * layers * 8 + NPZ_OVERHEAD


def disk_bytes(profile: Any, model: str, facts: int) -> dict[str, float]:
    """Bytes a run of `profile` writes in its results folder for `facts` facts traced per arm, per part: the traces
    (every kind and arm), the carry-over and other per-fact files, the implicit-transcription files, the
    corruption-choice files of the plan's facts, and the documents, figures and report. From typical prompts,
    without a margin."""
    layers, samples = model_shape(model).layers, profile.trace.samples
    prompts = {arm: typical_prompt(model, arm) for arm in ("t2t", "s2t")}
    plan = profile.corruption
    chosen = facts if plan.facts is None else min(facts, plan.facts)
    kinds = len(plan.traced_kinds(profile.kinds))
    return {
        "traces": facts * len(profile.kinds) * sum(trace_file_bytes(p, layers, samples) for p in prompts.values()),
        "carry-over": facts * 60_000,
        "transcription": facts * transcription_file_bytes(prompts["s2t"], prompts["t2t"].subject_tokens, layers),
        "corruption": chosen * sum(corruption_file_bytes(p, layers, samples, plan, kinds) for p in prompts.values()),
        "documents": 8e6,
    }


def weight_bytes(shape: ModelShape, bytes_per_weight: int = 4) -> int:
    """Bytes of a model's matrices (embedding, output layer, attention and MLP; norms left out): the memory its
    weights take, e.g. SpiritLM 7B in fp32 on a CPU (4 bytes each) about 27 GB."""
    attention = shape.d_model * shape.head_dim * 2 * (shape.heads + shape.kv_heads)
    per_layer = attention + shape.mlp_matrices * shape.d_model * shape.d_mlp
    return bytes_per_weight * (2 * shape.vocab * shape.d_model + shape.layers * per_layer)


LATER_STEPS: tuple[tuple[str, str], ...] = (("carryover_seconds", "carry-over patching"),
                                            ("transcription_seconds", "implicit transcription"),
                                            ("corruption_seconds", "corruption choice"))


def duration(seconds: float) -> str:
    """'0.4 s' under ten seconds, '45 s' under a minute and a half, '12 min' under two hours, else '2.5 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def amount(value: float) -> str:
    """A number for a line of text: three significant digits below 100, else a whole number (no exponent)."""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def total_seconds(est: dict[str, Any]) -> float | None:
    """The trace steps' seconds and those of the steps after them that the cost model counts (carry-over patching,
    implicit transcription, corruption choice); None when the number of facts is not known."""
    parts = [est["trace_seconds"], *(est.get(key, 0.0) for key, _ in LATER_STEPS)]
    return None if None in parts else float(sum(parts))


def describe_estimate(est: dict[str, Any]) -> str:
    """One line: the estimated trace time and its basis, then the later steps' time."""
    if est["trace_seconds"] is None:
        return f"trace time on {est['device']}: depends on how many facts the model knows"
    arms = ", ".join(f"{arm} {a['facts']} facts x {a['tflop_per_fact']:.3g} TFLOP" for arm, a in est["arms"].items())
    left_out = (est.get("corruption") or {}).get("facts") == 0  # a plan of no fact, or --no-corruption-choice
    later = [f"{name} {duration(est[key])}" for key, name in LATER_STEPS if est.get(key) is not None
             and not (left_out and key == "corruption_seconds")]
    return (f"estimated trace time on {est['device']}: {est['trace_seconds'] / 60:.0f} min ({arms}; "
            f"{est['flops_per_second'] / 1e12:.3g} TFLOP/s, {est['throughput_source']})"
            + (f"; then {', '.join(later)} more" if later else "") + ("; no corruption choice" if left_out else ""))


def describe_later_steps(est: dict[str, Any]) -> list[str]:
    """One line per step after the traces that the cost model counts: its facts, work and time."""
    lines = []
    if est.get("carryover_seconds") is not None:
        lines.append(f"  carry-over patching: {duration(est['carryover_seconds'])} (knockout and the lens add about "
                     "a tenth)")
    lens = est.get("transcription")
    if lens and lens["seconds"] is not None:
        lines.append(f"  implicit transcription: {lens['facts']} facts x one forward of the spoken prompt and the "
                     f"lens at its subject positions, {lens['tflop']:.3g} TFLOP -> {duration(lens['seconds'])}")
    choice = est.get("corruption")
    if choice and choice["seconds"] is not None:
        corruptions = [f"noise at {m:g} sigma" for m in choice["noise_multiples"]]
        corruptions += ["token replacement (every fact, an upper bound)"] if choice["replacement"] else []
        lines.append(f"  corruption choice: {choice['facts']} facts x 2 arms x {'/'.join(choice['kinds'])} x "
                     f"({', '.join(corruptions)}), {choice['tflop']:.3g} TFLOP -> {duration(choice['seconds'])}")
    return lines


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
