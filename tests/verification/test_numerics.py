"""The float64 bound of the same-seed tier (issue 25, finding 8): measured cell by cell against a float64 run of
the same profile and seed, turned into a tolerance per metric, and written into a recorded profile by
`verify.py --update-same-seed` with its provenance. Synthetic run folders in the pipeline's layout; the real
measurement on the embedded smoke profile is recorded in expected/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.core.fileio import sha256_file
from artifact.verification.numerics import (
    NUMERICS_SAFETY,
    combine,
    float64_differences,
    metric_of,
    numerics_tolerances,
    same_seed_tolerance,
)

REPO = Path(__file__).resolve().parents[2]
GROUPS, LAYERS, FACTS = 6, 5, 4


def write_profile(folder: Path, effects: dict[str, np.ndarray], dtype: str = "torch.float32") -> Path:
    """An expected-profile folder (<arm>/group_effects.npz, settings.json, known_ids.json) with `effects`."""
    for arm in ("t2t", "s2t"):
        (folder / arm).mkdir(parents=True)
        np.savez(folder / arm / "group_effects.npz", **effects,
                 **{f"{k}_known_ids": np.arange(FACTS) for k in ("hidden", "mlp")})
        (folder / arm / "settings.json").write_text(json.dumps({"arm": arm, "seed": 1, "dtype": dtype}))
        (folder / arm / "known_ids.json").write_text(json.dumps({"known": list(range(FACTS))}))
    return folder


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """An fp32 profile and a float64 'run' of it whose cells differ by known amounts."""
    rng = np.random.default_rng(0)
    fp32 = {f"{k}_{m}": rng.normal(size=(FACTS, GROUPS, LAYERS)) for k in ("hidden", "mlp")
            for m in ("prob", "logprob")}
    exact = {k: a.copy() for k, a in fp32.items()}
    exact["mlp_prob"][1, 2, 3] += 2e-6
    exact["hidden_logprob"][0, 0, 0] -= 5e-5
    exact["mlp_logprob"][3, 5, 4] += 1e-5
    profile = write_profile(tmp_path / "profile", fp32)
    run = write_profile(tmp_path / "run64", exact, dtype="torch.float64")

    def from_traces(results: Path, arm: str) -> v.ArmData:  # the float64 side, as load_arm_from_traces would give it
        return v.load_expected_arm(results, arm)

    monkeypatch.setattr("artifact.verification.numerics.load_arm_from_traces", from_traces)
    return profile, run


def test_metric_of_names():
    assert [metric_of(n) for n in ("t2t/mlp/prob", "s2t/attn/logprob", "carryover/patch_ie_logprob",
                                   "carryover/knockout_clean", "carryover/lens_prob")] == [
        "prob", "logprob", "logprob", "prob", "prob"]


def test_float64_differences_and_tolerances_per_metric(pair):
    profile, run = pair
    d = float64_differences(profile, run)
    assert d["t2t/mlp/prob"]["max"] == pytest.approx(2e-6, rel=1e-6)
    assert d["s2t/hidden/logprob"]["max"] == pytest.approx(5e-5, rel=1e-6)
    assert d["t2t/hidden/prob"]["max"] == 0.0
    assert d["t2t/mlp/logprob"]["facts"] == FACTS and d["t2t/mlp/logprob"]["cells"] == FACTS * GROUPS * LAYERS
    tolerances = numerics_tolerances(d)  # safety x 2 x the largest difference of the metric
    assert tolerances == pytest.approx({"prob": NUMERICS_SAFETY * 2 * 2e-6, "logprob": NUMERICS_SAFETY * 2 * 5e-5},
                                       rel=1e-6)


def test_a_float32_run_is_refused_as_the_float64_side(pair, tmp_path):
    profile, _ = pair
    with pytest.raises(v.VerifyError, match="not a float64 run"):
        float64_differences(profile, profile)


def test_a_rerun_that_shows_more_raises_its_metric_and_old_profiles_keep_their_value():
    float64 = {"tolerances": {"prob": 1e-5, "logprob": 2e-4}}
    observed = {"t2t/mlp/prob": 1e-6, "t2t/mlp/logprob": 3e-4, "carryover/patch_ie_logprob": 1e-5}
    assert combine(float64, observed, 1.5, ("prob", "logprob"), 1e-4) == pytest.approx(
        {"prob": 1e-5, "logprob": 4.5e-4})
    assert combine(None, observed, 1.5, ("prob", "logprob"), 1e-4) == pytest.approx(
        {"prob": 1e-4, "logprob": 4.5e-4})  # no float64 bound: the old floor rule
    assert same_seed_tolerance({"value": 1e-4}, "logprob") == 1e-4  # a profile recorded before the bound
    assert same_seed_tolerance({"value": 4e-4, "metrics": {"prob": 3e-5, "logprob": 4e-4}}, "prob") == 3e-5


def test_update_same_seed_rewrites_the_profile_with_its_provenance(pair, tmp_path):
    profile, run = pair
    (profile / "tolerances.json").write_text(json.dumps({
        "metrics": ["prob", "logprob"], "safety": 1.5,
        "same_seed": {"value": 1e-4, "observed": {"t2t/mlp/logprob": 2e-4}, "reruns": ["results/x-t1"],
                      "how_chosen": "the old floor"}}))
    (profile / "manifest.json").write_text(json.dumps({"files": {"tolerances.json": "old"}}))
    same_seed = v.update_same_seed(profile, float64_from=run)
    stored = json.loads((profile / "tolerances.json").read_text())["same_seed"]
    assert stored == json.loads(json.dumps(same_seed))
    assert same_seed["metrics"]["prob"] == pytest.approx(NUMERICS_SAFETY * 2 * 2e-6, rel=1e-6)
    assert same_seed["metrics"]["logprob"] == pytest.approx(1.5 * 2e-4)  # the recorded rerun showed more
    assert same_seed["previous"] == {"value": 1e-4, "how_chosen": "the old floor"}
    assert same_seed["reruns"] == ["results/x-t1"] and same_seed["float64"]["run"] == str(run)
    assert json.loads((profile / "manifest.json").read_text())["files"]["tolerances.json"] == sha256_file(
        profile / "tolerances.json")
    borrower = tmp_path / "borrower"
    borrower.mkdir()
    (borrower / "tolerances.json").write_text(json.dumps({"same_seed": {"value": 1e-4}}))
    borrowed = v.update_same_seed(borrower, borrow_from=profile)
    assert borrowed["metrics"] == same_seed["metrics"] and borrowed["how_chosen"].startswith("borrowed from profile")


def test_a_float64_run_of_some_parts_adds_to_the_recorded_measurement(pair):
    """A float64 run of only some parts (bench/numerics_bound.py --arms/--carryover) re-sets the tier from its own
    differences plus the profile's earlier ones of the parts it did not measure: the earlier run's folder is gone,
    and its larger log-prob bound must not be lost."""
    profile, run = pair
    earlier = {"run": "results/earlier-fp64", "differences": {
        "t2t/attn/logprob": {"max": 3e-4, "facts": 12, "cells": 1950},  # a part the new run did not measure
        "t2t/mlp/prob": {"max": 1e-7, "facts": 12, "cells": 1950, "run": "results/older-fp64"}}}  # re-measured
    (profile / "tolerances.json").write_text(json.dumps({"metrics": ["prob", "logprob"], "safety": 1.5,
                                                         "same_seed": {"value": 1e-4, "float64": earlier}}))
    same_seed = v.update_same_seed(profile, float64_from=run)
    differences = same_seed["float64"]["differences"]
    assert differences["t2t/attn/logprob"] == {"max": 3e-4, "facts": 12, "cells": 1950, "run": "results/earlier-fp64"}
    assert differences["t2t/mlp/prob"]["max"] == pytest.approx(2e-6, rel=1e-6)  # the new measurement replaces it
    assert differences["t2t/mlp/prob"]["run"] == str(run) == same_seed["float64"]["run"]
    assert same_seed["metrics"] == pytest.approx({"prob": NUMERICS_SAFETY * 2 * 2e-6,
                                                  "logprob": NUMERICS_SAFETY * 2 * 3e-4}, rel=1e-6)
    assert "t2t/attn/logprob" in same_seed["float64"]["how_chosen"]


def test_the_recorded_smoke_profile_carries_its_float64_bound():
    """expected/embedded-smoke's same-seed tier is set from a float64 run, per metric, with the measurement."""
    same_seed = json.loads((REPO / "expected" / "embedded-smoke" / "tolerances.json").read_text())["same_seed"]
    float64 = same_seed["float64"]
    assert set(same_seed["metrics"]) == {"prob", "logprob"}
    for metric, value in same_seed["metrics"].items():
        assert value >= float64["tolerances"][metric] == pytest.approx(
            float64["safety"] * 2 * float64["bound"][metric])
    assert float64["differences"]["t2t/mlp/logprob"]["facts"] >= 1
    standard = json.loads((REPO / "expected" / "embedded-standard" / "tolerances.json").read_text())["same_seed"]
    assert standard["metrics"] == same_seed["metrics"] and "borrowed from embedded-smoke" in standard["how_chosen"]


def test_cli_update_same_seed_needs_one_source(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "verify.py"), "--update-same-seed", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--update-same-seed takes one of --float64-from" in done.stderr
