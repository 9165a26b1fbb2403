"""The cost model counts issue 30's steps (implicit transcription, corruption choice) in time and disk: their FLOPs
against torch's own count of what the steps' per-fact functions run on a tiny seeded Llama, their file sizes against
the files those functions' arrays make, and the profile-level estimate derived from the profile's plan (facts, kinds,
noise multiples, samples), never from constants."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from artifact.core.fileio import write_npz_atomic
from artifact.experiments.cost import (
    CPU_FLOPS,
    PromptShape,
    corruption_file_bytes,
    corruption_flops,
    describe_estimate,
    estimate,
    transcription_file_bytes,
    transcription_flops,
)
from artifact.experiments.profiles import PROFILES, CorruptionPlan
from artifact.models import ModelAdapter
from artifact.tracing.flops import ModelShape
from tests.support.tiny_runs import TinyLoaded, tiny_items, tiny_settings


class VocabTokenizer:
    """The tokenizer surface text_mode_banned_ids reads: the tiny model's rows as text tokens, two speech units."""

    def get_vocab(self):
        return {**{f"t{i}": i for i in range(95)}, "[Hu0]": 95, "[Hu1]": 96}


def shape_of(prompt) -> PromptShape:
    b, e = prompt.subject_range
    return PromptShape(len(prompt.input_ids), b, e - b)


def counted(run) -> int:
    """Matmul FLOPs torch counts while `run()` executes."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def test_transcription_flops_are_what_the_step_runs(llama_tiny, tmp_path):
    """One fact of the step (`fact_transcription`): torch's count equals the model's (one forward and the lens at
    every subject position and layer) up to the rotary tables (< 0.1%); its file's size is the disk model's."""
    from artifact.experiments.transcription import fact_transcription

    loaded = TinyLoaded("tiny", llama_tiny, VocabTokenizer(), ModelAdapter(llama_tiny))
    items = tiny_items(llama_tiny)
    shape = ModelShape.from_config(llama_tiny.config)
    for (_, text), (_, speech) in zip(items, items[1:] + items[:1]):  # any prompt stands in for the spoken one
        prompts = {"text": text, "speech": speech}
        real = counted(lambda: fact_transcription(loaded, prompts))
        model = transcription_flops(shape, shape_of(speech))
        assert abs(model - real) / real < 1e-3, (model, real)
        path = tmp_path / "transcription.npz"
        write_npz_atomic(path, {**fact_transcription(loaded, prompts), "known_id": np.asarray("10"),
                                "subject": np.asarray("s0")})
        size = transcription_file_bytes(shape_of(speech), text.subject_range[1] - text.subject_range[0], shape.layers)
        assert 0.7 * path.stat().st_size < size < 1.5 * path.stat().st_size, (size, path.stat().st_size)


@pytest.mark.parametrize("plan, kinds", [
    (CorruptionPlan(), ("hidden", "mlp", "attn")),
    (CorruptionPlan(multiples=(1.0, 3.0), replacement=False), ("mlp",)),
], ids=["default-plan", "one-multiple-no-replacement"])
def test_corruption_flops_bound_what_the_step_runs(llama_tiny, tmp_path, plan, kinds):
    """One (arm, fact) of the step (`fact_corruptions`): the model's count is the engine's least work, so it bounds
    torch's count from above and within 15% (attention counted over all keys); the file's size is the disk
    model's."""
    from artifact.experiments.corruption import fact_corruptions

    loaded = TinyLoaded("tiny", llama_tiny, VocabTokenizer(), ModelAdapter(llama_tiny))
    run_settings = tiny_settings()
    settings = {"sigma": {"t2t": 0.2}, "kinds": list(kinds), "multiples": list(plan.multiples),
                "replacement": plan.replacement}
    items = tiny_items(llama_tiny)
    _, prompt = items[0]
    partner = SimpleNamespace(subject_range=(1, 4), input_ids=(9, 40, 41, 44),  # 3 subject tokens, another answer
                              target_id=(prompt.target_id + 1) % 97)
    shape = ModelShape.from_config(llama_tiny.config)
    arrays = {}
    real = counted(lambda: arrays.update(fact_corruptions(loaded, prompt, run_settings, settings, partner)))
    model = corruption_flops(shape, shape_of(prompt), run_settings.positions, run_settings.trace.samples,
                             run_settings.trace.window, plan, kinds)
    assert real <= model < 1.15 * real, (model, real)
    path = tmp_path / "corruption.npz"
    write_npz_atomic(path, arrays)
    size = corruption_file_bytes(shape_of(prompt), shape.layers, run_settings.trace.samples, plan, len(kinds))
    assert 0.7 * path.stat().st_size < size < 1.5 * path.stat().st_size, (size, path.stat().st_size)


def with_plan(name: str, **changes):
    profile = PROFILES[name]
    return replace(profile, corruption=replace(profile.corruption, **changes))


@pytest.mark.parametrize("name", ["smoke", "standard"])
def test_the_estimate_counts_the_new_steps_from_the_profile(name):
    """The corruption choice is the arms' traces again per noise multiple (and one sample per replacement trace), on
    the plan's facts and kinds: with every fact and kind and no replacement it is exactly the traces at two
    multiples; it scales with the plan's facts and is zero without them. The lens is one forward per fact."""
    profile = PROFILES[name]
    est = estimate(profile, "embedded", "cpu")
    assert est["transcription"]["facts"] == profile.count and est["transcription_seconds"] > 0
    assert est["corruption"]["facts"] == min(profile.count, profile.corruption.facts or profile.count)
    assert est["corruption"]["kinds"] == profile.corruption.traced_kinds(profile.kinds)

    everything = estimate(with_plan(name, facts=None, kinds=None, replacement=False), "embedded", "cpu")
    assert everything["corruption_seconds"] == pytest.approx(2 * everything["trace_seconds"], rel=1e-12)
    one_sample = replace(profile, trace=replace(profile.trace, samples=1),
                         corruption=replace(profile.corruption, facts=None, kinds=None))
    est = estimate(one_sample, "embedded", "cpu")  # replacement: one more trace of one sample
    assert est["corruption_seconds"] == pytest.approx(3 * est["trace_seconds"], rel=1e-12)
    two = estimate(with_plan(name, facts=2), "embedded", "cpu")["corruption_seconds"]
    four = estimate(with_plan(name, facts=4), "embedded", "cpu")["corruption_seconds"]
    assert four == pytest.approx(2 * two, rel=1e-12)
    assert estimate(with_plan(name, facts=0), "embedded", "cpu")["corruption_seconds"] == 0

    lens = estimate(profile, "embedded", "cpu")["transcription"]
    assert lens["tflop"] * 1e12 / CPU_FLOPS == pytest.approx(lens["seconds"])
    halved = estimate(replace(profile, count=profile.count // 2), "embedded", "cpu")["transcription"]
    assert halved["tflop"] == pytest.approx(lens["tflop"] / 2)


def test_the_estimate_takes_the_first_facts_of_the_real_prompts():
    """From the real prompts (in the carry-over step's order) the corruption choice takes the first plan.facts."""
    profile = with_plan("smoke", facts=1)
    short, long = PromptShape(10, 1, 3), PromptShape(40, 3, 12)
    first_short = estimate(profile, "embedded", "cpu", prompts={"t2t": [short, long], "s2t": [short, long]})
    first_long = estimate(profile, "embedded", "cpu", prompts={"t2t": [long, short], "s2t": [long, short]})
    assert first_short["trace_seconds"] == first_long["trace_seconds"]
    assert first_short["corruption_seconds"] < first_long["corruption_seconds"]
    assert first_short["transcription_seconds"] == first_long["transcription_seconds"]


def test_the_estimate_and_the_cost_command_print_the_new_steps(capsys):
    from artifact.cli import main

    line = describe_estimate(estimate(PROFILES["smoke"], "embedded", "cpu"))
    assert "implicit transcription" in line and "corruption choice" in line
    assert main(["cost", "--profile", "standard", "--model", "embedded", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lens = [x for x in lines if x.strip().startswith("implicit transcription:")]
    choice = [x for x in lines if x.strip().startswith("corruption choice:")]
    assert len(lens) == 1 and "56 facts" in lens[0]
    assert len(choice) == 1 and "56 facts x 2 arms x hidden/mlp/attn" in choice[0] and "noise at 5 sigma" in choice[0]
    assert any("needs about" in x and "corruption" in x and "transcription" in x for x in lines)


def test_space_needed_counts_the_new_steps(tmp_path: Path):
    """The disk-full message's estimate grows with the corruption plan's facts and names the new steps' parts."""
    from artifact.experiments.pipeline import space_needed

    def megabytes(profile) -> float:
        return float(space_needed(profile, "embedded", tmp_path).split("needs about ")[1].split(" MB")[0])

    without = megabytes(with_plan("standard", facts=0))
    assert megabytes(PROFILES["standard"]) > 1.5 * without  # every fact and kind: more than the traces themselves
    message = space_needed(PROFILES["smoke"], "embedded", tmp_path)
    assert "transcription" in message and "corruption" in message
