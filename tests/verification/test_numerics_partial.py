"""bench/numerics_bound.py's restricted mode (issue 25, finding 8): only the named parts of a recorded profile are
run in float64 (`--arms s2t --kinds mlp,attn`, `--carryover`), for exactly the facts the profile traced, by the
pipeline's own trace and carry-over steps, without rerunning the Known filters. The slow test runs a tiny profile
of the real embedded models end to end."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.core.fileio import read_json
from artifact.core.layout import CARRYOVER_DIR, CARRYOVER_FACTS_DIR, KNOWN_FILE, SELECTION_FILE, TRACES_DIR
from artifact.core.layout import carryover_fact_path as fact_path
from artifact.core.layout import result_path as trace_path
from artifact.experiments.profiles import PROFILES, CarryOverPlan
from artifact.verification.numerics import float64_differences

REPO = Path(__file__).resolve().parents[2]
# Two facts, two kinds traced in the reference; the float64 part asked for is S->T MLP and the carry-over step, in
# rounds of one fact.
TINY = replace(PROFILES["smoke"], trace=replace(PROFILES["smoke"].trace, samples=1), count=2, candidates=60,
               kinds=("hidden", "mlp"), carryover=CarryOverPlan(patch_kinds=("mlp",)))


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


def test_bad_arms_kinds_or_rounds_exit_2_before_anything_runs(tmp_path, capsys):
    module = bench_module()
    for args, message in ((["--arms", "x2t"], "--arms takes t2t and/or s2t"),
                          (["--arms", "s2t", "--kinds", "mlp,severed"], "--arms takes t2t and/or s2t"),
                          (["--carryover", "--rounds-of", "0"], "--rounds-of must be >= 1")):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--out", str(tmp_path / "out"), *args])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
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
        module.partial_run(profile, out, ["s2t"], ["mlp"], carryover=True, front_end="offline", rounds_of=1)
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
    first, second = traced  # rounds of one fact: every part of the first fact before any part of the second
    assert fact_path(out, first).stat().st_mtime_ns < trace_path(runs["s2t"], "mlp", second).stat().st_mtime_ns

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
