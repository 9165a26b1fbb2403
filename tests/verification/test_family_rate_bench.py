"""bench/family_rate.py's choice of what enters the family: only kinds every run keeps per-sample effects of (an
older-format run's means alone cannot be pooled into pseudo-runs), only the kinds asked for, and each left-out kind
named in a note rather than failing deep inside the pooling."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from artifact.verification.load import ArmData

REPO = Path(__file__).resolve().parents[2]


def bench_module():
    spec = importlib.util.spec_from_file_location("family_rate", REPO / "bench" / "family_rate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arm(ids: list[str], with_samples: tuple[str, ...], kinds: tuple[str, ...] = ("hidden", "mlp", "attn")) -> ArmData:
    data = ArmData("t2t", Path("."), {}, None)
    for kind in kinds:
        data.fact_ids[kind] = list(ids)
        for metric in ("prob", "logprob"):
            data.effects[f"{kind}_{metric}"] = np.zeros((len(ids), 4, 3))
            if kind in with_samples:
                data.samples[f"{kind}_{metric}"] = np.zeros((len(ids), 5, 4, 3))
    return data


def test_kinds_without_samples_in_some_run_are_left_out_with_a_note():
    bench = bench_module()
    runs = [{"t2t": arm(["1", "2", "3"], ("hidden", "mlp", "attn"))}, {"t2t": arm(["2", "3", "4"], ("hidden", "mlp"))}]
    notes: list[str] = []
    facts = bench.common_facts(runs, ("hidden", "mlp", "attn"), notes)
    assert facts == {"t2t": {"hidden": ["2", "3"], "mlp": ["2", "3"]}}
    assert notes == ["t2t/attn: some run kept no per-sample effects (traces of an older format); left out"]
    pool = bench.pooled(runs, facts)  # pooling what was kept works: both runs' 5 samples side by side
    assert pool["t2t"]["mlp_prob"].shape == (2, 10, 4, 3)


def test_only_the_kinds_asked_for_and_too_few_common_facts_are_named():
    bench = bench_module()
    runs = [{"t2t": arm(["1", "2"], ("hidden", "mlp", "attn"))}, {"t2t": arm(["2", "5"], ("hidden", "mlp", "attn"))}]
    notes: list[str] = []
    assert bench.common_facts(runs, ("mlp",), notes) == {"t2t": {}}
    assert notes == ["t2t/mlp: 1 fact(s) in every run; left out"]
