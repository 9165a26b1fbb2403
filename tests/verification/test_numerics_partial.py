"""bench/numerics_bound.py's restricted mode (issue 25, finding 8): only the named parts of a recorded profile are
run in float64 (`--arms s2t --kinds mlp,attn`, `--carryover`), for exactly the facts the profile traced, by the
pipeline's own trace and carry-over steps, without rerunning the Known filters. The slow test runs a tiny profile
of the real embedded models end to end."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.core.fileio import read_json
from artifact.core.layout import CARRYOVER_DIR, CARRYOVER_FACTS_DIR, KNOWN_FILE, SELECTION_FILE, TRACES_DIR
from artifact.experiments.profiles import PROFILES, CarryOverPlan
from artifact.verification.numerics import float64_differences

REPO = Path(__file__).resolve().parents[2]
# Two facts, two kinds traced in the reference; the float64 part asked for is S->T MLP and the carry-over step.
TINY = replace(PROFILES["smoke"], samples=1, count=2, candidates=60, kinds=("hidden", "mlp"),
               carryover=CarryOverPlan(patch_kinds=("mlp",)))


def bench_module():
    """bench/numerics_bound.py imported from its file (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("numerics_bound", REPO / "bench" / "numerics_bound.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recorded_smoke_profile_gives_its_selection():
    """The facts a partial float64 run traces are the recorded smoke profile's 12, the same in both arms."""
    name, traced, known = bench_module().recorded_selection(REPO / "expected" / "embedded-smoke")
    recorded = v.load_expected_arm(REPO / "expected" / "embedded-smoke", "s2t")
    assert name == "smoke" and len(traced) == 12 == len(set(traced))
    assert sorted(traced) == sorted(recorded.fact_ids["attn"])
    assert set(traced) <= set(known["t2t"]) and set(traced) <= set(known["s2t"])


def test_bad_arms_or_kinds_exit_2(tmp_path):
    for args in (["--arms", "x2t"], ["--arms", "s2t", "--kinds", "mlp,severed"]):
        done = subprocess.run([sys.executable, str(REPO / "bench" / "numerics_bound.py"), "--out",
                               str(tmp_path / "out"), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "--arms takes t2t and/or s2t" in done.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_partial_float64_run_traces_only_the_asked_parts_of_the_recorded_facts(tmp_path):
    from artifact.experiments.pipeline import run_pipeline

    module = bench_module()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PROFILES, "smoke", TINY)
        ref = tmp_path / "ref"
        assert run_pipeline(profile="smoke", model="embedded", out=ref, progress=False, verify=False,
                            front_end="offline") == 0
        profile = tmp_path / "expected" / "embedded-smoke"
        v.record_profile(ref, profile, {})
        out = tmp_path / "fp64"
        module.partial_run(profile, out, ["s2t"], ["mlp"], carryover=True, front_end="offline")
    traced = read_json(ref / SELECTION_FILE)["traced"]
    assert read_json(out / SELECTION_FILE)["traced"] == traced
    runs = {d.name.split("-")[0]: d for d in (out / "runs").iterdir()}
    assert {read_json(d / "settings.json")["dtype"] for d in runs.values()} == {"torch.float64"}
    for run_dir in runs.values():  # the Known filters were not rerun: the recorded profile's sets were taken
        assert not (run_dir / KNOWN_FILE).exists()
    assert not (runs["t2t"] / TRACES_DIR).exists()  # only the asked arm ...
    assert sorted(p.name for p in (runs["s2t"] / TRACES_DIR).iterdir()) == ["mlp"]  # ... and kind
    assert sorted(p.stem for p in (runs["s2t"] / TRACES_DIR / "mlp").glob("*.npz")) == sorted(traced)
    assert len(list((out / CARRYOVER_DIR / CARRYOVER_FACTS_DIR).glob("*.npz"))) == len(traced)

    differences = float64_differences(profile, out)  # measured on exactly these parts, all facts paired
    assert {k.split("/")[0] + "/" + k.split("/")[1] for k in differences} == {"s2t/mlp", "carryover/knockout_prob",
                                                                               "carryover/knockout_clean",
                                                                               "carryover/lens_prob",
                                                                               "carryover/patch_ie_prob",
                                                                               "carryover/patch_ie_logprob"}
    for key, entry in differences.items():
        assert entry["facts"] == len(traced) and entry["cells"] > 0
        assert 0.0 <= entry["max"] < 1e-3, key  # fp32 against float64: rounding, not another computation
    assert np.isfinite([e["max"] for e in differences.values()]).all()
